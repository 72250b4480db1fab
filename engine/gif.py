"""Animated GIF writing (atomic), shared by sweep GIFs and the desktop recorder."""
from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np

from engine.atomic import atomic_path
from engine.errors import BadInputError


def fit_size(frame: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longer side is at most `max_side` (INTER_AREA); smaller frames pass through."""
    h, w = frame.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return frame
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def write_gif(path: str | os.PathLike, frames_rgb: Sequence[np.ndarray], fps: float = 12.0,
              max_side: int = 512, boomerang: bool = False) -> None:
    """Write RGB uint8 frames as a looping GIF, atomically; `boomerang` appends the frames reversed."""
    import imageio.v3 as iio

    if not frames_rgb:
        raise BadInputError("no frames to write")
    frames = [fit_size(np.ascontiguousarray(f), max_side) for f in frames_rgb]
    if any(f.shape != frames[0].shape for f in frames):
        raise BadInputError("all GIF frames must have the same size")
    if boomerang and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    with atomic_path(path, suffix=".gif") as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=int(round(1000 / fps)), loop=0)
