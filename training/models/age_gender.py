"""The age and gender labellers for training and evaluation (trained by training/train/age_gender.py on UTKFace).

Input: a face's features (training/data/utkface_labels.face_features: the shipped recogniser's 1024-d embedding
of its recognition crop and a 32 x 32 thumbnail of that crop). Output: age in years and P(female) in 0..1.
The heads (engine.attributes.AgeGenderHeads) are a two-layer MLP or ridge/logistic heads, whichever did better on
validation; training writes runs/age_gender/labeller.npz, and training/export/age_gender.py ships a float16 copy
that the engine reads to aim still edits. Trained on UTKFace: non-commercial research use only.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.attributes import HEADS_PATH, AgeGenderHeads

LABELLER_PATH = Path("runs") / "age_gender" / "labeller.npz"  # what training writes; HEADS_PATH is the shipped copy


def feature_vector(emb: np.ndarray, thumb: np.ndarray) -> np.ndarray:
    """(B, 1024) embeddings + (B, 32, 32, 3) uint8 thumbnails -> (B, 1024 + 3072) float32 features."""
    emb = np.asarray(emb, np.float32).reshape(len(emb), -1)
    t = np.asarray(thumb, np.float32).reshape(len(thumb), -1) / 255.0 - 0.5
    return np.concatenate([emb, t], axis=1)


def save_heads(heads: AgeGenderHeads, path: Path, dtype=np.float32, **meta) -> None:
    """Write heads as the engine reads them (arrays + JSON `meta`, no pickle); `dtype` for the weight matrices."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"w{i}": w.astype(dtype) for i, (w, _) in enumerate(heads.layers)} | \
        {f"b{i}": b.astype(np.float32) for i, (_, b) in enumerate(heads.layers)}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, mean=heads.mean, std=heads.std, n_layers=len(heads.layers), meta=json.dumps(meta), **arrays)
    tmp.replace(path)


class AgeGenderLabeller:
    """Label a face image: {"age": years, "gender": P(female), "embedding": the recogniser's}, or None when MediaPipe
    finds no face: the engine's own reader (engine.attributes.FaceReader), so training, evaluation and the aimed
    edits read faces the same way."""

    def __init__(self, path: Path = HEADS_PATH, threads: int = 1):
        from engine.attributes import FaceReader
        from engine.face_id import FaceId
        from engine.landmarks import FaceLandmarker

        self.reader = FaceReader(FaceLandmarker(max_faces=1, pose=True), FaceId.load(threads=threads),
                                 AgeGenderHeads.load(path))

    def label(self, image_bgr: np.ndarray) -> dict | None:
        read = self.reader.read(image_bgr)
        return None if read is None else {k: read[k] for k in ("age", "gender", "embedding")}

    def close(self) -> None:
        self.reader.landmarker.close()
