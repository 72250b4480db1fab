"""Animated GIF writing (atomic), shared by sweep GIFs and the desktop recorder (through engine.recording).

GifStream writes frame by frame with ONE global palette (median cut over a sample of the frames) and only the
rectangle that changed since the previous frame, so it holds one frame in memory; Pillow's LZW encoder does the
compression (PIL.GifImagePlugin.getdata, its per-frame helper). It replaced imageio's writer, which goes through
Pillow's animated save: every frame held at once with a palette each, past 5.7 GB and minutes for a 50-second
recording (docs/BENCHMARKS.md, "Recording").
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Sequence

import cv2
import numpy as np

from engine.atomic import atomic_path
from engine.errors import BadInputError

TRANSPARENT = 255  # GIF palette index of "as in the previous frame"
PALETTE_SAMPLES = 16  # frames spread over the animation that the global palette is built from


def fit_size(frame: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longer side is at most `max_side` (INTER_AREA); smaller frames pass through."""
    h, w = frame.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return frame
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def global_palette(frames_rgb: list[np.ndarray], colors: int = 255):
    """A 'P' image whose palette (median cut over the given frames side by side) suits all of them; 255 colours
    leave index 255 free for GifStream's "unchanged" pixels."""
    from PIL import Image

    mosaic = np.concatenate([np.ascontiguousarray(f) for f in frames_rgb], axis=0)
    return Image.fromarray(mosaic).quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


@dataclass
class GifStream:
    """A looping GIF written to `fp` one frame at a time with one global palette (`palette`, a 'P' image from
    global_palette). Each frame is stored as the rectangle that changed since the previous one (disposal 1:
    the rest stays), its unchanged pixels transparent (index 255: long runs that LZW packs well, so a talking
    head costs about half); an unchanged frame lengthens the previous one's delay. Delays follow `fps` without drift
    (GIF counts in centiseconds). Memory: the previous frame and the one pending, whatever the length."""

    fp: BinaryIO
    size: tuple[int, int]  # (width, height)
    palette: object
    fps: float
    _prev: np.ndarray | None = field(default=None, repr=False)
    _pending: tuple[object, tuple[int, int]] | None = field(default=None, repr=False)
    _pending_cs: int = 0
    _frames: int = 0
    _written_cs: int = 0

    def __post_init__(self) -> None:
        w, h = self.size
        pal = bytes(self.palette.getpalette()[:768]).ljust(768, b"\0")
        self.fp.write(b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + pal)  # 256-colour global table
        self.fp.write(b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever

    def add(self, frame_rgb: np.ndarray) -> None:
        from PIL import Image

        if frame_rgb.shape[1::-1] != self.size:
            raise BadInputError(f"GIF frame of {frame_rgb.shape[1]}×{frame_rgb.shape[0]} in a {self.size[0]}×"
                                f"{self.size[1]} GIF")
        im = Image.fromarray(np.ascontiguousarray(frame_rgb)).quantize(palette=self.palette,
                                                                       dither=Image.Dither.NONE)
        index = np.asarray(im)
        self._frames += 1
        end_cs = round(self._frames * 100.0 / self.fps)
        delay = end_cs - self._written_cs
        self._written_cs = end_cs
        if self._prev is None:
            box = (0, 0, self.size[0], self.size[1])
        else:
            changed = index != self._prev
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            if rows.size == 0:
                self._pending_cs += delay
                return
            box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        self._flush()
        if self._prev is not None:
            keep = index.copy()
            keep[index == self._prev] = TRANSPARENT
            im = Image.fromarray(keep, mode="P")
            im.putpalette(self.palette.getpalette())
        self._prev = index
        self._pending, self._pending_cs = (im.crop(box), box[:2]), delay

    def _flush(self) -> None:
        from PIL import GifImagePlugin

        if self._pending is None:
            return
        im, offset = self._pending
        # graphic control extension: disposal 1 (keep), transparency on, the delay in centiseconds (at least 2:
        # browsers slow 0-1 down), transparent index
        self.fp.write(b"!\xf9\x04\x05" + struct.pack("<HB", max(2, self._pending_cs), TRANSPARENT) + b"\x00")
        for chunk in GifImagePlugin.getdata(im, offset):
            self.fp.write(chunk)
        self._pending = None

    def close(self) -> None:
        self._flush()
        self.fp.write(b";")


def palette_for(frame_at, count: int):
    """global_palette over PALETTE_SAMPLES frames spread evenly over `count` (frame_at(i) -> RGB frame i)."""
    picks = np.unique(np.linspace(0, count - 1, min(count, PALETTE_SAMPLES)).round().astype(int))
    return global_palette([frame_at(int(i)) for i in picks])


def write_gif(path: str | os.PathLike, frames_rgb: Sequence[np.ndarray], fps: float = 12.0,
              max_side: int = 512, boomerang: bool = False) -> None:
    """Write RGB uint8 frames as a looping GIF, atomically; `boomerang` appends the frames reversed."""
    if not frames_rgb:
        raise BadInputError("no frames to write")
    frames = [fit_size(np.ascontiguousarray(f), max_side) for f in frames_rgb]
    if any(f.shape != frames[0].shape for f in frames):
        raise BadInputError("all GIF frames must have the same size")
    if boomerang and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    palette = palette_for(lambda i: frames[i], len(frames))
    with atomic_path(path, suffix=".gif") as tmp, open(tmp, "wb") as f:
        gif = GifStream(f, (frames[0].shape[1], frames[0].shape[0]), palette, fps)
        for frame in frames:
            gif.add(frame)
        gif.close()
