"""Reading video files frame by frame (cv2.VideoCapture) with clear errors and an optional loop.

Each frame comes with its index and a timestamp in milliseconds that keeps increasing across loops, as
MediaPipe's VIDEO mode requires.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from engine.errors import BadInputError

DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class Frame:
    """One decoded frame: `image` uint8 BGR, `index` counted from the first frame read (across loops),
    `timestamp_ms` from the file's frame rate."""

    image: np.ndarray
    index: int
    timestamp_ms: int


class VideoReader:
    """Frames of a video file; `loop=True` starts again at the end. Use as an iterator and context manager."""

    def __init__(self, path: str | os.PathLike, loop: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise BadInputError(f"video not found: {self.path}")
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise BadInputError(f"cannot open video {self.path}: not a video file or unsupported codec")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1.0 <= fps <= 1000.0 else DEFAULT_FPS
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.size = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.loop = loop
        self._index = 0
        self._frames_in_pass = 0

    def read(self) -> Frame | None:
        """The next frame, or None at the end of the file (never, with `loop`, unless it has no frames)."""
        if self._capture is None:
            raise BadInputError(f"video {self.path} is closed")
        ok, image = self._capture.read()
        if not ok and self.loop and self._frames_in_pass > 0:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._frames_in_pass = 0
            ok, image = self._capture.read()
        if not ok or image is None:
            if self._index == 0:
                raise BadInputError(f"cannot decode any frame of {self.path}")
            return None
        frame = Frame(image=image, index=self._index, timestamp_ms=int(round(self._index * 1000.0 / self.fps)))
        self._index += 1
        self._frames_in_pass += 1
        return frame

    def frames(self, max_frames: int | None = None) -> Iterator[Frame]:
        """Iterate over the next frames, at most `max_frames` of them."""
        count = 0
        while max_frames is None or count < max_frames:
            frame = self.read()
            if frame is None:
                return
            count += 1
            yield frame

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def close(self) -> None:
        """Release the file (also done on leaving a `with` block)."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
