"""MediaPipe landmarks (IMAGE and VIDEO mode), One-Euro smoothing and the video reader, on real data."""
import dataclasses

import numpy as np
import pytest

from engine.commands.jitter import measure_clip
from engine.errors import BadInputError, ModelMissingError
from engine.image_io import load_image
from engine.landmarks import LEFT_EYE, MOUTH_LEFT, MOUTH_RIGHT, NUM_LANDMARKS, RIGHT_EYE, FaceLandmarker
from engine.smoothing import OneEuroParams, OneEuroState, one_euro_step, smooth_face
from engine.video import VideoReader


def test_one_face_with_478_points_in_pixels(landmarker, face_photo):
    image = load_image(face_photo("obama.jpg"))
    faces = landmarker.detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.points.shape == (NUM_LANDMARKS, 3) and face.image_size == (910, 1137)
    x0, y0, x1, y1 = face.bbox
    assert 150 < x1 - x0 < 500 and 0 <= x0 and x1 <= 910 and 0 <= y0 and y1 <= 1137
    assert face.visible_fraction == 1.0
    xy = face.xy
    # the person's right eye is on the image's left, and the eyes are above the mouth
    assert xy[list(RIGHT_EYE), 0].mean() < xy[list(LEFT_EYE), 0].mean()
    assert xy[MOUTH_RIGHT, 0] < xy[MOUTH_LEFT, 0]
    assert xy[list(RIGHT_EYE + LEFT_EYE), 1].mean() < xy[[MOUTH_LEFT, MOUTH_RIGHT], 1].mean()


def test_two_people_sorted_largest_first(landmarker, face_photo):
    faces = landmarker.detect(load_image(face_photo("two_people.jpg")))
    assert len(faces) == 2
    assert faces[0].area >= faces[1].area
    assert abs(faces[0].bbox[0] - faces[1].bbox[0]) > 200  # two different people


def test_no_face_in_blank_or_dark_images(landmarker, videos_dir):
    assert landmarker.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert landmarker.detect(np.full((300, 300, 3), 255, np.uint8)) == []
    with VideoReader(videos_dir / "dark_stage_clip.mp4") as reader:
        frames = [f.image for f in reader.frames(60)][::10]
    assert all(landmarker.detect(frame) == [] for frame in frames)  # the back of a head on a dark stage


def test_partial_and_tiny_faces_are_found(landmarker, face_photo):
    partial = landmarker.detect(load_image(face_photo("obama_partial_face.jpg")))
    assert len(partial) == 1 and 0.5 < partial[0].visible_fraction < 1.0
    tiny = landmarker.detect(load_image(face_photo("obama-240p.jpg")))
    assert len(tiny) == 1
    x0, _, x1, _ = tiny[0].bbox
    assert 30 < x1 - x0 < 80


def test_bad_arrays_are_bad_input(landmarker):
    with pytest.raises(BadInputError, match="uint8 BGR"):
        landmarker.detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(BadInputError, match="uint8 BGR"):
        landmarker.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(BadInputError, match="too small"):
        landmarker.detect(np.zeros((4, 64, 3), np.uint8))


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ModelMissingError, match="not found"):
        FaceLandmarker(tmp_path / "nope.task")
    monkeypatch.setenv("CELEBLOOK_FACE_LANDMARKER", str(tmp_path / "nope.task"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CELEBLOOK_MODEL_DIR", raising=False)
    with pytest.raises(ModelMissingError, match="CELEBLOOK_FACE_LANDMARKER"):
        FaceLandmarker()
    wrong = tmp_path / "face_landmarker.task"
    wrong.write_bytes(b"not a model")
    with pytest.raises(ModelMissingError, match="sha256"):
        FaceLandmarker(wrong)


def test_video_mode_tracks_and_accepts_repeated_timestamps(landmarker_model, videos_dir):
    with VideoReader(videos_dir / "d18.mp4") as reader, FaceLandmarker(landmarker_model, video=True) as lm:
        frames = list(reader.frames(10))
        found = [lm.detect_video(f.image, f.timestamp_ms) for f in frames]
        assert all(len(faces) == 1 for faces in found)
        assert len(lm.detect_video(frames[-1].image, frames[-1].timestamp_ms)) == 1  # same time again
        with pytest.raises(ValueError, match="VIDEO mode"):
            lm.detect(frames[0].image)
    centres = np.array([faces[0].xy.mean(axis=0) for faces in found])
    assert np.abs(np.diff(centres, axis=0)).max() < 10  # a talking head: small motion between frames


def test_one_euro_holds_still_signals_and_follows_moves():
    params, scale = OneEuroParams(), 100.0  # e.g. a face 100 px across
    rng = np.random.default_rng(0)
    t = np.arange(120) / 30.0
    noisy = 100.0 + rng.normal(0, 1.0, (120, 2))
    state, out = None, []
    for ti, x in zip(t, noisy):
        state = one_euro_step(state, x, ti, params, scale)
        out.append(state.value)
    out = np.array(out)
    assert np.abs(np.diff(out[30:], axis=0)).mean() < 0.3 * np.abs(np.diff(noisy[30:], axis=0)).mean()
    # a jump to a new still position is reached within half a second
    state2 = state
    for ti in t[-1] + np.arange(1, 16) / 30.0:
        state2 = one_euro_step(state2, np.array([150.0, 150.0]), ti, params, scale)
    assert np.all(np.abs(state2.value - 150.0) < 2.0)
    # the state is an explicit value: the old one is unchanged, and the same time twice changes nothing
    assert np.allclose(state.value, out[-1])
    assert one_euro_step(state, np.zeros(2), state.t, params) is state
    assert dataclasses.is_dataclass(OneEuroState)


def test_smooth_face_restarts_on_a_jump(landmarker, face_photo):
    face = landmarker.detect(load_image(face_photo("obama.jpg")))[0]
    smoothed, state = smooth_face(None, face, 0.0)
    assert np.allclose(smoothed.points, face.points)
    moved = dataclasses.replace(face, points=face.points + np.float32([400, 0, 0]))
    smoothed, state = smooth_face(state, moved, 1 / 30)
    assert np.allclose(smoothed.points, moved.points)  # restarted, not dragged from the old place


def test_smoothing_reduces_crop_jitter_on_video(landmarker_model, videos_dir):
    result = measure_clip(videos_dir / "d18.mp4", 45, OneEuroParams(), str(landmarker_model))
    assert result.frames == 45 and result.frames_with_face == 45
    assert result.smoothed.accel_px < 0.7 * result.raw.accel_px
    assert result.smoothed.step_px < result.raw.step_px
    assert result.lag_px < 0.01 * 400  # under 1% of the crop side


def test_video_reader_loops_and_reports_errors(videos_dir, tmp_path):
    with VideoReader(videos_dir / "d20.mp4", loop=True) as reader:
        assert reader.size == (480, 480) and reader.fps == 25.0
        n = reader.frame_count
        frames = list(reader.frames(n + 3))
    assert len(frames) == n + 3
    assert np.all(np.diff([f.timestamp_ms for f in frames]) > 0)
    assert np.array_equal(frames[n].image, frames[0].image)
    with pytest.raises(BadInputError, match="not found"):
        VideoReader(tmp_path / "nope.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"\0" * 1000)
    with pytest.raises(BadInputError, match="bad.mp4"):
        with VideoReader(tmp_path / "bad.mp4") as reader:
            reader.read()
