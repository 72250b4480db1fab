"""Recording the output (or input | output side by side) as a GIF or an MP4, with bounded memory.

Frames are kept at most `max_fps` per second, downscaled to `max_side`, and spooled to disk as they arrive
(engine.recording.Spool: a few ms and no memory per frame); a take ends when the user stops it or at its
duration limit (50 s for a GIF, which is already tens of MB; 10 minutes for an MP4). `save_take` encodes the
spool atomically, one frame in memory at a time, and removes it only once the file is safe: when saving fails,
the frames stay on disk and the message says where.

No Qt here: the window owns a Recorder and saves off the UI thread (see window.py).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.errors import BadInputError, CelebLookError
from engine.gif import fit_size
from engine.recording import Progress, Spool, encode_take

MAX_FPS = 12.0
MAX_SIDE = 480
LIMIT_S = {".gif": 50.0, ".mp4": 600.0}  # a take's duration limit by format


def side_by_side(left_bgr: np.ndarray, right_bgr: np.ndarray) -> np.ndarray:
    """Two frames next to each other at the height of the right one."""
    h = right_bgr.shape[0]
    if left_bgr.shape[0] != h:
        w = max(1, round(left_bgr.shape[1] * h / left_bgr.shape[0]))
        left_bgr = cv2.resize(left_bgr, (w, h), interpolation=cv2.INTER_AREA)
    return np.hstack([left_bgr, right_bgr])


def clock(seconds: float) -> str:
    """mm:ss."""
    s = max(0, int(seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


def limit_for(path: str | os.PathLike) -> float:
    """The duration limit of a recording saved as `path` (by its suffix); BadInputError for other suffixes."""
    suffix = Path(path).suffix.lower()
    if suffix not in LIMIT_S:
        raise BadInputError(f"a recording is saved as .gif or .mp4, not {Path(path).name}")
    return LIMIT_S[suffix]


@dataclass
class Take:
    """A stopped recording: its spooled frames, the rate they were kept at, and whether the limit ended it."""

    spool: Spool
    fps: float
    limit_reached: bool
    limit_s: float

    @property
    def frames(self) -> int:
        return self.spool.count


class Recorder:
    """Spools BGR frames with their capture time (seconds) while recording; `stop()` hands back the Take.
    `spool_parent`: where the temporary frame folders go (default: the system's temp folder)."""

    def __init__(self, max_fps: float = MAX_FPS, max_side: int = MAX_SIDE,
                 spool_parent: str | os.PathLike | None = None):
        self.max_fps, self.max_side, self.spool_parent = max_fps, max_side, spool_parent
        self.spool: Spool | None = None
        self.times: list[float] = []  # capture times of the kept frames (a float each: 5 MB for 10 hours)
        self.started = 0.0
        self.limit_s = LIMIT_S[".gif"]
        self.limit_reached = False
        self._unkept: tuple[np.ndarray, float] | None = None  # the newest frame offered since the last kept one

    @property
    def recording(self) -> bool:
        return self.spool is not None

    def start(self, limit_s: float = LIMIT_S[".gif"], t: float | None = None) -> None:
        """Start a take (a previous unfinished one is discarded); CelebLookError when no spool folder can be made."""
        if self.spool is not None:
            self.spool.discard()
        try:
            self.spool = Spool(self.spool_parent)
        except OSError as exc:
            raise CelebLookError(f"cannot record: no room for the frames ({exc.strerror or exc})") from exc
        self.times, self.limit_s, self.limit_reached, self._due, self._unkept = [], limit_s, False, 0.0, None
        self.started = time.monotonic() if t is None else t

    def elapsed(self, t: float | None = None) -> float:
        """Seconds since the take started (0 when not recording)."""
        return ((time.monotonic() if t is None else t) - self.started) if self.recording else 0.0

    def add(self, frame_bgr: np.ndarray, t: float | None = None) -> bool:
        """Keep a frame if recording, within the limit and when one is due (at most max_fps a second); True when
        kept. At the limit `limit_reached` turns True and nothing more is kept. CelebLookError when the disk
        refuses the frame."""
        if not self.recording or self.limit_reached:
            return False
        t = time.monotonic() if t is None else t
        if t - self.started >= self.limit_s:
            self.limit_reached = True
            return False
        period = 1.0 / self.max_fps
        if self.times and t < self._due - 1e-6:
            self._unkept = (frame_bgr, t)
            return False
        self.spool.add(fit_size(frame_bgr, self.max_side))
        self.times.append(t)
        self._unkept = None
        # the next frame is due one period after this one was: a 30 fps source gives 12 fps on average, not the
        # 10 of "a period after the last kept frame"; far behind (a slow engine), the schedule starts again
        self._due = self._due + period if self.times[:-1] and t < self._due + period else t + period
        return True

    @property
    def fps(self) -> float:
        """The rate the frames were actually kept at (so the file plays in real time), at most max_fps."""
        if len(self.times) < 2:
            return self.max_fps
        span = self.times[-1] - self.times[0]
        return float(min(self.max_fps, max(1.0, (len(self.times) - 1) / span))) if span > 0 else self.max_fps

    def stop(self) -> Take | None:
        """End the take on the last frame the window showed (kept now if it was not due); None when not
        recording."""
        if self.spool is None:
            return None
        if self._unkept is not None and not self.limit_reached:
            frame, t = self._unkept
            try:
                self.spool.add(fit_size(frame, self.max_side))
                self.times.append(t)
            except CelebLookError:  # the disk refused one more frame: the take ends on the one before
                pass
            self._unkept = None
        take = Take(self.spool, self.fps, self.limit_reached, self.limit_s)
        self.spool, self.times = None, []
        return take


def save_take(take: Take, path: str | os.PathLike, progress: Progress | None = None) -> Path:
    """Encode the take into `path` (.gif or .mp4) atomically, then remove its spool. On failure the spool stays
    and the CelebLookError says where its frames are (BadInputError, without keeping them, for an empty take)."""
    path = Path(path)
    if take.frames == 0:
        take.spool.discard()
        raise BadInputError("nothing recorded: no frames arrived while recording")
    try:
        encode_take(take.spool, path, take.fps, progress)
    except (CelebLookError, OSError) as exc:
        why = str(exc) if isinstance(exc, CelebLookError) else (exc.strerror or str(exc))
        raise CelebLookError(f"could not write {path}: {why}; the {take.frames} recorded frames are kept in "
                             f"{take.spool.folder}") from exc
    take.spool.discard()
    return path


def default_record_path(folder: str | os.PathLike, stem: str, suffix: str = ".gif") -> Path:
    """folder/<stem>-YYYYmmdd-HHMMSS<suffix>."""
    return Path(folder) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"
