"""The evaluations' independent judge reads what it claims: dlib's 68 landmarks (training.evaluate.dlib_judge.DlibPose,
never used by the engine) see a generated face's head turn and its mouth open when the shipped directions do them."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.edits import DIRECTIONS_PATH, DirectionSet
from engine.inversion.targets import builtin_targets
from tests.conftest import require


@pytest.fixture(scope="module")
def judge():
    require("dlib")
    from training.evaluate.dlib_judge import DlibPose

    return DlibPose()


def test_dlib_reads_a_generated_heads_turn_and_its_mouth_opening(judge):
    from engine.generator import Generator

    generator = Generator.load(threads=2, resolution=256)
    directions = DirectionSet.load(DIRECTIONS_PATH)
    face = builtin_targets(generator, (4,))[0].wplus  # a face at rest with its mouth closed
    jaw = directions.directions["jaw_open"].max_units

    def read(**amounts):
        edited = directions.apply(face, **amounts) if amounts else face
        return judge.read(cv2.cvtColor(generator.render(edited), cv2.COLOR_RGB2BGR))

    rest, right, left, opened = read(), read(yaw=15.0), read(yaw=-15.0), read(jaw_open=jaw)
    smiled = read(smile=directions.directions["smile"].max_units)
    assert all(r is not None for r in (rest, right, left, opened, smiled))
    assert right["yaw"] > rest["yaw"] + 5 and left["yaw"] < rest["yaw"] - 5  # its turns, with MediaPipe's sign
    assert opened["mouth"] > rest["mouth"] + 0.1  # the inner lips part (0.004 -> 0.26 when written)
    assert abs(opened["yaw"] - rest["yaw"]) < abs(right["yaw"] - rest["yaw"])
    assert smiled["mouth_width"] > rest["mouth_width"] + 0.03  # a smile widens the mouth corner to corner
    assert judge.read(np.full((256, 256, 3), 128, np.uint8)) is None  # no face: nothing read


def test_the_live_evaluation_judges_complexion_against_the_target_photo(face_photo):
    """training.evaluate.live_morph reads the output face's skin against the target photo's (strength 1) or the
    input's (strength 0): the photo itself as output is ΔE ~0 from itself, a darkened copy is darker by what was
    taken off, and a reference without a face MediaPipe finds gives NaN, not a comparison with the input."""
    require("dlib")
    from engine.align import align_face
    from engine.image_io import load_image
    from engine.landmarks import FaceLandmarker
    from training.evaluate.dlib_judge import DlibIdentity
    from training.evaluate.live_morph import MotionReader, judge as live_judge

    you, obama = load_image(face_photo("biden.jpg")), load_image(face_photo("obama.jpg"))
    with FaceLandmarker() as lm:
        reference = align_face(obama, lm.detect(obama)[0], 256, blur_padding=False).image
    darker = cv2.convertScaleAbs(obama, alpha=0.7)
    reader, ident = MotionReader(), DlibIdentity()
    try:
        same = live_judge([(you, obama)], reader, ident, reference)
        dark = live_judge([(you, darker)], reader, ident, reference)
        faceless = live_judge([(you, obama)], reader, ident, np.full_like(reference, 128))
        yourself = live_judge([(you, you)], reader, ident, None)
    finally:
        reader.close()
    assert same["skin_de"] < 1.5 and same["skin_de_user"] > 5, same
    assert dark["skin_dl"] < -8 and dark["skin_de"] > 8, dark
    assert np.isnan(faceless["skin_de"]) and faceless["judged"] == 1, faceless
    assert yourself["skin_de"] < 0.5, yourself


def test_the_live_evaluations_totals_leave_out_clips_whose_input_does_not_move():
    """A clip whose input mouth stays shut (s18: jawOpen spans 0.001) has nothing to follow; its correlation is the
    judge's noise and stays out of the totals, while its likeness and gaps count."""
    from training.evaluate.live_morph import totals

    def row(clip, corr, span):
        return {"clip": clip, "target": "t", "morph": "reenact", "judged": 10, "same": 9, "mean": 0.5,
                "corr_jaw_open": corr, "range_jaw_open": span, "gap_jaw_open": 0.1}

    total = totals([row("d18", 0.9, 0.8), row("d20", 0.7, 0.4), row("s18", -0.3, 0.001)])[0]
    assert total["corr_jaw_open"] == pytest.approx(0.8) and total["judged"] == 30 and total["same"] == 27
    assert np.isnan(totals([row("s18", -0.3, 0.001)])[0]["corr_jaw_open"])  # no clip to judge the mouth by
