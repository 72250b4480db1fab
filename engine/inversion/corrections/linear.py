"""A linear correction of the encoder's W+ from a feature of the face the encoder does not see well.

The inversion encoder learned faces from the generator alone; on real photos it misses part of what makes a face
that person's (docs/ENCODER.md). Networks trained on real faces do see it: MediaPipe's landmarks (face shape,
engine/inversion/corrections/landmark.py) and a face recogniser's embedding (identity, engine/inversion/corrections/identity.py). A
reduced-rank ridge regression fitted on generated faces maps such a feature to the encoder's remaining W+ error on
some slots, in w_std units: error ≈ bias + ((x - x_mean) @ proj) @ coef. No render, no torch: two small matrix
products. The subclasses say which feature it reads and how to regenerate it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from engine.errors import BadInputError
from engine.models import load_npz_model, sha256_file


@dataclass
class LinearCorrection:
    """W+ error ≈ (bias + ((x - x_mean) @ proj) @ coef) * w_std on `slots` (the ones it corrects). Subclasses set
    PATH (the shipped file), WHAT, REGENERATE and FEATURE (what `x` is, formatted with f = its size)."""

    x_mean: np.ndarray  # (F,)
    proj: np.ndarray  # (F, k)
    coef: np.ndarray  # (k, S * 512)
    bias: np.ndarray  # (S * 512,)
    w_std: np.ndarray  # (512,)
    slots: np.ndarray  # (23,) bool
    meta: dict
    sha256: str = ""  # of the file it was read from

    PATH: ClassVar[Path | None] = None
    WHAT: ClassVar[str] = "linear correction"
    REGENERATE: ClassVar[str] = ""
    FEATURE: ClassVar[str] = "a finite feature of {f} values"

    @classmethod
    def load(cls, path: str | os.PathLike | None = None):
        """The model saved at `path` (default: the shipped PATH; npz, no pickle); ModelMissingError naming the
        regenerate command."""
        path = Path(path or cls.PATH)
        d, meta = load_npz_model(path, ("x_mean", "proj", "coef", "bias", "w_std", "slots"), f"{cls.WHAT} model",
                                 f"regenerate: {cls.REGENERATE}")
        return cls(d["x_mean"], d["proj"].astype(np.float32), d["coef"].astype(np.float32), d["bias"],
                   d["w_std"], d["slots"].astype(bool), meta, sha256_file(path))

    def deltas(self, x: np.ndarray) -> np.ndarray:
        """Features (N, F) -> the W+ changes on the corrected slots only, (N, S, 512) (batched; fitting code)."""
        x = np.asarray(x, np.float32).reshape(len(x), -1)
        if x.shape[1:] != self.x_mean.shape or not np.all(np.isfinite(x)):
            raise BadInputError(f"the {self.WHAT} takes {self.FEATURE.format(f=self.x_mean.size)}")
        r = self.bias + ((x - self.x_mean) @ self.proj) @ self.coef
        return r.reshape(len(x), -1, self.w_std.size) * self.w_std

    def delta(self, x: np.ndarray) -> np.ndarray:
        """One feature (any shape with F elements) -> the W+ change (23, 512); zero outside `slots`."""
        out = np.zeros((len(self.slots), self.w_std.size), np.float32)
        out[self.slots] = self.deltas(np.asarray(x)[None])[0]
        return out

    def apply(self, wplus: np.ndarray, x: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """W+ (1, 23, 512) plus `strength` times the correction its feature `x` asks for."""
        return (wplus + strength * self.delta(x)[None]).astype(np.float32)
