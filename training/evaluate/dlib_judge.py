"""The identity judge of every evaluation: dlib's face-recognition descriptors, trained on real faces and
independent of the models under test (its distance's usual "same person" threshold is 0.6)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np


def dlib_models() -> Path:
    """The folder of dlib's model files (the face_recognition_models package)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise SystemExit("the dlib judges need dlib: pip install dlib-bin face-recognition-models (the `train` extra)")
    return Path(spec.submodule_search_locations[0]) / "models"


class DlibIdentity:
    """dlib face-recognition descriptors of aligned face crops (models from the face_recognition_models package)."""

    def __init__(self):
        import dlib

        models = dlib_models()
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self.dlib = dlib

    def descriptor(self, bgr: np.ndarray) -> tuple[np.ndarray, bool]:
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        dets = self.detector(rgb, 1)
        s = rgb.shape[0]
        found = len(dets) > 0
        rect = max(dets, key=lambda r: r.area()) if found else self.central_box(s)
        return np.array(self.net.compute_face_descriptor(rgb, self.shape(rgb, rect))), found

    def central_box(self, size: int):
        """The face box of an aligned size x size crop when no detector is used or it finds nothing."""
        return self.dlib.rectangle(int(0.2 * size), int(0.25 * size), int(0.8 * size), int(0.85 * size))

    def distance(self, a_bgr: np.ndarray, b_bgr: np.ndarray) -> tuple[float, bool]:
        (da, fa), (db, fb) = self.descriptor(a_bgr), self.descriptor(b_bgr)
        return float(np.linalg.norm(da - db)), fa and fb


# A generic head (millimetres; x to the image's right, y up, z toward the camera) at six of dlib's 68 points:
# nose tip, chin, outer eye corners, mouth corners. Enough for yaw and pitch changes of a few to tens of degrees.
HEAD_POINTS = {30: (0.0, 0.0, 0.0), 8: (0.0, -63.6, -12.5), 36: (-43.3, 32.7, -26.0), 45: (43.3, 32.7, -26.0),
               48: (-28.9, -28.9, -24.1), 54: (28.9, -28.9, -24.1)}


class DlibPose:
    """Head yaw and pitch (degrees) from dlib's 68 landmarks and a generic 3D head (OpenCV solvePnP): a pose judge
    independent of MediaPipe, which the engine itself uses to track and to aim edits. Its angles follow the generic
    head: on generated faces turned by the yaw direction it reads 1.3-1.4x MediaPipe's change, so compare how
    consistent changes are across faces, not their size in degrees."""

    def __init__(self):
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(dlib_models() / "shape_predictor_68_face_landmarks.dat"))

    def pose(self, bgr: np.ndarray) -> tuple[float, float] | None:
        """(yaw > 0 toward the image's right, pitch > 0 looking up) of the largest face, or None."""
        read = self.read(bgr)
        return None if read is None else (read["yaw"], read["pitch"])

    def read(self, bgr: np.ndarray) -> dict[str, float] | None:
        """The largest face's yaw and pitch (as `pose`), its mouth opening (the inner lips' gap) and its mouth's
        width (corner to corner: rounded lips narrow it), both over the distance between the outer eye corners; or
        None without a face."""
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        dets = self.detector(rgb, 1)
        if not dets:
            return None
        shape = self.shape(rgb, max(dets, key=lambda r: r.area()))
        part = lambda i: np.array([shape.part(i).x, shape.part(i).y], np.float64)  # noqa: E731
        image_pts = np.array([part(i) for i in HEAD_POINTS])
        model = np.array(list(HEAD_POINTS.values()), np.float64) * np.array([1, -1, -1])  # to OpenCV's camera axes
        h, w = bgr.shape[:2]
        camera = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float64)
        ok, rvec, _ = cv2.solvePnP(model, image_pts, camera, None, flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok:
            return None
        r, _ = cv2.Rodrigues(rvec)
        yaw = -float(np.degrees(np.arcsin(np.clip(r[0, 2], -1, 1))))
        pitch = float(np.degrees(np.arctan2(-r[1, 2], r[2, 2])))
        eyes = max(np.linalg.norm(part(36) - part(45)), 1.0)
        gap = np.mean([np.linalg.norm(part(a) - part(b)) for a, b in INNER_LIPS])
        return {"yaw": yaw, "pitch": pitch, "mouth": float(gap / eyes),
                "mouth_width": float(np.linalg.norm(part(48) - part(54)) / eyes)}


INNER_LIPS = ((61, 67), (62, 66), (63, 65))  # dlib's inner upper and lower lip points, facing pairs
