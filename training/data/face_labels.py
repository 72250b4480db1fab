"""Attribute labels for faces from MediaPipe: head pose in degrees and blendshape scores.

Pose comes from the facial transformation matrix (canonical face model -> camera). Signs, as seen in the
image: yaw > 0 when the face turns toward the image's right, pitch > 0 when it looks up, roll > 0 when the
head tilts clockwise in the image.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.landmarks import EXPRESSIONS, euler_from_matrix, expression
from engine.models import resolve_model

POSE = ("yaw", "pitch", "roll")
ATTRIBUTES = POSE + tuple(EXPRESSIONS)
# Read but not an attribute (no direction is fitted for it): the lips' rounding in speech's "o" and "u", which the
# live evaluation compares between input and output (no direction in W makes it: docs/MORPH.md)
LIP_SHAPES = {"pucker": "mouthPucker"}


@dataclass
class FaceLabeler:
    """MediaPipe FaceLandmarker (IMAGE mode) with blendshapes and transformation matrices."""

    model_path: Path | None = None

    def __post_init__(self):
        from mediapipe.tasks.python import BaseOptions, vision

        path = resolve_model("face_landmarker", explicit=self.model_path)
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=path.read_bytes()),
            running_mode=vision.RunningMode.IMAGE, num_faces=1,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        self._landmarker = vision.FaceLandmarker.create_from_options(options)

    def label(self, rgb: np.ndarray) -> dict[str, float] | None:
        """Attributes (and LIP_SHAPES) of the (largest) face in an RGB uint8 image, or None when no face is found."""
        import mediapipe as mp

        result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        if not result.face_landmarks:
            return None
        yaw, pitch, roll = euler_from_matrix(np.array(result.facial_transformation_matrixes[0]))
        scores = {c.category_name: c.score for c in result.face_blendshapes[0]}
        return {"yaw": yaw, "pitch": pitch, "roll": roll, **expression(result.face_blendshapes[0]),
                **{name: float(scores[c]) for name, c in LIP_SHAPES.items()}}

    def close(self) -> None:
        self._landmarker.close()
