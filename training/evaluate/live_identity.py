"""Evaluate the live loop's likeness: is the face the live pipeline makes of the user the same person, by dlib?

    # d18, d20, s18: ~4 min on 2 cores
    python -m training.evaluate.live_identity --json docs/results/live_identity.json

Per clip of ../shared/data/video (a stand-in for a webcam), the live pipeline (engine.live.LivePipeline with the
app's defaults and no morph; `reuse` off, so every frame is encoded) runs on the first --frames frames, once with
the identity feedback off and once on (LiveSettings.identity_feedback). Every --every-th frame with a face, the
loop's W+ (the one pass with its corrections, the skin match, the feedback when on, the temporal smoothing) is
rendered twice: at 1024 px by the full generator, and by the 256-px preview head the live view shows; each render is
re-aligned by its own landmarks into the frame's crop and compared with it by dlib's descriptor (< 0.6: same
person). dlib never sees the recogniser the feedback reads.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import atomic_path
from engine.inversion.encoder import realign_render
from engine.generator import Generator, to_uint8_rgb
from engine.landmarks import FaceLandmarker
from engine.live import LiveModels, LivePipeline, LiveSettings
from engine.video import VideoReader
from training.data.face_sets import SIZE, VIDEOS
from training.evaluate.dlib_judge import DlibIdentity

CONFIGS = {"one pass": False, "identity feedback": True}  # name -> LiveSettings.identity_feedback


def clip_distances(models: LiveModels, renderers: dict, ident: DlibIdentity, landmarker, path: Path, frames: int,
                   every: int, feedback: bool) -> dict[str, list[float]]:
    """{renderer name: dlib distance per scored frame} of one clip run through a fresh live pipeline."""
    settings = LiveSettings(reuse=False).with_(identity_feedback=feedback)
    out = {name: [] for name in renderers}
    with VideoReader(path) as reader, LivePipeline(models) as pipe:
        for i, frame in enumerate(reader.frames(frames)):
            result = pipe.process(frame.image, frame.timestamp_ms, settings)
            if not result.face_found or i % every != every - 1:
                continue
            for name, gen in renderers.items():
                render = cv2.cvtColor(to_uint8_rgb(gen.synthesize(result.wplus))[0], cv2.COLOR_RGB2BGR)
                out[name].append(ident.distance(result.crop.image, realign_render(render, landmarker, SIZE)[0])[0])
    return out


def markdown(summary: list[dict]) -> str:
    lines = ["| clip | render | " + " | ".join(CONFIGS) + " |", "|---|---|" + "---|" * len(CONFIGS)]
    for row in summary:
        cells = [f"{row[c]['mean']:.3f} ({row[c]['same']} of {row[c]['n']})" for c in CONFIGS]
        lines.append(f"| {row['clip']} | {row['render']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="d18.mp4,d20.mp4,s18.mp4", help="clips in --videos")
    ap.add_argument("--videos", type=Path, default=VIDEOS)
    ap.add_argument("--frames", type=int, default=90, help="frames of each clip to run")
    ap.add_argument("--every", type=int, default=10, help="score every N-th frame")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write per-frame distances and the summary here")
    args = ap.parse_args(argv)
    if args.every < 1 or args.frames < args.every:
        raise SystemExit("--every must be at least 1 and at most --frames")
    missing = [c for c in args.clips.split(",") if not (args.videos / c).is_file()]
    if missing:
        raise SystemExit(f"no such clip in {args.videos}: {', '.join(missing)}")
    t0 = time.time()
    models = LiveModels.load(args.threads)
    renderers = {"1024 px": Generator.load(args.threads), "live view (256-px preview)": models.generator}
    ident, runs, summary = DlibIdentity(), {}, []
    with FaceLandmarker() as landmarker:
        for clip in args.clips.split(","):
            path = args.videos / clip
            runs[clip] = {c: clip_distances(models, renderers, ident, landmarker, path, args.frames, args.every, fb)
                          for c, fb in CONFIGS.items()}
    for name in renderers:
        for clip in [*runs, "all"]:
            row = {"clip": clip, "render": name}
            for c in CONFIGS:
                d = np.array([x for k in (runs if clip == "all" else [clip]) for x in runs[k][c][name]])
                row[c] = {"mean": round(float(d.mean()), 4) if d.size else float("nan"), "same": int((d < 0.6).sum()),
                          "n": int(d.size)}
            summary.append(row)
    print(markdown(summary))
    print(f"{time.time() - t0:.0f} s")
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps({"summary": summary, "runs": runs, "frames": args.frames,
                                             "every": args.every, "seconds": round(time.time() - t0)}, indent=1))


if __name__ == "__main__":
    main()
