"""Landmark correction: move the encoder's W+ by what MediaPipe's landmarks say about the face's shape.

The inversion encoder was trained on generated faces only, and on real photos it misses much of what makes a face
that person's (docs/ENCODER.md). MediaPipe's FaceLandmarker was trained on real faces and already runs on every
photo and frame to cut the crop. A linear model fitted on generated faces (training/fit/landmark_correction.py)
maps the face's 478 landmarks in crop units (engine.align.crop_points) to the encoder's remaining W+ error on the
slots it corrects (`slots`: the used ones up to 128 px, not the colour slots; in w_std units): a reduced-rank ridge
regression, `x_mean` (F,), `proj` (F, k),
`coef` (k, S * 512) (engine/inversion/corrections/linear.py). No render, no torch: two small matrix products.
"""
from __future__ import annotations

from engine.inversion.corrections.linear import LinearCorrection
from engine.models import MODELS_DIR

LANDMARK_CORRECTION_PATH = MODELS_DIR / "landmark_correction.npz"


class LandmarkCorrection(LinearCorrection):
    """The feature is the face's 478 MediaPipe landmarks in crop units (F = 478 * 3)."""

    PATH = LANDMARK_CORRECTION_PATH
    WHAT = "landmark-correction"
    REGENERATE = "python -m training.fit.landmark_correction"
    FEATURE = "{f} finite values: 478 3-D landmarks in crop units"
