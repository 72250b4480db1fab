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
from engine.inversion.skin_tone import SKIN_RANGE, SkinToneModel, face_oval_mask, lch, skin_lab, within_skin_range
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


def test_a_target_photos_colours_are_kept_within_real_photos_range(face_photo):
    """A morph target's face takes its photo's colours (engine.paste), but not a photo's strong colour cast or
    greyscale: the mean goes to the nearest edge of SKIN_RANGE; colours inside it and the std stay as they are."""
    from engine.paste import lab_stats

    def stats(light, chroma, hue, std=(30.0, 5.0, 6.0)):
        h = np.radians(hue)
        return np.array([[light * 2.55, 128 + chroma * np.cos(h), 128 + chroma * np.sin(h)], std])

    typical = stats(55.0, 24.0, 50.0)
    np.testing.assert_allclose(within_skin_range(typical), typical, atol=1e-9)
    cast = lch(within_skin_range(stats(51.0, 62.0, 59.0))[0])  # 71_1_3's photo: a saturated orange cast
    np.testing.assert_allclose(cast, [51.0, SKIN_RANGE["chroma"][1], 59.0], atol=1e-6)
    grey = within_skin_range(stats(25.3, 0.0, 0.0))  # a dim greyscale photo
    np.testing.assert_allclose(lch(grey[0]), [SKIN_RANGE["lightness"][0], SKIN_RANGE["chroma"][0],
                                              sum(SKIN_RANGE["hue"]) / 2], atol=1e-6)
    np.testing.assert_array_equal(grey[1], [30.0, 5.0, 6.0])
    assert within_skin_range(None) is None
    photo = load_image(face_photo("obama.jpg"))  # lch reads what lab_stats measures
    light = lch(lab_stats(photo, np.ones(photo.shape[:2], bool))[0])[0]
    assert abs(light - cv2.cvtColor(photo.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)[..., 0].mean()) < 1.0


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
    back (to 0.75), and one closed-loop pass on the rendered skin a good part of the rest (all of CIELAB: dE 3.8 ->
    2.2 with the one pass of session 17, which leaves a* 3.6 off where the one before left 1.5 in all). With the
    identity feedback in the same pass (what `invert` writes), whose step moves skin colour a little, the skin still
    ends within 2.5."""
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
    assert np.linalg.norm(err_closed) < min(2.5, 0.7 * np.linalg.norm(err_predicted)), (err_predicted, err_closed)
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
