"""`celeblook jitter VIDEO...`: how much the aligned crop shakes on video, with and without One-Euro smoothing.

For the largest face of each frame (MediaPipe VIDEO mode) it takes the FFHQ crop quad from the raw
landmarks and from the smoothed ones, and reports the mean frame-to-frame movement of the crop centre
(px, and % of the crop side), the mean second difference (shake that is not steady motion), the mean change
of the crop side, and the lag the smoothing costs (mean distance between smoothed and raw centres); plus the
time per frame of detection, of the crop and of pasting the unmodified crop back.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.align import CROP_SIZES, align_face, face_quad
from engine.atomic import write_bytes_atomic
from engine.landmarks import FaceLandmarker
from engine.paste import paste_back
from engine.smoothing import OneEuroParams, smooth_face
from engine.video import VideoReader


@dataclass(frozen=True)
class JitterStats:
    """Crop-centre motion of one clip for one kind of landmarks (raw or smoothed)."""

    step_px: float  # mean |c[t] - c[t-1]|
    step_pct: float  # the same, in % of the crop side
    accel_px: float  # mean |c[t] - 2 c[t-1] + c[t-2]|
    side_change_pct: float  # mean |side[t] - side[t-1]| / side, in %


@dataclass(frozen=True)
class ClipResult:
    clip: str
    size: tuple[int, int]
    frames: int
    frames_with_face: int
    detect_ms: float
    crop_ms: float | None  # FFHQ crop of the smoothed face, per frame with a face
    paste_ms: float | None  # paste-back of that (unmodified) crop
    raw: JitterStats | None
    smoothed: JitterStats | None
    lag_px: float | None  # mean |smoothed centre - raw centre|


def quad_centre_side(quad: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and side length (px) of a crop quad."""
    return quad.mean(axis=0), float(np.hypot(*(quad[3] - quad[0])))


def jitter_stats(centres: list[np.ndarray | None], sides: list[float | None]) -> JitterStats | None:
    """Statistics over consecutive frames that all have a face (a missing face breaks the chain)."""
    steps, accels, side_changes, step_rel = [], [], [], []
    for i in range(1, len(centres)):
        if centres[i] is None or centres[i - 1] is None:
            continue
        step = float(np.linalg.norm(centres[i] - centres[i - 1]))
        steps.append(step)
        step_rel.append(step / sides[i])
        side_changes.append(abs(sides[i] - sides[i - 1]) / sides[i])
        if i >= 2 and centres[i - 2] is not None:
            accels.append(float(np.linalg.norm(centres[i] - 2 * centres[i - 1] + centres[i - 2])))
    if not steps:
        return None
    return JitterStats(step_px=float(np.mean(steps)), step_pct=100.0 * float(np.mean(step_rel)),
                       accel_px=float(np.mean(accels)) if accels else float("nan"),
                       side_change_pct=100.0 * float(np.mean(side_changes)))


def measure_clip(path: Path, max_frames: int, params: OneEuroParams, model: str | None = None,
                 crop_size: int = 256) -> ClipResult:
    """Run detection over the first `max_frames` frames of a clip and measure crop jitter raw vs smoothed,
    and the time of the crop and paste-back steps."""
    raw_c, raw_s, sm_c, sm_s = [], [], [], []
    state = None
    detect_s = crop_s = paste_s = 0.0
    with VideoReader(path) as reader, FaceLandmarker(model, video=True, max_faces=1) as landmarker:
        frames = 0
        for frame in reader.frames(max_frames):
            frames += 1
            t0 = time.perf_counter()
            faces = landmarker.detect_video(frame.image, frame.timestamp_ms)
            detect_s += time.perf_counter() - t0
            if not faces:
                state = None
                for seq in (raw_c, raw_s, sm_c, sm_s):
                    seq.append(None)
                continue
            c, s = quad_centre_side(face_quad(faces[0]))
            raw_c.append(c)
            raw_s.append(s)
            smoothed, state = smooth_face(state, faces[0], frame.timestamp_ms / 1000.0, params)
            t0 = time.perf_counter()
            crop = align_face(frame.image, smoothed, crop_size)
            t1 = time.perf_counter()
            paste_back(frame.image, crop.image, crop, smoothed)
            crop_s += t1 - t0
            paste_s += time.perf_counter() - t1
            c, s = quad_centre_side(crop.quad)
            sm_c.append(c)
            sm_s.append(s)
        size = reader.size
    lags = [float(np.linalg.norm(a - b)) for a, b in zip(raw_c, sm_c) if a is not None]
    per_face = (lambda total: 1000.0 * total / len(lags)) if lags else (lambda total: None)
    return ClipResult(clip=path.name, size=size, frames=frames, frames_with_face=len(lags),
                      detect_ms=1000.0 * detect_s / max(frames, 1), crop_ms=per_face(crop_s),
                      paste_ms=per_face(paste_s), raw=jitter_stats(raw_c, raw_s),
                      smoothed=jitter_stats(sm_c, sm_s), lag_px=float(np.mean(lags)) if lags else None)


def format_table(results: list[ClipResult]) -> str:
    """A Markdown table of the results."""
    lines = ["| clip | size | frames (with face) | centre step px raw → smoothed | "
             "step % of crop side raw → smoothed | 2nd diff px raw → smoothed | side change % raw → smoothed | "
             "lag px | detect / crop / paste ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        head = f"| {r.clip} | {r.size[0]}×{r.size[1]} | {r.frames} ({r.frames_with_face}) |"
        if r.raw is None or r.smoothed is None:
            lines.append(head + f" no face in consecutive frames | – | – | – | – | {r.detect_ms:.1f} / – / – |")
            continue
        lines.append(head + f" {r.raw.step_px:.2f} → {r.smoothed.step_px:.2f} |"
                     f" {r.raw.step_pct:.3f} → {r.smoothed.step_pct:.3f} |"
                     f" {r.raw.accel_px:.2f} → {r.smoothed.accel_px:.2f} |"
                     f" {r.raw.side_change_pct:.3f} → {r.smoothed.side_change_pct:.3f} | {r.lag_px:.2f} |"
                     f" {r.detect_ms:.1f} / {r.crop_ms:.2f} / {r.paste_ms:.2f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    params = OneEuroParams(min_cutoff=args.min_cutoff, beta=args.beta, d_cutoff=args.d_cutoff)
    results = [measure_clip(Path(p), args.frames, params, args.model, args.size) for p in args.videos]
    print(f"One-Euro min_cutoff={params.min_cutoff} Hz, beta={params.beta}, d_cutoff={params.d_cutoff} Hz; "
          f"first {args.frames} frames per clip; {args.size}-px crops")
    print(format_table(results))
    if args.json:
        report = {"params": asdict(params), "frames": args.frames, "crop_size": args.size,
                  "machine": platform.platform(),
                  "processor": platform.processor() or platform.machine(), "results": [asdict(r) for r in results]}
        write_bytes_atomic(args.json, (json.dumps(report, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = OneEuroParams()
    p = subparsers.add_parser("jitter", help="measure aligned-crop jitter on video, raw vs One-Euro smoothed",
                              description=__doc__.splitlines()[0])
    p.add_argument("videos", nargs="+", help="video files (e.g. ../shared/data/video/*.mp4)")
    p.add_argument("--frames", type=int, default=150, help="frames per clip (default 150)")
    p.add_argument("--size", type=int, default=256, choices=CROP_SIZES, help="crop size for the timings (default 256)")
    p.add_argument("--json", help="also write the results as JSON to this file")
    p.add_argument("--model", help="face_landmarker.task to use (default: resolved as usual)")
    p.add_argument("--min-cutoff", type=float, default=defaults.min_cutoff, help="One-Euro min cutoff, Hz")
    p.add_argument("--beta", type=float, default=defaults.beta, help="One-Euro speed coefficient")
    p.add_argument("--d-cutoff", type=float, default=defaults.d_cutoff, help="One-Euro derivative cutoff, Hz")
    p.set_defaults(func=run)
