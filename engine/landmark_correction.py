"""Landmark correction: move the encoder's W+ by what MediaPipe's landmarks say about the face's shape.

The inversion encoder was trained on generated faces only, and on real photos it misses much of what makes a face
that person's (docs/ENCODER.md). MediaPipe's FaceLandmarker was trained on real faces and already runs on every
photo and frame to cut the crop. A linear model fitted on generated faces (training/fit_landmark_correction.py)
maps the face's 478 landmarks in crop units (engine.align.crop_points) to the encoder's remaining W+ error on the
slots it corrects (`slots`: the used ones up to 128 px, not the colour slots; in w_std units): a reduced-rank ridge
regression, `x_mean` (F,), `proj` (F, k),
`coef` (k, S * 512). No render, no torch: two small matrix products.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import BadInputError, ModelMissingError
from engine.models import MODELS_DIR

LANDMARK_CORRECTION_PATH = MODELS_DIR / "landmark_correction.npz"


@dataclass
class LandmarkCorrection:
    """W+ error ≈ (bias + ((points - x_mean) @ proj) @ coef) * w_std on `slots` (the ones it corrects)."""

    x_mean: np.ndarray  # (F,) F = 478 * 3
    proj: np.ndarray  # (F, k)
    coef: np.ndarray  # (k, S * 512)
    bias: np.ndarray  # (S * 512,)
    w_std: np.ndarray  # (512,)
    slots: np.ndarray  # (23,) bool
    meta: dict

    @classmethod
    def load(cls, path: str | os.PathLike = LANDMARK_CORRECTION_PATH) -> "LandmarkCorrection":
        path = Path(path)
        if not path.is_file():
            raise ModelMissingError(f"landmark-correction model not found: {path} "
                                    "(regenerate: python -m training.fit_landmark_correction)")
        with np.load(path, allow_pickle=False) as d:
            return cls(d["x_mean"], d["proj"].astype(np.float32), d["coef"].astype(np.float32), d["bias"],
                       d["w_std"], d["slots"].astype(bool), json.loads(str(d["meta"])))

    def delta(self, points: np.ndarray) -> np.ndarray:
        """Landmarks in crop units (478, 3) -> the W+ change (23, 512); zero outside `slots`."""
        x = np.asarray(points, np.float32).reshape(-1)
        if x.shape != self.x_mean.shape or not np.all(np.isfinite(x)):
            raise BadInputError(f"landmark correction takes {self.x_mean.size // 3} finite 3-D landmarks")
        r = self.bias + ((x - self.x_mean) @ self.proj) @ self.coef
        out = np.zeros((len(self.slots), self.w_std.size), np.float32)
        out[self.slots] = r.reshape(-1, self.w_std.size) * self.w_std
        return out

    def apply(self, wplus: np.ndarray, points: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """W+ (1, 23, 512) corrected by the face's landmarks (crop units, engine.align.crop_points)."""
        return (wplus + strength * self.delta(points)[None]).astype(np.float32)
