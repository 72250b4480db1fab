"""Skin-tone matching: move an inverted W+ so the reconstruction's skin chroma matches the photo's.

The encoder follows skin lightness on real photos but hardly the yellow-blue axis (docs/ENCODER.md: over 16 real
faces, reconstruction b* against input b* has slope 0.28; on generated faces it is followed). A linear model
fitted on generated faces (training/fit/skin_tone.py) predicts the skin's median CIELAB from the mean W residual
of the used slots; matching solves for the smallest change of that mean that makes the predicted a* and b* equal
the photo's, and adds it to every used slot. No render, no torch: a 512 x 3 matrix.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from engine.align import Crop, transform_points
from engine.landmarks import FACE_OVAL, Face
from engine.models import MODELS_DIR, load_npz_model

SKIN_TONE_PATH = MODELS_DIR / "skin_tone.npz"
CHROMA = (1, 2)  # a*, b*: lightness is already followed (slope 1.06), so it is left to the encoder
LAB = (0, 1, 2)  # all three: the closed-loop pass, which corrects by the rendered skin, also fixes L* offsets


# The colours a morph target's face may take (python -m training.evaluate.skin_range, 1,384 UTKFace colour photos):
# lightness within its 1-99 % band, chroma and hue within their 2.5-97.5 % bands. A photo's strong colour cast
# (a chroma of 62) or grey, dim light (chroma 5, hue -2°) is brought to the band's edge, not carried onto the user.
SKIN_RANGE = {"lightness": (26.4, 79.4), "chroma": (10.2, 40.0), "hue": (18.8, 72.3)}


def lch(stats_mean: np.ndarray) -> np.ndarray:
    """8-bit Lab means (..., 3) as OpenCV scales them -> CIELAB lightness, chroma and hue in degrees (..., 3)."""
    m = np.asarray(stats_mean, np.float64)
    a, b = m[..., 1] - 128.0, m[..., 2] - 128.0
    return np.stack([m[..., 0] * 100.0 / 255.0, np.hypot(a, b), np.degrees(np.arctan2(b, a))], axis=-1)


def within_skin_range(stats: np.ndarray | None) -> np.ndarray | None:
    """A photo's face colours (engine.paste.lab_stats: 8-bit Lab mean and std, (2, 3)) with the mean moved into
    SKIN_RANGE; the std as it is. A greyscale photo's hue is the band's middle."""
    if stats is None:
        return None
    light, chroma, hue = lch(stats[0])
    r = SKIN_RANGE
    hue = np.clip(hue, *r["hue"]) if chroma >= 3.0 else sum(r["hue"]) / 2
    light, chroma, hue = np.clip(light, *r["lightness"]), np.clip(chroma, *r["chroma"]), np.radians(hue)
    mean = [light * 255.0 / 100.0, 128.0 + chroma * np.cos(hue), 128.0 + chroma * np.sin(hue)]
    return np.stack([np.asarray(mean), np.asarray(stats[1], np.float64)])


def face_oval_mask(face: Face, crop: Crop) -> np.ndarray:
    """Boolean (size, size) mask of the face oval (MediaPipe landmarks) in the crop's pixels."""
    poly = transform_points(crop.matrix, face.xy[list(FACE_OVAL)])
    mask = np.zeros((crop.size, crop.size), np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    return mask.astype(bool)


def skin_lab(bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median CIELAB (L* 0-100, a*, b*) inside a mask (the face oval: mostly skin, a robust skin-tone reading)."""
    pixels = bgr[mask].reshape(1, -1, 3).astype(np.float32) / 255.0  # only the masked pixels are converted
    if pixels.shape[1] == 0:
        return np.full(3, np.nan, np.float32)
    return np.median(cv2.cvtColor(pixels, cv2.COLOR_BGR2LAB)[0], axis=0)


@dataclass
class SkinToneModel:
    """Skin CIELAB ≈ lab_mean + (x - x_mean) @ coef, x = mean over `slots` of (W+ - w_avg) / w_std."""

    x_mean: np.ndarray  # (512,)
    coef: np.ndarray  # (512, 3)
    lab_mean: np.ndarray  # (3,)
    w_avg: np.ndarray  # (512,)
    w_std: np.ndarray  # (512,)
    slots: np.ndarray  # (23,) bool: the slots the generator uses
    meta: dict

    @classmethod
    def load(cls, path: str | os.PathLike = SKIN_TONE_PATH) -> "SkinToneModel":
        d, meta = load_npz_model(path, ("x_mean", "coef", "lab_mean", "w_avg", "w_std", "slots"), "skin-tone model",
                                 "regenerate: python -m training.fit.skin_tone")
        return cls(d["x_mean"], d["coef"], d["lab_mean"], d["w_avg"], d["w_std"], d["slots"].astype(bool), meta)

    def features(self, wplus: np.ndarray) -> np.ndarray:
        return ((wplus[0, self.slots] - self.w_avg) / self.w_std).mean(0)

    def predict(self, wplus: np.ndarray) -> np.ndarray:
        """Predicted median skin CIELAB of W+'s render (1, 23, 512) -> (3,)."""
        return self.lab_mean + (self.features(wplus) - self.x_mean) @ self.coef

    def match(self, wplus: np.ndarray, lab_target: np.ndarray, channels: tuple[int, ...] = CHROMA) -> np.ndarray:
        """W+ moved by the smallest change of its mean residual that makes the predicted skin `channels` equal
        `lab_target`'s while the predicted values of the other channels stay as they are (matching chroma alone
        would drag L* along the same directions); the change is added to every used slot (in w_std units), so
        the code stays near W. A target that is not a number (no skin pixels were read) leaves W+ as it is."""
        delta = np.asarray(lab_target, np.float64) - self.predict(wplus)
        held = [c for c in LAB if c not in channels]
        delta[held] = 0.0
        return self.shift(wplus, delta, LAB)

    def shift(self, wplus: np.ndarray, delta_lab: np.ndarray, channels: tuple[int, ...] = LAB) -> np.ndarray:
        """W+ moved by the smallest change of its mean residual that changes the predicted skin `channels` by
        `delta_lab` (3,), added to every used slot; a delta that is not a number leaves W+ as it is."""
        g = self.coef[:, list(channels)]  # (512, k)
        delta = np.asarray(delta_lab, np.float64)[list(channels)]
        if not np.all(np.isfinite(delta)):
            return np.array(wplus, np.float32, copy=True)
        dx = g @ np.linalg.solve(g.T @ g, delta)
        out = np.array(wplus, np.float32, copy=True)
        out[0, self.slots] += (dx * self.w_std).astype(np.float32)
        return out
