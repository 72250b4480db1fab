"""Identity feedback: one closed-loop step that moves W+ by how the recogniser sees the reconstruction differ.

The one pass (engine/inversion/encoder.py: the encoder and its two corrections) predicts W+ from the input alone. The
face recogniser (engine/face_id.py, trained on real photos) can also read the reconstruction: the difference of
the two embeddings, input minus reconstruction, says what identity the render still misses. A linear model fitted
on generated faces (training/fit/identity_feedback.py) maps that difference to what the one pass still gets wrong
on the shape slots, in w_std units (engine/inversion/corrections/linear.py). One step costs one render, a landmark pass on
it and the recogniser. It is fitted for one one pass (Encoder.one_pass_id, in its meta): Encoder.load uses it
only with that one.
"""
from __future__ import annotations

import numpy as np

from engine.inversion.corrections.linear import LinearCorrection
from engine.models import MODELS_DIR

IDENTITY_FEEDBACK_PATH = MODELS_DIR / "identity_feedback.npz"


class IdentityFeedback(LinearCorrection):
    """The feature is the input's unit recognition embedding minus the reconstruction's (F = 1024)."""

    PATH = IDENTITY_FEEDBACK_PATH
    WHAT = "identity-feedback"
    REGENERATE = "python -m training.fit.identity_feedback"
    FEATURE = "the difference of two finite {f}-d face embeddings"


def reconstruction_embedding(face_id, landmarker, recon_bgr: np.ndarray) -> np.ndarray | None:
    """The recogniser's embedding of a reconstruction (uint8 BGR, any framing) from its own landmarks; None when
    MediaPipe finds no face in it."""
    faces = landmarker.detect(recon_bgr)
    return face_id.embed(recon_bgr, faces[0].xy) if faces else None
