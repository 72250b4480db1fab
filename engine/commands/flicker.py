"""`celeblook flicker VIDEO`: how much the live output face flickers, with and without temporal smoothing.

Runs engine.live.LivePipeline over the first N frames of a clip (every frame, no dropping) in several
configurations and reports the mean absolute frame-to-frame change of the output (0-255 units) in two fixed
regions taken from the first frame: the face-oval bounding box, and its central half (inner face: only
generated pixels), next to the same numbers for the input frames (the floor: the person's own motion), plus
the pipeline's frames per second and mean per-stage times.
Use a clip where the person barely moves (d18.mp4).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.atomic import write_bytes_atomic
from engine.errors import BadInputError, NoFaceError
from engine.landmarks import FaceLandmarker
from engine.live import STAGES, LiveModels, LivePipeline, LiveSettings
from engine.video import VideoReader

CONFIGS: dict[str, dict] = {
    "no smoothing": dict(smooth_landmarks=False, smooth_latents=False, reuse=False),
    "landmarks only": dict(smooth_landmarks=True, smooth_latents=False, reuse=False),
    # the app's default (the app renders in the background; this command renders inline)
    "landmarks + latents (One-Euro)": dict(smooth_landmarks=True, smooth_latents=True, reuse=False),
    "landmarks + latents + reuse": dict(smooth_landmarks=True, smooth_latents=True, reuse=True),
}


@dataclass(frozen=True)
class FlickerRow:
    config: str
    frames: int
    frames_with_face: int
    flicker: float  # mean |out[t] - out[t-1]| in the face box, 0-255
    flicker_inner: float  # the same in the central half of the box
    latent_step: float | None  # mean RMS change of the rendered W+ between frames
    fps: float
    renders: int  # generator calls (the rest reused the last face)
    stage_ms: dict[str, float]


def read_frames(path: Path, n: int) -> list:
    with VideoReader(path) as reader:
        frames = list(reader.frames(n))
    if len(frames) < 2:
        raise BadInputError(f"{path}: need at least 2 frames, got {len(frames)}")
    return frames


def face_box(image: np.ndarray, model: bytes, source: str) -> tuple[int, int, int, int]:
    """Integer bounding box of the largest face's oval in `image`, clipped to it."""
    with FaceLandmarker(model) as lm:
        faces = lm.detect(image)
    if not faces:
        raise NoFaceError(f"no face in the first frame of {source}: the flicker box needs one")
    h, w = image.shape[:2]
    x0, y0, x1, y1 = faces[0].bbox
    return max(0, int(x0)), max(0, int(y0)), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))


def inner(box_image: np.ndarray) -> np.ndarray:
    """The central half (in each direction) of a face-box image."""
    h, w = box_image.shape[:2]
    return box_image[h // 4: h - h // 4, w // 4: w - w // 4]


def mean_change(images: list[np.ndarray]) -> float:
    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in zip(images[1:], images[:-1])]
    return float(np.mean(diffs))


def run_config(models: LiveModels, frames: list, box, settings: LiveSettings, name: str) -> FlickerRow:
    x0, y0, x1, y1 = box
    crops, latents, stage = [], [], {k: 0.0 for k in STAGES}
    found = 0
    with LivePipeline(models) as pipe:
        start = time.perf_counter()
        for f in frames:
            r = pipe.process(f.image, f.timestamp_ms, settings)
            crops.append(r.frame[y0:y1, x0:x1].copy())
            found += r.face_found
            latents.append(r.edited)
            for k in STAGES:
                stage[k] += r.timings[k]
        wall = time.perf_counter() - start
        renders = pipe.renders
    steps = [float(np.sqrt(np.mean((a - b) ** 2))) for a, b in zip(latents[1:], latents[:-1])
             if a is not None and b is not None]
    n = len(frames)
    return FlickerRow(name, n, found, mean_change(crops), mean_change([inner(c) for c in crops]), float(np.mean(steps)) if steps else None, n / wall,
                      renders, {k: v / n for k, v in stage.items()})


def format_table(input_flicker: tuple[float, float], rows: list[FlickerRow]) -> str:
    lines = ["| configuration | flicker: face box | flicker: inner face | W+ step (RMS) | fps | generator calls | "
             + " / ".join(STAGES) + " ms |", "|---|---|---|---|---|---|---|"]
    lines.append(f"| input frames (floor) | {input_flicker[0]:.2f} | {input_flicker[1]:.2f} | – | – | – | – |")
    for r in rows:
        step = f"{r.latent_step:.4f}" if r.latent_step is not None else "–"
        ms = " / ".join(f"{r.stage_ms[k]:.0f}" if r.stage_ms[k] >= 10 else f"{r.stage_ms[k]:.1f}" for k in STAGES)
        lines.append(f"| {r.config} | {r.flicker:.2f} | {r.flicker_inner:.2f} | {step} | {r.fps:.2f} | {r.renders}/{r.frames} | {ms} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not 2 <= args.frames <= 1000:
        raise BadInputError(f"--frames must be in 2..1000, got {args.frames}")
    path = Path(args.video)
    frames = read_frames(path, args.frames)
    models = LiveModels.load(args.threads, args.encoder, args.model)
    box = face_box(frames[0].image, models.landmarker_model, str(path))
    target = {}
    if args.target:
        with FaceLandmarker(models.landmarker_model, expressions=True) as lm:
            target = models.target_cache(lm).load(args.target).live_settings()
    base = LiveSettings(**target, strength=args.strength)
    names = list(CONFIGS) if not args.configs else args.configs
    rows = []
    for name in names:
        rows.append(run_config(models, frames, box, base.with_(**CONFIGS[name]), name))
        print(f"  {name}: done", flush=True)
    boxes = [f.image[box[1]:box[3], box[0]:box[2]] for f in frames]
    input_flicker = (mean_change(boxes), mean_change([inner(b) for b in boxes]))
    print(f"{path.name}: first {len(frames)} frames, face box {box}, target "
          f"{Path(args.target).name if args.target else 'none (reconstruction)'}"
          f"{f' at strength {args.strength}' if args.target else ''}, {args.threads} onnxruntime threads")
    print(format_table(input_flicker, rows))
    if args.json:
        report = {"video": str(path), "frames": len(frames), "box": box, "target": args.target,
                  "strength": args.strength, "threads": args.threads, "machine": platform.platform(),
                  "processor": platform.processor() or platform.machine(), "input_flicker": input_flicker,
                  "settings": {n: CONFIGS[n] for n in names}, "results": [asdict(r) for r in rows]}
        write_bytes_atomic(args.json, (json.dumps(report, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("flicker", help="live output flicker on a clip, with and without smoothing",
                              description=__doc__.splitlines()[0])
    p.add_argument("video", help="a clip where the person barely moves (e.g. ../shared/data/video/d18.mp4)")
    p.add_argument("--frames", type=int, default=40, help="frames per configuration (default 40)")
    p.add_argument("--target", help="target photo to morph toward (default: no morph, the reconstruction)")
    p.add_argument("--strength", type=float, default=0.8, help="morph strength with --target (default 0.8)")
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), help="only these configurations")
    p.add_argument("--json", help="also write the results as JSON to this file")
    p.add_argument("--encoder", help="inversion encoder ONNX (default: the shipped one, or $CELEBLOOK_ENCODER)")
    p.add_argument("--model", help="face_landmarker.task to use (default: resolved as usual)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    p.set_defaults(func=run)
