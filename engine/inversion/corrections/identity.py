"""Identity correction: move the encoder's W+ by what a face recogniser trained on real faces says about the person.

The feature is the face-recognition embedding of engine/face_id.py (HSE FaceRes, trained on VGGFace2 photos), of
the same aligned crop the encoder sees. One linear map (engine/inversion/corrections/linear.py) to what the
encoder's one pass (with the landmark correction) still gets wrong, in w_std units: fitted on generated faces
(training/fit/identity_correction.py), plus a term fitted on real photos against the codes the quality mode makes
of them (training/fit/identity_correction_real.py), since a real photo's errors are not a generated face's. It is
fitted for one encoder and one landmark correction: its meta names both sha256s, and
engine.inversion.encoder.Encoder.load uses it only with those.
"""
from __future__ import annotations

from engine.inversion.corrections.linear import LinearCorrection
from engine.models import MODELS_DIR

IDENTITY_CORRECTION_PATH = MODELS_DIR / "identity_correction.npz"


class IdentityCorrection(LinearCorrection):
    """The feature is the unit face-recognition embedding (F = 1024)."""

    PATH = IDENTITY_CORRECTION_PATH
    WHAT = "identity-correction"
    REGENERATE = "python -m training.fit.identity_correction && python -m training.fit.identity_correction_real"
    FEATURE = "a finite {f}-d face embedding"
