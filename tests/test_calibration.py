"""engine/inversion/calibration.py: the personal calibration's file (atomic, checked, no pickle), that a calibration from one
keyframe of a clip brings a *later* frame of the same person closer by dlib's measure, the live loop adding it, and
`celeblook calibrate` with `invert --calibration`."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.inversion.calibration import LIVE_SLOTS, IdentityCalibration, KeyframePicker, calibrate, keyframe_problem
from engine.cli import main as cli_main
from engine.inversion.encoder import Encoder, realign_render
from engine.errors import BadInputError, CelebLookError, NoFaceError
from engine.generator import Generator, to_uint8_rgb
from engine.landmarks import FaceLandmarker
from engine.inversion.inverter import InversionOptions
from engine.live import LiveModels, LivePipeline, LiveSettings
from engine.inversion.refine import Refiner
from engine.video import VideoReader


@pytest.fixture(scope="module")
def parts():
    with FaceLandmarker() as lm:
        gen = Generator.load(threads=2)
        yield gen, Encoder.load(threads=2), Refiner.load(threads=2, full=gen), lm


def frames_of(path, times_s):
    """(BGR frame, t) of the clip's frames nearest to `times_s`."""
    with VideoReader(path) as video:
        frames = [(f.image, f.timestamp_ms / 1000.0) for f in video]
    return [min(frames, key=lambda f: abs(f[1] - t)) for t in times_s]


def test_running_mean_file_round_trip_and_clear_errors(tmp_path):
    one = np.ones((23, 512), np.float32)
    cal = IdentityCalibration.empty("a" * 64).add(one).add(3 * one)
    assert cal.keyframes == 2 and np.allclose(cal.offset, 2.0)
    w = np.zeros((1, 23, 512), np.float32)
    assert np.allclose(cal.apply(w), 2.0) and cal.apply(w).shape == (1, 23, 512)
    part = cal.apply(w, slots=10)
    assert np.allclose(part[0, :10], 2.0) and np.allclose(part[0, 10:], 0.0)
    path = cal.save(tmp_path / "me.npz")
    assert not list(tmp_path.glob(".me.npz.*")), "written atomically: no temporary file left"
    back = IdentityCalibration.load(path, "a" * 64)
    assert back.keyframes == 2 and np.array_equal(back.offset, cal.offset)
    with pytest.raises(BadInputError, match="another inversion encoder"):
        IdentityCalibration.load(path, "b" * 64)
    (tmp_path / "bad.npz").write_bytes(b"not a calibration")
    with pytest.raises(BadInputError, match="not a CelebLook calibration"):
        IdentityCalibration.load(tmp_path / "bad.npz")
    with pytest.raises(BadInputError, match="not found"):
        IdentityCalibration.load(tmp_path / "missing.npz")
    with pytest.raises(CelebLookError, match="does not exist"):
        cal.save(tmp_path / "no" / "such" / "dir.npz")


def test_keyframe_picker_spacing():
    p = KeyframePicker(wanted=2, min_gap_s=1.0)
    assert p.wants(0.0)
    p.take(0.0)
    assert not p.wants(0.5) and p.wants(1.0)
    p.take(1.0)
    assert not p.wants(5.0), "done after `wanted` keyframes"


@pytest.mark.slow
def test_calibration_brings_a_later_frame_of_the_same_person_closer(parts, videos_dir):
    """One keyframe of d20.mp4 at 0 s, refined once: the one pass of its frame at 4 s, plus the calibration, is
    nearer that frame by dlib's measure than the one pass alone (at 1024 px), and well under the 0.6 threshold.
    (Measured 0.459 -> 0.444 since the one pass holds the real-photo term; 0.571 -> 0.487 before it: the one pass
    now gets most of the way by itself.)"""
    from engine.align import align_face
    from training.evaluate.dlib_judge import DlibIdentity

    gen, enc, refiner, lm = parts
    (key, _), (later, _) = frames_of(videos_dir / "d20.mp4", [0.0, 4.0])
    cal = calibrate([(key, 0.0)], lm, enc, refiner, "x" * 64, keyframes=1)
    assert cal.keyframes == 1 and cal.meta["keyframe_times_s"] == [0.0]
    face = lm.detect(later)[0]
    crop = align_face(later, face, 256)
    one = enc.invert_face(crop, face)
    ident = DlibIdentity()

    def distance(wplus):
        render = cv2.cvtColor(to_uint8_rgb(gen.synthesize(wplus))[0], cv2.COLOR_RGB2BGR)
        return ident.distance(crop.image, realign_render(render, lm, 256)[0])[0]

    calibrated = distance(cal.apply(one))
    assert calibrated < distance(one) - 0.005 and calibrated < 0.48


@pytest.mark.slow
def test_a_yawn_or_a_cut_off_face_is_no_keyframe(parts, videos_dir, face_photo):
    """d18.mp4 yawns at 2.7 s (its mouth closed at 0 s); obama_partial_face.jpg is cut off at the picture's edge."""
    from engine.align import align_face
    from engine.image_io import load_image

    lm = parts[3]
    (closed, _), (yawn, _) = frames_of(videos_dir / "d18.mp4", [0.0, 2.7])
    problems = {}
    for name, image in {"closed": closed, "yawn": yawn,
                        "partial": load_image(face_photo("obama_partial_face.jpg"))}.items():
        face = lm.detect(image)[0]
        problems[name] = keyframe_problem(face, align_face(image, face, 256))
    assert problems["closed"] is None
    assert "mouth wide open" in problems["yawn"] and "outside the picture" in problems["partial"]


def test_calibrate_without_a_face_is_a_clear_error(parts):
    gen, enc, refiner, lm = parts
    with pytest.raises(NoFaceError, match="no usable face"):
        calibrate([(np.full((240, 320, 3), 90, np.uint8), 0.0)], lm, enc, refiner, "x" * 64)
    with pytest.raises(BadInputError, match="at least one keyframe"):
        calibrate([], lm, enc, refiner, "x" * 64, keyframes=0)


@pytest.mark.slow
def test_live_loop_adds_the_calibration(landmarker_model, videos_dir):
    models = LiveModels.load(threads=2, landmarker_model=landmarker_model)
    (frame, t), = frames_of(videos_dir / "d18.mp4", [0.5])
    offset = np.random.default_rng(0).normal(0, 0.05, (23, 512)).astype(np.float32)
    cal = IdentityCalibration.empty(models.encoder_sha).add(offset)
    plain = LiveSettings(smooth_latents=False, reuse=False,
                         inversion=InversionOptions(match_skin=False, identity_feedback=False))
    out = {}
    # the identity feedback is asked for, but a calibration replaces it (it was fitted for the one pass alone)
    for name, s in {"plain": plain, "calibrated": plain.with_(calibration=cal, identity_feedback=True)}.items():
        with LivePipeline(models) as pipe:
            out[name] = pipe.process(frame, int(t * 1000), s).wplus
    # the live loop's 256-px preview head gets the coarse and middle slots only (its fine slots would blur)
    assert models.generator.resolution == 256
    expected = offset.copy()
    expected[LIVE_SLOTS:] = 0
    np.testing.assert_allclose(out["calibrated"] - out["plain"], expected[None], atol=1e-5)


@pytest.mark.slow
def test_cli_calibrate_then_invert(tmp_path, face_photo, capsys):
    cal = tmp_path / "obama.npz"
    photos = [str(face_photo(n)) for n in ("obama-240p.jpg", "32bit.png", "obama.jpg")]
    assert cli_main(["calibrate", *photos, "--out", str(cal), "--steps", "2", "--threads", "2"]) == 0
    got = capsys.readouterr()
    assert "2 keyframes" in got.out and "skipped obama-240p.jpg: small face" in got.err
    out = tmp_path / "recon.png"
    args = ["invert", str(face_photo("obama.jpg")), "--out", str(out), "--threads", "2", "--calibration"]
    assert cli_main(args + [str(cal)]) == 0 and out.is_file()
    capsys.readouterr()
    assert cli_main(args + [str(tmp_path / "none.npz")]) == 2
    assert "calibration file not found" in capsys.readouterr().err
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    assert cli_main(["calibrate", str(blank), "--out", str(tmp_path / "x.npz"), "--steps", "1"]) == 2
    assert "no usable face" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_keyframe_schedule_decides_the_live_keyframes(monkeypatch):
    """The live calibration's schedule (what the desktop worker runs): one keyframe at a time, MIN_GAP_S apart,
    until `wanted`; a keyframe of a stream that has since changed is refined but not added; a saved calibration
    is used as is and survives a new stream."""
    from engine.inversion import calibration as cal_module

    monkeypatch.setattr(cal_module, "keyframe_problem", lambda face, crop: None)
    monkeypatch.setattr(cal_module, "keyframe_offset", lambda *a, **k: np.ones((23, 512), np.float32))
    s = cal_module.KeyframeSchedule(wanted=2, steps=3)
    s.new_stream(1)
    assert s.keyframe(None, None, 0.0) is None, "no face, no keyframe"
    k = s.keyframe("face", "crop", 0.0)
    assert k is not None and s.pending and s.keyframe("face", "crop", 5.0) is None, "one at a time"
    assert s.refine(k, None, None, "sha") and s.calibration.keyframes == 1 and not s.pending
    assert s.keyframe("face", "crop", 0.5) is None, "too close to the last keyframe"
    k = s.keyframe("face", "crop", 1.5)
    s.new_stream(2)  # another source: someone else, maybe
    assert not s.refine(k, None, None, "sha") and s.calibration is None and not s.pending
    s.use(IdentityCalibration.empty("sha"))
    s.new_stream(3)
    assert s.applied is not None and s.keyframe("face", "crop", 9.0) is None
    s.on = False
    assert s.applied is None
