"""A built-in moving face, rendered by our own generator: a frame source that needs no camera and no files.

One fixed seed's W is animated with the shipped attribute directions (engine.edits.DirectionSet) on a smooth
loop: the head turns left and right and nods a little, the face smiles, and the mouth opens and closes as if
talking. Each latent is rendered by engine.generator.Generator (the 256-px preview head by default) and placed
in a frame the size of a small webcam's, so the live pipeline's landmarker finds it like a
person in front of a camera. One loop is rendered once and kept in memory (LOOP_FRAMES frames, a few MB), so
the demo then plays at camera rate: `frame(i)` is the i-th frame of an endless stream with its timestamp.

    demo = DemoFace(Generator.load(resolution=256), DirectionSet.load())
    for image, timestamp_ms in demo.stream():   # uint8 BGR (480, 640, 3), forever
        ...
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import cv2
import numpy as np

from engine.edits import DirectionSet
from engine.generator import Generator
from engine.latents import to_wplus

DEMO_SEED = 2  # a plain background, and not one of the desktop's built-in targets (0, 3, 4, 7, ...)
LOOP_FRAMES = 64  # one loop: ~2.6 s at 25 fps; 64 x 640 x 480 x 3 bytes = 59 MB
FPS = 25.0
FRAME_SIZE = (640, 480)  # (width, height), a plain webcam's
FACE_SIDE = 480  # px: the generated square (face, hair, its own background) inside the frame


def demo_amounts(phase: float, directions: DirectionSet) -> dict[str, float]:
    """The edit amounts (real units, DirectionSet.apply) at `phase` in [0, 1) of the loop: every term is a
    whole number of periods, so the loop joins without a jump. Each amount stays within its direction's
    calibrated range (max_units)."""
    a = 2.0 * math.pi * phase
    wave = {
        "yaw": 0.75 * math.sin(a),  # one turn left and right per loop
        "pitch": 0.3 * math.sin(2.0 * a),  # a small nod
        "smile": 0.9 * (0.5 - 0.5 * math.cos(a)),  # smiles most when looking at the other side
        "jaw_open": 0.6 * max(0.0, math.sin(6.0 * a)) ** 2,  # talking: three mouth openings per loop
    }
    return {name: share * directions.directions[name].max_units
            for name, share in wave.items() if name in directions.directions}


def place_on_background(face_rgb: np.ndarray, size: tuple[int, int] = FRAME_SIZE, side: int = FACE_SIDE) -> np.ndarray:
    """The generator's RGB square, scaled to `side` px, in the middle of a BGR frame of `size` (width, height)
    whose sides are the same picture enlarged and blurred (as a phone shows a square video): no hard edge for
    the landmarker or the paste-back to trip on."""
    w, h = size
    face = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2BGR)
    cover = max(w, h)
    back = cv2.resize(face, (cover, cover), interpolation=cv2.INTER_LINEAR)
    y, x = (cover - h) // 2, (cover - w) // 2
    frame = cv2.GaussianBlur(back[y:y + h, x:x + w], (0, 0), cover * 0.03)
    frame = (0.7 * frame).astype(np.uint8)  # darker, so the face stands out
    x0, y0 = (w - side) // 2, max(0, (h - side) // 2)
    frame[y0:y0 + side, x0:x0 + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    return frame


@dataclass
class DemoFace:
    """The demo loop: `frames` BGR images rendered on first use (render()), then served from memory."""

    generator: Generator
    directions: DirectionSet
    seed: int = DEMO_SEED
    loop_frames: int = LOOP_FRAMES
    fps: float = FPS
    size: tuple[int, int] = FRAME_SIZE
    _frames: list[np.ndarray] = field(default_factory=list, repr=False)

    def latent(self, i: int, w: np.ndarray | None = None) -> np.ndarray:
        """W+ (1, 23, 512) of loop frame i (`w`: the seed's W, when already sampled)."""
        w = to_wplus(self.generator.sample_w(self.seed) if w is None else w)
        return self.directions.apply(w, **demo_amounts((i % self.loop_frames) / self.loop_frames, self.directions))

    def render(self, cancelled: Callable[[], bool] = lambda: False) -> list[np.ndarray]:
        """Render the loop once (seconds on a laptop CPU at 256 px); later calls return the same frames.
        `cancelled()` true stops early (a closing window); the next call renders the rest."""
        if len(self._frames) < self.loop_frames:
            side, w = min(FACE_SIDE, self.size[1]), self.generator.sample_w(self.seed)
            while len(self._frames) < self.loop_frames and not cancelled():
                face = self.generator.render(self.latent(len(self._frames), w))
                self._frames.append(place_on_background(face, self.size, side))
        return self._frames

    def frame(self, i: int) -> tuple[np.ndarray, int]:
        """Frame i of the endless stream (the loop repeated) and its timestamp in ms."""
        frames = self.render()
        return frames[i % len(frames)], int(round(1000.0 * i / self.fps))

    def stream(self) -> Iterator[tuple[np.ndarray, int]]:
        """The frames forever, each with its timestamp (ms, increasing across loops)."""
        i = 0
        while True:
            yield self.frame(i)
            i += 1
