"""`celeblook calibrate SOURCE... --out me.npz`: calibrate the one pass to one person (engine/inversion/calibration.py).

SOURCE: a video file of the person (the first --keyframes frames with a usable face, --gap seconds apart) or one
or more photos of them (each is a keyframe). Each keyframe is refined once with the quality mode (a few seconds);
the mean offset is written to --out and can be given to `celeblook-desktop --calibration` and to the photo
commands (`invert`, `morph`, `edit`, `text`: --calibration), which then add it to the one pass.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine.inversion.calibration import KEYFRAMES, MIN_GAP_S, PHOTO_SPACING_S, IdentityCalibration, calibrate, photo_frames
from engine.inversion.encoder import Encoder
from engine.errors import BadInputError
from engine.generator import Generator
from engine.image_io import load_image
from engine.landmarks import FaceLandmarker
from engine.inversion.refine import STEPS, Refiner
from engine.inversion.targets import IMAGE_SUFFIXES
from engine.video import VideoReader


def load_calibration(path, encoder: Encoder) -> IdentityCalibration | None:
    """--calibration FILE, checked against the encoder in use (None without a path)."""
    return None if path is None else IdentityCalibration.load(path, encoder.one_pass_id)


def _frames(sources: list[Path]):
    if len(sources) == 1 and sources[0].suffix.lower() not in IMAGE_SUFFIXES:
        with VideoReader(sources[0]) as video:
            for frame in video:
                yield frame.image, frame.timestamp_ms / 1000.0
        return
    for s in sources:
        if s.suffix.lower() not in IMAGE_SUFFIXES:
            raise BadInputError(f"{s}: give one video, or photos only")
    yield from photo_frames(load_image(s) for s in sources)


def run(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise BadInputError(f"--steps must be >= 1, got {args.steps}")
    if args.keyframes < 1:
        raise BadInputError(f"--keyframes must be >= 1, got {args.keyframes}")
    encoder = Encoder.load(args.threads, args.encoder)
    refiner = Refiner.load(args.threads, full=Generator.load(args.threads))
    photos = args.source[0].suffix.lower() in IMAGE_SUFFIXES
    keyframes = len(args.source) if photos else args.keyframes
    t0 = time.perf_counter()

    def progress(n: int, t: float) -> None:
        print(f"keyframe {n}/{keyframes} ({time.perf_counter() - t0:.1f} s)", flush=True)

    def skipped(t: float, reason: str) -> None:  # photos only: a video has frames enough
        if photos:
            name = args.source[int(round(t / PHOTO_SPACING_S))].name
            print(f"celeblook calibrate: warning: skipped {name}: {reason}", file=sys.stderr)

    with FaceLandmarker(args.model) as landmarker:
        cal = calibrate(_frames(args.source), landmarker, encoder, refiner, encoder.one_pass_id,
                        keyframes, args.gap, args.steps, progress, skipped)
    cal.save(args.out)
    print(f"wrote {args.out}: {cal.keyframes} keyframes, {args.steps} quality steps each "
          f"({time.perf_counter() - t0:.1f} s)")
    if cal.keyframes < keyframes:
        print(f"celeblook calibrate: warning: {cal.keyframes} of {keyframes} keyframes used", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="calibrate the one-pass inversion to one person (a video or photos)",
                       description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, nargs="+", help="a video of the person, or photos of them")
    p.add_argument("--out", type=Path, required=True, help="calibration file to write (.npz)")
    p.add_argument("--keyframes", type=int, default=KEYFRAMES, help=f"keyframes of a video (default {KEYFRAMES})")
    p.add_argument("--gap", type=float, default=MIN_GAP_S, help=f"seconds between video keyframes ({MIN_GAP_S:g})")
    p.add_argument("--steps", type=int, default=STEPS, help=f"quality-mode steps per keyframe (default {STEPS})")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: default)")
    p.add_argument("--encoder", type=Path, help="inversion encoder ONNX (default: the shipped one)")
    p.add_argument("--model", type=Path, help="face_landmarker.task (default: resolved as usual)")
    p.set_defaults(func=run)
