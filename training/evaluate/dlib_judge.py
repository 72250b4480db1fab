"""The identity judge of every evaluation: dlib's face-recognition descriptors, trained on real faces and
independent of the models under test (its distance's usual "same person" threshold is 0.6)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np


class DlibIdentity:
    """dlib face-recognition descriptors of aligned face crops (models from the face_recognition_models package)."""

    def __init__(self):
        import dlib

        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None:
            raise SystemExit("identity needs dlib: pip install dlib-bin face-recognition-models (the `train` extra)")
        models = Path(spec.submodule_search_locations[0]) / "models"
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
