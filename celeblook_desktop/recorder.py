"""GIF recording of the output (or input | output side by side): frames are collected at most `max_fps` per second,
downscaled to `max_side`, and written atomically with engine.gif.write_gif when recording stops.

No Qt here: the window owns a Recorder and writes the GIF off the UI thread (see window.py).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.errors import BadInputError
from engine.gif import fit_size, write_gif

MAX_FPS = 12.0
MAX_SIDE = 480
MAX_FRAMES = 600  # 50 s at 12 fps: a GIF that size is already tens of MB


def side_by_side(left_bgr: np.ndarray, right_bgr: np.ndarray) -> np.ndarray:
    """Two frames next to each other at the height of the right one."""
    h = right_bgr.shape[0]
    if left_bgr.shape[0] != h:
        w = max(1, round(left_bgr.shape[1] * h / left_bgr.shape[0]))
        left_bgr = cv2.resize(left_bgr, (w, h), interpolation=cv2.INTER_AREA)
    return np.hstack([left_bgr, right_bgr])


@dataclass
class Recorder:
    """Collects BGR frames with their capture time (seconds); `stop()` hands back what to write."""

    max_fps: float = MAX_FPS
    max_side: int = MAX_SIDE
    max_frames: int = MAX_FRAMES
    frames: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    recording: bool = False

    def start(self) -> None:
        self.frames, self.times, self.recording = [], [], True

    def add(self, frame_bgr: np.ndarray, t: float | None = None) -> bool:
        """Keep a frame if recording and at least 1/max_fps s after the last kept one; True when kept."""
        if not self.recording or len(self.frames) >= self.max_frames:
            return False
        t = time.monotonic() if t is None else t
        if self.times and t - self.times[-1] < 1.0 / self.max_fps - 1e-6:
            return False
        small = fit_size(frame_bgr, self.max_side)
        if self.frames and small.shape != self.frames[0].shape:  # source changed size mid-recording
            small = cv2.resize(small, (self.frames[0].shape[1], self.frames[0].shape[0]), interpolation=cv2.INTER_AREA)
        self.frames.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        self.times.append(t)
        return True

    @property
    def fps(self) -> float:
        """The rate the frames were actually kept at (so the GIF plays in real time), at most max_fps."""
        if len(self.times) < 2:
            return self.max_fps
        span = self.times[-1] - self.times[0]
        return float(min(self.max_fps, max(1.0, (len(self.times) - 1) / span))) if span > 0 else self.max_fps

    def stop(self) -> tuple[list[np.ndarray], float]:
        """End recording; returns (RGB frames, fps) and forgets them."""
        frames, fps = self.frames, self.fps
        self.frames, self.times, self.recording = [], [], False
        return frames, fps


def save_gif(path: str | os.PathLike, frames_rgb: list[np.ndarray], fps: float, boomerang: bool = False) -> Path:
    """Write the GIF atomically (BadInputError when there are no frames)."""
    if not frames_rgb:
        raise BadInputError("nothing recorded: no frames arrived while recording")
    path = Path(path)
    write_gif(path, frames_rgb, fps=fps, max_side=MAX_SIDE, boomerang=boomerang)
    return path


def default_gif_path(folder: str | os.PathLike, stem: str) -> Path:
    """folder/<stem>-YYYYmmdd-HHMMSS.gif."""
    return Path(folder) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.gif"
