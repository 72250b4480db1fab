"""Latent codes: shapes, validation and (safe) .npy loading.

W is a (512,) code; W+ is (23, 512), one code per generator slot (training/models/mobilestylegan.py documents which
slot drives what). A W is used for every slot.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.atomic import atomic_path
from engine.errors import BadInputError

STYLE_DIM = 512
N_SLOTS = 23


def to_wplus(latent: np.ndarray) -> np.ndarray:
    """(512,), (1, 512), (B, 512), (23, 512) or (B, 23, 512) -> float32 (B, 23, 512)."""
    a = np.asarray(latent, dtype=np.float32)
    if a.ndim == 1 and a.shape == (STYLE_DIM,):
        a = a[None]
    if a.ndim == 2 and a.shape == (N_SLOTS, STYLE_DIM):
        return a[None].copy()
    if a.ndim == 2 and a.shape[1] == STYLE_DIM:
        return np.repeat(a[:, None, :], N_SLOTS, axis=1)
    if a.ndim == 3 and a.shape[1:] == (N_SLOTS, STYLE_DIM):
        return a.copy()
    raise BadInputError(f"a latent must be a W (512,) / (1, 512) or a W+ (23, 512) / (1, 23, 512); got shape {a.shape}")


def load_latent(path: str | os.PathLike) -> np.ndarray:
    """Read a latent .npy (no pickles) and return it as W+ (1, 23, 512)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"latent file not found: {path}")
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadInputError(f"{path} is not a readable .npy latent ({exc})") from exc
    if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)):
        raise BadInputError(f"{path}: a latent must hold finite floats (got dtype {a.dtype})")
    wplus = to_wplus(a)
    if len(wplus) != 1:
        raise BadInputError(f"{path} holds {len(wplus)} latents; give one")
    return wplus


def save_latent(path: str | os.PathLike, latent: np.ndarray) -> None:
    """Write a latent as .npy, atomically."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(latent, dtype=np.float32))
