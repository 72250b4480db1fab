"""Face landmarks with MediaPipe's Tasks FaceLandmarker: 478 points per face, in pixel coordinates.

IMAGE mode for photos, VIDEO mode for streams (MediaPipe then tracks between frames and needs increasing
timestamps). Faces come back sorted largest first. The model is `face_landmarker.task`, found with
engine.models.resolve_model (explicit path, CELEBLOOK_FACE_LANDMARKER, model dir, user cache).
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from engine.errors import BadInputError, ModelMissingError
from engine.models import resolve_model

NUM_LANDMARKS = 478
# Indices into the 478-point mesh. "Right"/"left" are the person's own: the right eye is on the image's left.
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


# Expression attributes (the shipped directions' names) as means of MediaPipe blendshape categories.
EXPRESSIONS: dict[str, tuple[str, ...]] = {
    "smile": ("mouthSmileLeft", "mouthSmileRight"),
    "jaw_open": ("jawOpen",),
    "eye_blink": ("eyeBlinkLeft", "eyeBlinkRight"),
    "brow_raise": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
}


@dataclass(frozen=True)
class Face:
    """One detected face: `points` (478, 3) float32, x and y in pixels of the image, z in the same scale
    (relative depth, MediaPipe's convention); `image_size` is (width, height) of that image; `expression`: the
    EXPRESSIONS scores (0..1) when the landmarker was asked for blendshapes, else None; `pose`: (yaw, pitch, roll)
    in degrees (euler_from_matrix) when it was asked for them, else None."""

    points: np.ndarray
    image_size: tuple[int, int]
    expression: dict[str, float] | None = None
    pose: tuple[float, float, float] | None = None

    @property
    def xy(self) -> np.ndarray:
        """(478, 2) pixel coordinates."""
        return self.points[:, :2]

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the face oval, in pixels; may reach outside the image."""
        oval = self.points[list(FACE_OVAL), :2]
        x0, y0 = oval.min(axis=0)
        x1, y1 = oval.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def area(self) -> float:
        """Area of the face oval's bounding box, in square pixels."""
        x0, y0, x1, y1 = self.bbox
        return (x1 - x0) * (y1 - y0)

    @property
    def visible_fraction(self) -> float:
        """Fraction of the 478 landmarks that lie inside the image (1.0 for a face fully in the picture)."""
        w, h = self.image_size
        x, y = self.points[:, 0], self.points[:, 1]
        return float(np.mean((x >= 0) & (x < w) & (y >= 0) & (y < h)))


class FaceLandmarker:
    """MediaPipe FaceLandmarker in IMAGE (`video=False`) or VIDEO (`video=True`) mode; use as a context manager.

    `model` is a path (or None to resolve it the usual way) or the model's bytes; `expressions`: also score each
    face's EXPRESSIONS from MediaPipe's blendshapes (a small extra model, about a millisecond a face); `pose`: also
    give each face's head pose (from MediaPipe's facial transformation matrix).
    """

    def __init__(self, model: str | os.PathLike | bytes | None = None, video: bool = False, max_faces: int = 4,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 expressions: bool = False, pose: bool = False):
        from mediapipe.tasks.python import BaseOptions, vision  # imported here: costly, and only needed now

        if not isinstance(model, bytes):
            path = resolve_model("face_landmarker", explicit=model)
            model = path.read_bytes()
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=model),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_faces=max_faces,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
            output_face_blendshapes=expressions,
            output_facial_transformation_matrixes=pose,
        )
        try:
            with _native_log_to_stderr_on_error():
                self._landmarker = vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            raise ModelMissingError(f"cannot load the face landmarker model: {exc}") from exc
        self.video = video
        self.expressions = expressions
        self._last_timestamp_ms = -1

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """Landmarks of every face in a photo (IMAGE mode), largest first; [] when there is none."""
        if self.video:
            raise ValueError("this FaceLandmarker is in VIDEO mode: call detect_video(frame, timestamp_ms)")
        return self._faces(self._landmarker.detect(_mp_image(image_bgr)), image_bgr.shape)

    def detect_video(self, frame_bgr: np.ndarray, timestamp_ms: int) -> list[Face]:
        """Landmarks in one video frame (VIDEO mode), largest first. Timestamps must increase; a repeated or
        earlier one is moved to 1 ms after the previous frame."""
        if not self.video:
            raise ValueError("this FaceLandmarker is in IMAGE mode: call detect(image)")
        timestamp_ms = max(int(timestamp_ms), self._last_timestamp_ms + 1)
        self._last_timestamp_ms = timestamp_ms
        result = self._landmarker.detect_for_video(_mp_image(frame_bgr), timestamp_ms)
        return self._faces(result, frame_bgr.shape)

    @staticmethod
    def _faces(result, shape: tuple[int, ...]) -> list[Face]:
        h, w = shape[:2]
        scale = np.array([w, h, w], np.float32)
        faces = []
        shapes = result.face_blendshapes or [None] * len(result.face_landmarks)
        matrices = result.facial_transformation_matrixes or [None] * len(result.face_landmarks)
        for landmarks, cats, matrix in zip(result.face_landmarks, shapes, matrices):
            pts = np.array([(p.x, p.y, p.z) for p in landmarks], np.float32) * scale
            faces.append(Face(points=pts, image_size=(w, h), expression=None if cats is None else expression(cats),
                              pose=None if matrix is None else euler_from_matrix(np.array(matrix))))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def close(self) -> None:
        """Release MediaPipe's graph (also done on leaving a `with` block)."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def expression(categories) -> dict[str, float]:
    """EXPRESSIONS scores from one face's MediaPipe blendshape categories."""
    scores = {c.category_name: c.score for c in categories}
    return {name: float(np.mean([scores[c] for c in cats])) for name, cats in EXPRESSIONS.items()}


def euler_from_matrix(m: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from a 4x4 (or 3x3) rotation of MediaPipe's canonical face, as seen in the
    image: yaw > 0 when the face turns toward the image's right, pitch > 0 when it looks up, roll > 0 when the head
    tilts clockwise."""
    r = np.asarray(m, np.float64)[:3, :3]
    r = r / np.linalg.norm(r, axis=0, keepdims=True)
    yaw = math.degrees(math.asin(float(np.clip(r[0, 2], -1.0, 1.0))))
    pitch = math.degrees(math.atan2(-r[1, 2], r[2, 2]))
    roll = math.degrees(math.atan2(-r[0, 1], r[0, 0]))
    return yaw, -pitch, -roll


def _mp_image(image_bgr: np.ndarray):
    import mediapipe as mp

    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 \
            or image_bgr.shape[2] != 3:
        got = f"{image_bgr.dtype} array of shape {image_bgr.shape}" if isinstance(image_bgr, np.ndarray) \
            else type(image_bgr).__name__
        raise BadInputError(f"expected a uint8 BGR image of shape (H, W, 3), got a {got}")
    if min(image_bgr.shape[:2]) < 8:
        raise BadInputError(f"image too small for face detection: {image_bgr.shape[1]}x{image_bgr.shape[0]} px")
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)


@contextlib.contextmanager
def _native_log_to_stderr_on_error() -> Iterator[None]:
    """Hold back MediaPipe's native start-up log lines (written to fd 2), showing them only if start-up fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
