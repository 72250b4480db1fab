"""The real faces the evaluations and probes measure on: the shared test photos and webcam-like clips
(../shared/data), the crop size they are aligned to, and which frames of a clip are taken."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "faces"
VIDEOS = PHOTOS.parent / "video"
SIZE = 256  # aligned crop side (px) the evaluations compare at


def frame_positions(n: int, per_clip: int, phase: float = 0.5) -> list[int]:
    """`per_clip` evenly spaced frame indices of an `n`-frame clip, each `phase` of the way into its share."""
    return [int((j + phase) * n / per_clip) for j in range(per_clip)]


def video_frames(videos: Path, per_clip: int, positions=frame_positions) -> list[tuple[str, np.ndarray]]:
    """`per_clip` frames (BGR) of every .mp4 in `videos`, named "clip#j": more real faces (other people,
    webcam-like). `positions(n, per_clip)` picks the frame indices of an n-frame clip (default: evenly spaced)."""
    frames = []
    for path in sorted(videos.glob("*.mp4")) if per_clip > 0 else []:
        cap = cv2.VideoCapture(str(path))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for j, pos in enumerate(positions(n, per_clip)):
            cap.set(cv2.CAP_PROP_POS_FRAMES, pos)
            ok, frame = cap.read()
            if ok:
                frames.append((f"{path.stem}#{j}", frame))
        cap.release()
    return frames
