"""engine/inversion/corrections/landmark.py and engine.align.crop_points: landmarks in crop units, the shipped linear model,
when the encoder loads it, and what it does to a real face."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.align import align_face, crop_points
from engine.inversion.encoder import MODEL_NAME, Encoder, realign_render
from engine.errors import BadInputError, ModelMissingError
from engine.generator import Generator, to_uint8_rgb
from engine.image_io import load_image
from engine.inversion.corrections.landmark import LANDMARK_CORRECTION_PATH, LandmarkCorrection
from engine.models import resolve_model, sha256_file
from training.evaluate.probe_identity_feature import shape_error


def test_crop_points_are_the_landmarks_the_crop_itself_shows(landmarker, face_photo):
    """A photo's landmarks carried into crop units agree with MediaPipe run on the crop (within 1 % of its side)."""
    image = load_image(face_photo("obama.jpg"))
    face = landmarker.detect(image)[0]
    crop = align_face(image, face, 256)
    pts = crop_points(face, crop)
    again = landmarker.detect(crop.image)[0].points / 256.0
    assert pts.shape == (478, 3) and pts.dtype == np.float32
    assert np.abs(pts[:, :2] - again[:, :2]).mean() < 0.01
    assert np.abs(pts[:, 2] - again[:, 2]).mean() < 0.02  # depth, same units as x and y
    assert 0.3 < pts[:, 0].mean() < 0.7 and 0.3 < pts[:, 1].mean() < 0.8


def test_shipped_model_belongs_to_the_shipped_encoder(tmp_path):
    """The encoder loads the correction only when it was fitted for that very model: not when asked not to, not
    for a development export that differs."""
    model = LandmarkCorrection.load()
    assert model.meta["encoder_sha256"] == sha256_file(resolve_model(MODEL_NAME))
    assert Encoder.load(threads=1).correction is not None
    assert Encoder.load(threads=1, landmark_correction=False).correction is None
    import onnx

    dev = onnx.load(str(resolve_model(MODEL_NAME)))
    onnx.helper.set_model_props(dev, {**{p.key: p.value for p in dev.metadata_props}, "note": "development export"})
    other = tmp_path / "dev_encoder.onnx"
    onnx.save(dev, str(other))  # the same network in another file: what a development export looks like
    assert Encoder.load(threads=1, path=other).correction is None


def test_delta_touches_only_the_used_slots_and_rejects_bad_points():
    model = LandmarkCorrection.load()
    rng = np.random.default_rng(0)
    pts = model.x_mean.reshape(478, 3) + 0.01 * rng.normal(size=(478, 3)).astype(np.float32)
    delta = model.delta(pts)
    assert delta.shape == (23, 512)
    assert np.all(delta[~model.slots] == 0) and np.abs(delta[model.slots]).max() > 0
    w = np.zeros((1, 23, 512), np.float32)
    np.testing.assert_allclose(model.apply(w, pts, 0.5), 0.5 * delta[None], atol=1e-6)
    with pytest.raises(BadInputError, match="478"):
        model.delta(pts[:468])
    with pytest.raises(BadInputError, match="finite"):
        model.delta(np.full((478, 3), np.nan, np.float32))


def test_missing_model_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(ModelMissingError, match="training.fit.landmark_correction"):
        LandmarkCorrection.load(tmp_path / "none.npz")
    assert LANDMARK_CORRECTION_PATH.is_file()


@pytest.mark.parametrize("photo", ["biden.jpg", "32bit.png"])
@pytest.mark.slow
def test_correction_brings_the_reconstructed_face_shape_closer(landmarker, face_photo, photo):
    """On real photos the W+ with the landmark correction (the identity correction left out: it moves the shape
    slots too) renders a face whose shape (MediaPipe landmarks after a similarity fit) is closer to the photo's than
    the network's one pass alone."""
    gen, enc = Generator.load(threads=2), Encoder.load(threads=2, identity_correction=False)
    image = load_image(face_photo(photo))
    face = landmarker.detect(image)[0]
    crop = align_face(image, face, 256)
    reference = landmarker.detect(crop.image)[0]

    def shape_of(wplus):
        render = cv2.cvtColor(to_uint8_rgb(gen.synthesize(wplus))[0], cv2.COLOR_RGB2BGR)
        return shape_error(reference, landmarker.detect(realign_render(render, landmarker, 256)[0])[0])

    assert shape_of(enc.invert_face(crop, face)) < 0.95 * shape_of(enc.invert(crop.image))
