"""What a face looks like, measured: head pose from MediaPipe and age and P(female) from the recogniser's
embedding.

An edit direction moves every face by the same latent step, but faces answer differently: asked for a 20° turn,
held-out real photos turned 10-39° (docs/EDITS.md). Stills can afford to look at their own render, so
`celeblook edit` measures what each step did and re-aims it (engine.edits.aim_amounts). The age and gender
heads are a two-layer MLP on the shipped recogniser's 1024-d embedding (engine/face_id.py), trained by
training/train/age_gender.py on UTKFace: non-commercial research use only, like the directions they fitted.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from engine.models import MODELS_DIR, load_npz_model

HEADS_PATH = MODELS_DIR / "age_gender_labeller.npz"
POSE = ("yaw", "pitch", "roll")


@dataclass
class AgeGenderHeads:
    """Embedding (B, D) -> (age in years, P(female)): standardise, then (W, b) layers with ReLU between."""

    mean: np.ndarray  # (D,) feature means of the training photos
    std: np.ndarray  # (D,) their standard deviations
    layers: list[tuple[np.ndarray, np.ndarray]]  # (W (in, out), b (out,)); the last gives (age, gender logit)

    @classmethod
    def load(cls, path: str | os.PathLike = HEADS_PATH) -> "AgeGenderHeads":
        arrays, _ = load_npz_model(path, ("mean", "std", "n_layers"), "age and gender labeller",
                                   "regenerate: python -m training.train.age_gender, then "
                                   "python -m training.export.age_gender")
        n = int(arrays["n_layers"])
        return cls(arrays["mean"].astype(np.float32), arrays["std"].astype(np.float32),
                   [(arrays[f"w{i}"].astype(np.float32), arrays[f"b{i}"].astype(np.float32)) for i in range(n)])

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """features (B, >= D; the embedding first) -> (age in years (B,), P(female) (B,))."""
        h = (np.asarray(features, np.float32)[:, :len(self.mean)] - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h[:, 0], 1.0 / (1.0 + np.exp(-h[:, 1]))


class FaceReader:
    """Read a face image: {"yaw", "pitch", "roll" (degrees), and with `face_id` the recogniser's "embedding" (D,),
    and with `heads` too "age" (years) and "gender" (P(female))}, or None when MediaPipe finds no face.
    `landmarker` must be an IMAGE-mode engine.landmarks.FaceLandmarker made with pose=True; `face_id` an
    engine.face_id.FaceId."""

    def __init__(self, landmarker, face_id=None, heads: AgeGenderHeads | None = None):
        self.landmarker, self.face_id, self.heads = landmarker, face_id, heads

    def read(self, image_bgr: np.ndarray) -> dict[str, float] | None:
        from engine.face_id import recognition_crop

        faces = self.landmarker.detect(image_bgr)
        if not faces or faces[0].pose is None:
            return None
        out: dict = dict(zip(POSE, faces[0].pose))
        if self.face_id is not None:
            embedding = self.face_id.embed_crops(recognition_crop(image_bgr, faces[0].xy, self.face_id.input_size))
            out["embedding"] = embedding[0]
            if self.heads is not None:
                age, female = self.heads.predict(embedding)
                out |= {"age": float(age[0]), "gender": float(female[0])}
        return out
