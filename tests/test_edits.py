"""Latent edits: morph arithmetic, slot groups, shipped directions (real generator + MediaPipe)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.edits import (DIRECTIONS_PATH, EXPRESSION_NAMES, MORPH_PRESETS, SLOT_GROUPS, SLOT_RESOLUTION, DirectionSet,
                          MotionReference, Reenactment, morph, motion_reference_step, reenact, resting_mouth_change,
                          slot_weights)
from engine.errors import BadInputError, ModelMissingError
from engine.gif import write_gif


def test_slot_groups_cover_every_used_slot_once():
    used = [s for s, r in enumerate(SLOT_RESOLUTION) if r is not None]
    grouped = sorted(s for g in SLOT_GROUPS.values() for s in g)
    assert grouped == used


def test_morph_endpoints_and_presets():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1, 23, 512)), rng.standard_normal((1, 23, 512))
    np.testing.assert_allclose(morph(a, b, 0.0, "full"), a, atol=1e-6)
    np.testing.assert_allclose(morph(a, b, 1.0, "full"), b, atol=1e-6)
    half = morph(a, b, 0.5, "identity")
    coarse = list(SLOT_GROUPS["coarse"])
    np.testing.assert_allclose(half[0, coarse], a[0, coarse], atol=1e-6)  # pose slots stay the user's
    np.testing.assert_allclose(half[0, 4], 0.5 * (a[0, 4] + b[0, 4]), atol=1e-6)
    assert MORPH_PRESETS["identity"][3] == MORPH_PRESETS["identity"][2]  # unused slot follows its block
    with pytest.raises(BadInputError):
        morph(a, b, 1.5)
    with pytest.raises(BadInputError):
        morph(a, b, 0.5, "nope")
    with pytest.raises(BadInputError):
        slot_weights(bogus=1.0)


def test_direction_set_apply_is_linear_in_real_units(tmp_path):
    v = np.zeros(512, np.float32)
    v[0] = 1.0
    meta = {"yaw": {"unit": "degrees", "units_per_step": 5.0, "max_units": 25.0}}
    np.savez(tmp_path / "d.npz", meta=json.dumps(meta), yaw=v)
    ds = DirectionSet.load(tmp_path / "d.npz")
    w = np.zeros((1, 23, 512), np.float32)
    out = ds.apply(w, yaw=10.0)
    np.testing.assert_allclose(out[0, :, 0], 2.0)  # 10 degrees / 5 degrees per unit, every slot
    with pytest.raises(BadInputError):
        ds.apply(w, frown=1.0)
    with pytest.raises(ModelMissingError):
        DirectionSet.load(tmp_path / "missing.npz")


def test_shipped_directions_are_unit_decoupled_and_calibrated():
    ds = DirectionSet.load(DIRECTIONS_PATH)
    names = ["yaw", "pitch", "smile", "jaw_open", "eye_blink", "brow_raise"]
    assert sorted(ds.directions) == sorted(names + ["age", "gender"])  # age, gender: tests/test_age_gender.py
    vecs = np.stack([ds.directions[n].vector for n in names])
    np.testing.assert_allclose(vecs @ vecs.T, np.eye(len(names)), atol=1e-4)  # orthonormal after Gram-Schmidt
    assert ds.directions["yaw"].unit == "degrees" and ds.directions["yaw"].max_units >= 20
    assert ds.directions["smile"].units_per_step > 0


@pytest.mark.slow
def test_yaw_direction_turns_a_generated_head_by_the_asked_angle(generator_session, labeler):
    """The real check: render w and w + yaw(+-15 deg) and measure yaw with MediaPipe."""
    import cv2

    ds = DirectionSet.load(DIRECTIONS_PATH)
    errors = []
    for seed in (11, 12, 13):
        w = generator_session.sample_w(seed, 0.6)
        base = labeler.label(cv2.resize(generator_session.render(w), (384, 384)))
        for asked in (-15.0, 15.0):
            got = labeler.label(cv2.resize(generator_session.render(ds.apply(w, yaw=asked)), (384, 384)))
            errors.append(got["yaw"] - base["yaw"] - asked)
    assert np.mean(np.abs(errors)) < 6.0, errors


@pytest.fixture(scope="module")
def generator_session():
    from engine.generator import Generator

    return Generator.load(threads=2)


@pytest.fixture(scope="module")
def labeler():
    from training.data.face_labels import FaceLabeler

    lab = FaceLabeler()
    yield lab
    lab.close()


def test_gif_writer_writes_readable_looping_gif(tmp_path):
    import imageio.v3 as iio

    frames = [np.full((64, 96, 3), 20 * i, np.uint8) for i in range(5)]
    write_gif(tmp_path / "s.gif", frames, fps=10, boomerang=True)
    out = iio.imread(tmp_path / "s.gif", index=None)
    assert out.shape == (8, 64, 96, 3)
    with pytest.raises(BadInputError):
        write_gif(tmp_path / "e.gif", [])
    assert not list(tmp_path.glob(".e.gif*"))  # nothing half-written left behind


def test_pose_lock_restores_the_source_pose_components():
    ds = DirectionSet.load(DIRECTIONS_PATH)
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((1, 23, 512)), rng.standard_normal((1, 23, 512))
    locked = morph(a, b, 1.0, "full", pose_lock=ds)
    for name in ("yaw", "pitch"):
        v = ds.directions[name].vector
        np.testing.assert_allclose(locked[0] @ v, a[0] @ v, atol=1e-4)  # pose components are the user's
    free = morph(a, b, 1.0, "full")
    assert np.abs(locked - free).max() > 0.1
    smile = ds.directions["smile"].vector
    np.testing.assert_allclose(locked[0] @ smile, b[0] @ smile, atol=0.05 * np.abs(b[0] @ smile).max() + 1e-3)


def test_reenact_moves_the_target_by_the_users_motion_on_the_motion_slots_only():
    rng = np.random.default_rng(1)
    user, rest, target = (rng.standard_normal((1, 23, 512)).astype(np.float32) for _ in range(3))
    np.testing.assert_allclose(reenact(user, target, 0.0, rest), user, atol=1e-6)
    full = reenact(user, target, 1.0, rest)
    motion = Reenactment().motion > 0
    assert list(np.flatnonzero(motion)) == list(range(10))  # 4-32 px: pose and expression
    np.testing.assert_allclose(full[0, motion], (target + user - rest)[0, motion], atol=1e-5)
    np.testing.assert_allclose(full[0, ~motion], target[0, ~motion], atol=1e-6)  # identity, complexion: the target's
    np.testing.assert_allclose(reenact(rest, target, 1.0, rest), target, atol=1e-6)  # at rest: the target itself
    half = reenact(user, target, 0.5, rest)
    np.testing.assert_allclose(half, 0.5 * (user + full), atol=1e-5)  # a straight blend between the two
    with pytest.raises(BadInputError):
        reenact(user, target, 1.2, rest)


def test_reenact_of_a_still_copies_pose_and_expression_along_the_directions():
    ds = DirectionSet.load(DIRECTIONS_PATH)
    rng = np.random.default_rng(2)
    user, target = rng.standard_normal((1, 23, 512)), rng.standard_normal((1, 23, 512))
    out = reenact(user, target, 1.0, directions=ds)
    for name in ("jaw_open", "yaw"):
        d = ds.directions[name]
        on = d.slots > 0
        gap_before = np.abs((target[0] - user[0])[on] @ d.vector).mean()
        gap_after = np.abs((out[0] - user[0])[on] @ d.vector).mean()
        assert gap_after < 0.2 * gap_before, name  # the user's mouth and head, (nearly: directions overlap)
    assert set(EXPRESSION_NAMES) <= set(ds.directions)
    assert np.abs(out - target).mean() < 0.5 * np.abs(user - target).mean()  # the rest is the target's


def test_motion_reference_is_a_running_mean_then_exponential():
    frames = [np.full((1, 23, 512), v, np.float32) for v in (1.0, 2.0, 3.0, 10.0)]
    ref = None
    for f in frames[:3]:
        ref = motion_reference_step(ref, f, window=3)
    np.testing.assert_allclose(ref.mean, 2.0)
    ref = motion_reference_step(ref, frames[3], window=3)
    np.testing.assert_allclose(ref.mean, 2.0 + (10.0 - 2.0) / 3)
    assert ref.count == 3


def test_a_motion_reference_sample_can_stand_for_several_frames():
    """A paced loop inverts one frame in a few: while the mean is plain, a sample standing for k frames counts as
    k copies of it; once exponential, its weight is k / window."""
    a, b = np.full((1, 23, 512), 1.0, np.float32), np.full((1, 23, 512), 4.0, np.float32)
    once = motion_reference_step(motion_reference_step(None, a, 10, {"jaw_open": 0.0}), b, 10, {"jaw_open": 0.3}, frames=2)
    twice = None
    for w, jaw in ((a, 0.0), (b, 0.3), (b, 0.3)):
        twice = motion_reference_step(twice, w, 10, {"jaw_open": jaw})
    np.testing.assert_allclose(once.mean, twice.mean)
    assert once.count == twice.count == 3 and once.expression["jaw_open"] == pytest.approx(0.2)
    full = motion_reference_step(MotionReference(np.zeros((1, 23, 512)), 10), b, 10, frames=5)
    np.testing.assert_allclose(full.mean, 4.0 * 5 / 10)


def test_reenact_drives_the_jaw_by_the_measured_expression_within_its_range():
    ds = DirectionSet.load(DIRECTIONS_PATH)
    jaw = ds.directions["jaw_open"]
    rng = np.random.default_rng(3)
    user, rest, target = (rng.standard_normal((1, 23, 512)).astype(np.float32) for _ in range(3))
    on = jaw.slots > 0

    def jaw_component(w):
        return (w[0, on] @ jaw.vector).mean()

    latent_only = reenact(user, target, 1.0, rest, directions=ds, how=Reenactment(share=0.0),
                          expression={"jaw_open": 0.2})
    np.testing.assert_allclose(latent_only, reenact(user, target, 1.0, rest, directions=ds), atol=1e-6)
    measured = reenact(user, target, 1.0, rest, directions=ds, how=Reenactment(share=1.0), expression={"jaw_open": 0.2})
    want = jaw_component(ds.restore(target, user, ("yaw", "pitch"))) + 0.2 / jaw.units_per_step
    np.testing.assert_allclose(jaw_component(measured), want, rtol=0.05)  # the target at rest, opened by 0.2
    half = reenact(user, target, 1.0, rest, directions=ds, expression={"jaw_open": 0.2})  # the default: half and half
    np.testing.assert_allclose(jaw_component(half), 0.5 * (jaw_component(latent_only) + jaw_component(measured)),
                               rtol=0.05)
    wide = reenact(user, target, 1.0, rest, directions=ds, how=Reenactment(share=1.0), expression={"jaw_open": 5.0})
    top = reenact(user, target, 1.0, rest, directions=ds, how=Reenactment(share=1.0),
                  expression={"jaw_open": jaw.max_units})
    np.testing.assert_allclose(wide, top, atol=1e-5)  # beyond the calibrated range: held at its end


def test_reenact_moves_the_targets_resting_mouth_to_the_users_within_its_range():
    ds = DirectionSet.load(DIRECTIONS_PATH)
    rng = np.random.default_rng(5)
    user, rest, target = (rng.standard_normal((1, 23, 512)).astype(np.float32) for _ in range(3))
    how = Reenactment(rest=("smile", "jaw_open"))

    def component(w, name):
        d = ds.directions[name]
        return (w[0, d.slots > 0] @ d.vector).mean()

    base = reenact(user, target, 1.0, rest, directions=ds, how=how)
    grin = {"smile": -0.2, "jaw_open": 0.1, "eye_blink": 0.3}  # the user's resting scores minus the photo's
    moved = reenact(user, target, 1.0, rest, directions=ds, how=how, rest_change=grin)
    for name in ("smile", "jaw_open"):
        want = grin[name] / ds.directions[name].units_per_step
        np.testing.assert_allclose(component(moved, name) - component(base, name), want, rtol=0.02)
    np.testing.assert_allclose(component(moved, "eye_blink"), component(base, "eye_blink"), atol=1e-4)  # not in rest
    half = reenact(user, target, 1.0, rest, directions=ds, how=Reenactment(rest=("smile", "jaw_open"), rest_share=0.5),
                   rest_change=grin)
    np.testing.assert_allclose(half, 0.5 * (base + moved), atol=1e-4)
    for off in (Reenactment(rest=()), Reenactment(rest=("smile", "jaw_open"), rest_share=0.0)):
        np.testing.assert_allclose(reenact(user, target, 1.0, rest, directions=ds, how=off, rest_change=grin), base,
                                   atol=1e-6)
    top = ds.directions["smile"].max_units
    np.testing.assert_allclose(reenact(user, target, 1.0, rest, directions=ds, how=how, rest_change={"smile": -9.0}),
                               reenact(user, target, 1.0, rest, directions=ds, how=how, rest_change={"smile": -top}),
                               atol=1e-5)  # beyond the calibrated range: held at its end
    np.testing.assert_allclose(reenact(user, target, 0.0, rest, directions=ds, how=how, rest_change=grin), user,
                               atol=1e-5)  # strength 0: the user, whatever the target's mouth


def test_the_resting_mouth_change_leaves_a_photo_caught_mid_word_alone():
    ds = DirectionSet.load(DIRECTIONS_PATH)
    user = {"smile": 0.1, "jaw_open": 0.05, "yaw": 2.0}
    grin = {"smile": 0.9, "jaw_open": 0.1}
    assert resting_mouth_change(user, grin, ds) == pytest.approx({"smile": -0.8, "jaw_open": -0.05})
    mid_word = {"smile": 0.6, "jaw_open": ds.directions["jaw_open"].max_units + 0.05}  # beyond what the jaw can close
    assert resting_mouth_change(user, mid_word, ds) is None
    assert resting_mouth_change(None, grin, ds) is None and resting_mouth_change(user, None, ds) is None


def test_reenact_turns_the_head_by_the_measured_pose_from_the_users_rest():
    ds = DirectionSet.load(DIRECTIONS_PATH)
    rng = np.random.default_rng(4)
    user, rest, target = (rng.standard_normal((1, 23, 512)).astype(np.float32) for _ in range(3))
    change = {"jaw_open": 0.0, "yaw": 7.0, "pitch": -3.0}

    def component(w, name):
        d = ds.directions[name]
        return (w[0, d.slots > 0] @ d.vector).mean()

    encoder_pose = reenact(user, target, 1.0, rest, directions=ds, expression=change,
                           how=Reenactment(pose_share=0.0))  # the encoder's own pose
    for name in ("yaw", "pitch"):
        assert component(encoder_pose, name) == pytest.approx(component(user, name), abs=1e-4)
    driven = reenact(user, target, 1.0, rest, directions=ds, expression=change)  # the default: the measured turn
    for name in ("yaw", "pitch"):  # rest's pose turned by exactly the measured change
        want = component(rest, name) + change[name] / ds.directions[name].units_per_step
        assert component(driven, name) == pytest.approx(want, abs=2e-3), name
    half = reenact(user, target, 1.0, rest, directions=ds, expression=change, how=Reenactment(pose_share=0.5))
    assert component(half, "yaw") == pytest.approx(0.5 * (component(encoder_pose, "yaw") + component(driven, "yaw")),
                                                   abs=2e-3)
    np.testing.assert_allclose(reenact(user, target, 1.0, rest, directions=ds, how=Reenactment(pose_share=1.0),
                                       expression={"jaw_open": 0.0}), encoder_pose, atol=1e-5)  # no pose measured
    np.testing.assert_allclose(reenact(user, target, 0.0, rest, directions=ds, expression=change,
                                       how=Reenactment(pose_share=1.0)), user, atol=1e-5)  # strength 0: the user
