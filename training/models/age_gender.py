"""The age and gender labellers (numpy inference; trained by training/train/age_gender.py on UTKFace).

Input: a face's features (training/data/utkface_labels.face_features: the shipped recogniser's 1024-d embedding
of its recognition crop and a 32 x 32 thumbnail of that crop). Output: age in years and P(female) in 0..1.
A two-layer MLP (`kind` "mlp") or ridge/logistic heads (`kind` "linear"), whichever did better on validation.
They label faces for fitting the age and gender directions; the engine does not load them.
Trained on UTKFace: non-commercial research use only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABELLER_PATH = Path("runs") / "age_gender" / "labeller.npz"


def feature_vector(emb: np.ndarray, thumb: np.ndarray) -> np.ndarray:
    """(B, 1024) embeddings + (B, 32, 32, 3) uint8 thumbnails -> (B, 1024 + 3072) float32 features."""
    emb = np.asarray(emb, np.float32).reshape(len(emb), -1)
    t = np.asarray(thumb, np.float32).reshape(len(thumb), -1) / 255.0 - 0.5
    return np.concatenate([emb, t], axis=1)


@dataclass
class AgeGenderHeads:
    mean: np.ndarray
    std: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]  # (W, b) per layer; ReLU between; last gives (age, gender logit)

    @classmethod
    def load(cls, path: Path = LABELLER_PATH) -> "AgeGenderHeads":
        if not Path(path).is_file():
            raise SystemExit(f"no age/gender labeller at {path}: python -m training.train.age_gender")
        with np.load(path) as d:
            n = int(d["n_layers"])
            return cls(d["mean"], d["std"], [(d[f"w{i}"], d[f"b{i}"]) for i in range(n)])

    def save(self, path: Path = LABELLER_PATH, **meta: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"w{i}": w for i, (w, _) in enumerate(self.layers)} | {f"b{i}": b for i, (_, b) in enumerate(self.layers)}
        np.savez(path, mean=self.mean, std=self.std, n_layers=len(self.layers), **arrays, **meta)

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """features (B, F) -> (age in years (B,), P(female) (B,)); heads fitted on the embedding alone take the
        first 1024 columns (feature_vector puts the embedding first)."""
        h = (np.asarray(features, np.float32)[:, :len(self.mean)] - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h[:, 0], 1.0 / (1.0 + np.exp(-h[:, 1]))


class AgeGenderLabeller:
    """Label a face image: {"age": years, "gender": P(female)}, or None when MediaPipe finds no face."""

    def __init__(self, path: Path = LABELLER_PATH, threads: int = 1):
        from engine.face_id import FaceId
        from engine.landmarks import FaceLandmarker

        self.heads = AgeGenderHeads.load(path)
        self.face_id = FaceId.load(threads=threads)
        self.landmarker = FaceLandmarker(max_faces=1)

    def label(self, image_bgr: np.ndarray, points: np.ndarray | None = None) -> dict[str, float] | None:
        from training.data.utkface_labels import face_features

        f = face_features(image_bgr, self.landmarker, self.face_id, points)
        if f is None:
            return None
        age, female = self.heads.predict(feature_vector(f[0][None], f[1][None]))
        return {"age": float(age[0]), "gender": float(female[0]), "embedding": f[0]}

    def close(self) -> None:
        self.landmarker.close()
