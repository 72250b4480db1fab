"""engine/inversion/skin_tone.py: the shipped skin-tone model, the match, and where the engine uses it."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.align import align_face
from engine.inversion.encoder import MODEL_NAME, Encoder
from engine.inversion.inverter import InversionOptions, Inverter
from engine.errors import ModelMissingError
from engine.generator import Generator
from engine.image_io import load_image
from engine.landmarks import FaceLandmarker
from engine.models import resolve_model, sha256_file
from engine.inversion.skin_tone import SkinToneModel, face_oval_mask, skin_lab
from engine.inversion.targets import TargetCache


@pytest.fixture(scope="module")
def parts():
    with FaceLandmarker() as lm:
        yield Generator.load(threads=2), Encoder.load(threads=2), lm


def test_match_hits_the_requested_chroma_with_the_smallest_change_and_holds_lightness():
    model = SkinToneModel.load()
    rng = np.random.default_rng(0)
    wplus = (model.w_avg + 0.5 * model.w_std * rng.normal(size=(1, 23, 512))).astype(np.float32)
    target = model.predict(wplus) + np.array([5.0, 3.0, 6.0])  # the L* asked for is ignored: only chroma is matched
    matched = model.match(wplus, target)
    np.testing.assert_allclose(model.predict(matched)[1:], target[1:], atol=1e-3)
    np.testing.assert_allclose(model.predict(matched)[0], model.predict(wplus)[0], atol=1e-3)  # L* held
    change = matched - wplus
    assert np.all(change[0, ~model.slots] == 0)  # unused slots untouched
    assert np.allclose(change[0, model.slots], change[0, model.slots][0], atol=1e-6)  # same shift in every used slot
    # the smallest change that does so: it lies in the span of the L*, a*, b* gradients (in w_std units)
    dx = change[0, model.slots][0] / model.w_std
    g = model.coef
    residual = dx - g @ np.linalg.lstsq(g, dx, rcond=None)[0]
    assert np.linalg.norm(residual) < 1e-3 * np.linalg.norm(dx)
    # no skin reading (an empty mask gives NaN): the code is left as it is
    np.testing.assert_array_equal(model.match(wplus, np.full(3, np.nan)), wplus)


def test_the_model_reads_a_generated_face(parts):
    """Fitted on generated faces: it predicts a held-out generated face's skin chroma within a few units."""
    gen, _, lm = parts
    model = SkinToneModel.load()
    errors = []
    for seed in (900_001, 900_005):
        w = gen.sample_w(seed, 0.7)
        render = cv2.cvtColor(gen.render(w), cv2.COLOR_RGB2BGR)
        face = lm.detect(render)[0]
        crop = align_face(render, face, 256)
        errors.append(np.abs(model.predict(np.broadcast_to(w, (1, 23, 512))) - skin_lab(crop.image,
                                                                                     face_oval_mask(face, crop))))
    assert np.max(np.array(errors)[:, 1:]) < 6.0


@pytest.mark.slow
def test_matching_brings_a_real_face_skin_colour_closer(parts, face_photo):
    """obama.jpg comes back less yellow (b*) from the one pass (3.6 units); the predicted match takes most of that
    back (to 1.1), and one closed-loop pass on the rendered skin most of the rest (all of CIELAB: dE 3.6 -> 1.5).
    With the identity feedback in the same pass (what `invert` writes), whose step moves skin colour a little, the
    skin still ends within 2.5 (2.15 with the x1.75 step)."""
    gen, enc, lm = parts
    model = SkinToneModel.load()
    image = load_image(face_photo("obama.jpg"))
    inverter = Inverter(enc, gen, model)
    plain = inverter.invert_photo(image, lm, InversionOptions(match_skin=False, identity_passes=0))
    predicted, closed, written = (inverter.invert_photo(image, lm, options, face=plain.face) for options in (
        InversionOptions(skin_passes=0, identity_passes=0), InversionOptions(identity_passes=0), InversionOptions()))
    mask = face_oval_mask(plain.face, plain.crop)
    lab_in = skin_lab(plain.crop.image, mask)
    err_plain, err_predicted, err_closed, err_written = (np.abs(skin_lab(inv.reconstruction, mask) - lab_in)
                                                         for inv in (plain, predicted, closed, written))
    assert err_plain[2] > 3.0 and err_predicted[2] < 0.7 * err_plain[2]
    assert np.linalg.norm(err_closed) < min(2.5, 0.5 * np.linalg.norm(err_predicted)), (err_predicted, err_closed)
    assert np.linalg.norm(err_written) < 2.5, err_written


def test_missing_model_file_says_how_to_regenerate(tmp_path):
    with pytest.raises(ModelMissingError, match=r"training\.fit\.skin_tone"):
        SkinToneModel.load(tmp_path / "skin_tone.npz")


def test_target_cache_keys_follow_the_skin_match(tmp_path, parts, face_photo):
    gen, enc, lm = parts
    sha = sha256_file(resolve_model(MODEL_NAME))
    photo = face_photo("biden.jpg")
    on = TargetCache(enc, gen, lm, sha, folder=tmp_path)
    off = TargetCache(enc, gen, lm, sha, folder=tmp_path, options=InversionOptions(match_skin=False))
    assert on.key(photo) != off.key(photo) and on.key(photo).startswith(off.key(photo))
    two = TargetCache(enc, gen, lm, sha, folder=tmp_path, options=InversionOptions(skin_passes=2))
    assert two.key(photo) != on.key(photo)
    assert on.inverter.skin_tone is not None and off.inverter.skin_tone is None
