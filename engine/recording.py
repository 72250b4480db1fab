"""Recordings with bounded memory: frames go to disk as they arrive, and are encoded at the end one at a time.

Why: the desktop recorder used to keep every frame in memory and hand them all to imageio's GIF writer, which
(through Pillow) holds all of them again while it picks a palette per frame; a 50-second recording climbed past
5.7 GB and took minutes (docs/BENCHMARKS.md, "Recording"). Here:

- `Spool` writes each frame as a JPEG file (quality 95: the GIF's 256 colours lose far more) into a temporary
  folder, so recording costs a few milliseconds per frame and no memory however long it runs.
- engine.gif.GifStream writes a GIF frame by frame with one global palette, holding one frame in memory.
- `encode_take` turns a spool into a .gif or an .mp4 (OpenCV's writer, MPEG-4 part 2: the codec every OpenCV
  wheel has) atomically (engine.atomic: a partial file never replaces a good one), reporting progress.

No Qt here: the desktop's recorder and window drive these from their threads.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from engine.atomic import atomic_path
from engine.errors import BadInputError, CelebLookError
from engine.gif import GifStream, palette_for

JPEG_QUALITY = 95
RECORD_SUFFIXES = (".gif", ".mp4")

Progress = Callable[[int, int], None]  # progress(frames done, frames in all)


class Spool:
    """Frames of one take as numbered JPEG files in a temporary folder (in `parent`, default the system's temp).
    `add` raises CelebLookError when the disk refuses a frame; `discard` removes the folder."""

    def __init__(self, parent: str | os.PathLike | None = None):
        self.folder = Path(tempfile.mkdtemp(prefix="celeblook-take-", dir=parent))
        self.count = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the first frame; later ones are resized to it

    def add(self, frame_bgr: np.ndarray) -> None:
        h, w = frame_bgr.shape[:2]
        if self.size is None:
            self.size = (w, h)
        elif (w, h) != self.size:  # the source changed size mid-take: one size per file
            frame_bgr = cv2.resize(frame_bgr, self.size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise CelebLookError("could not encode a recorded frame")
        try:
            (self.folder / f"{self.count:06d}.jpg").write_bytes(data.tobytes())
        except OSError as exc:
            raise CelebLookError(f"could not keep a recorded frame in {self.folder}: {exc.strerror or exc}") from exc
        self.count += 1

    def frame(self, i: int) -> np.ndarray:
        """Frame `i` (BGR)."""
        image = cv2.imread(str(self.folder / f"{i:06d}.jpg"), cv2.IMREAD_COLOR)
        if image is None:
            raise CelebLookError(f"recorded frame {i} is missing from {self.folder}")
        return image

    def frames(self) -> Iterator[np.ndarray]:
        for i in range(self.count):
            yield self.frame(i)

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*.jpg"))

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def encode_take(spool: Spool, path: str | os.PathLike, fps: float, progress: Progress | None = None) -> Path:
    """Encode the spooled frames into `path` (.gif or .mp4, by suffix) atomically; BadInputError when there are
    no frames or the suffix is neither. The spool is left as it is (the caller discards it once the file is safe)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RECORD_SUFFIXES:
        raise BadInputError(f"a recording is saved as {' or '.join(RECORD_SUFFIXES)}, not {path.name}")
    if spool.count == 0:
        raise BadInputError("nothing recorded: no frames arrived while recording")
    progress = progress or (lambda done, total: None)
    try:
        with atomic_path(path, suffix=suffix) as tmp:
            if suffix == ".gif":
                _encode_gif(spool, tmp, fps, progress)
            else:
                _encode_mp4(spool, tmp, fps, progress)
    finally:
        release_freed_memory()
    return path


def release_freed_memory() -> None:
    """Hand memory freed by this thread back to the system (glibc's malloc_trim; nothing elsewhere). glibc keeps
    what a thread freed in that thread's arena: in the 10-minute soak each save on a new thread left ~55 MB resident
    (672 -> 854 MB over five saves); five 150-frame saves, each on a thread of its own, in a
    process of their own: 192 -> 231 MB untrimmed, 177 -> 186 trimmed."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _encode_gif(spool: Spool, tmp: Path, fps: float, progress: Progress) -> None:
    n = spool.count
    palette = palette_for(lambda i: cv2.cvtColor(spool.frame(i), cv2.COLOR_BGR2RGB), n)
    with open(tmp, "wb") as f:
        gif = GifStream(f, spool.size, palette, fps)
        for i, frame in enumerate(spool.frames()):
            gif.add(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            progress(i + 1, n)
        gif.close()


def _encode_mp4(spool: Spool, tmp: Path, fps: float, progress: Progress) -> None:
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), spool.size)
    if not writer.isOpened():
        raise CelebLookError("OpenCV cannot write MP4 files here (no mp4v encoder): save the recording as .gif")
    try:
        for i, frame in enumerate(spool.frames()):
            writer.write(frame)
            progress(i + 1, spool.count)
    finally:
        writer.release()
    if tmp.stat().st_size == 0:
        raise CelebLookError("OpenCV wrote an empty MP4 file")
