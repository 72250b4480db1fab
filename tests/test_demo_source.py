"""The built-in demo face (engine/demo_source.py): real generator, real landmarker; a face in every frame whose
head really turns across the loop, a loop that joins without a jump, and timestamps that keep increasing."""
from __future__ import annotations

import numpy as np
import pytest

from engine.demo_source import FRAME_SIZE, DemoFace, demo_amounts
from engine.edits import DirectionSet
from engine.generator import Generator


@pytest.fixture(scope="module")
def demo() -> DemoFace:
    return DemoFace(Generator.load(1, resolution=256), DirectionSet.load(), loop_frames=12)


def yaw_proxy(face) -> float:
    """The nose tip's offset from the middle of the eyes, in eye distances (> 0: turned one way, < 0: the other)."""
    nose, right, left = face.xy[1], face.xy[33], face.xy[263]
    mid = (right + left) / 2
    return float((nose[0] - mid[0]) / np.linalg.norm(left - right))


@pytest.mark.slow
def test_demo_frames_show_a_face_that_turns(demo, landmarker):
    frames = demo.render()
    assert len(frames) == 12 and demo.render() is frames, "rendered once, then served from memory"
    assert frames[0].shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3) and frames[0].dtype == np.uint8
    yaws = []
    for image in frames:
        faces = landmarker.detect(image)
        assert len(faces) == 1 and faces[0].visible_fraction == 1.0
        yaws.append(yaw_proxy(faces[0]))
    assert max(yaws) - min(yaws) > 0.3, f"the head must turn across the loop: {np.round(yaws, 2)}"
    assert np.argmax(yaws) != np.argmin(yaws)


def test_demo_stream_loops_with_increasing_timestamps(demo):
    stream = demo.stream()
    items = [next(stream) for _ in range(26)]
    stamps = [t for _, t in items]
    assert stamps == sorted(set(stamps)) and stamps[25] == 1000, "25 fps, increasing across loops"
    assert items[12][0] is items[0][0], "the loop repeats the same frames"


def test_demo_amounts_join_and_stay_in_range():
    directions = DirectionSet.load()
    first, last = demo_amounts(0.0, directions), demo_amounts(1.0, directions)
    assert first.keys() == last.keys() >= {"yaw", "smile", "jaw_open"}
    assert all(abs(first[k] - last[k]) < 1e-9 for k in first), "the loop joins without a jump"
    for phase in np.linspace(0, 1, 50):
        for name, value in demo_amounts(phase, directions).items():
            assert abs(value) <= directions.directions[name].max_units
