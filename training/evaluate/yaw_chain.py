"""Where a user's small head turns are lost on the way to the live output, stage by stage.

    python -m training.evaluate.yaw_chain [--clips d20.mp4,d18.mp4] [--target ../shared/data/faces/obama.jpg]
        [--frames 200] [--json docs/results/yaw_chain.json]

The live pipeline (sync mode, every frame rendered, reenact toward --target at strength 1) runs each clip; every
second frame MediaPipe (training.evaluate.live_morph.MotionReader, the live evaluation's judge) reads the head's
yaw on the input frame, on the rendered face and on the pasted output frame, next to the pipeline's own drive
(the smoothed landmarks' pose). Correlations between neighbouring stages say which stage loses the turn, for
three reenactments: as shipped; without the encoder's motion (only the measured pose and the driven jaw move the
target); the pose drive alone (nothing but yaw and pitch move). A last column reads the judge against itself (the
input frame against the same frame scaled by 0.96 and JPEG-compressed): the ceiling of any correlation here.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_json_atomic
from engine.edits import Reenactment, slot_weights
from engine.live import LiveModels, LivePipeline, LiveSettings
from engine.video import VideoReader
from training.data.face_sets import PHOTOS, VIDEOS
from training.evaluate.live_morph import MotionReader, load_targets

VARIANTS = {
    "as shipped": Reenactment(),
    "no encoder motion": Reenactment(motion=slot_weights(coarse=0.0, middle=0.0)),
    "pose drive only": Reenactment(motion=slot_weights(coarse=0.0, middle=0.0), driven=()),
}


def perturbed(image: np.ndarray) -> np.ndarray:
    """The same frame scaled by 0.96 about its centre and JPEG-compressed (quality 85)."""
    h, w = image.shape[:2]
    scaled = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 0, 0.96), (w, h),
                            borderMode=cv2.BORDER_REFLECT)
    return cv2.imdecode(cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, 85])[1], cv2.IMREAD_COLOR)


def corr(x: list[float], y: list[float]) -> float:
    return round(float(np.corrcoef(x, y)[0, 1]), 3) if len(x) > 2 else float("nan")


def run(models: LiveModels, reader: MotionReader, clip: Path, target: np.ndarray, how: Reenactment,
        frames: int) -> dict:
    """Yaw per stage over every second frame of `clip`, and the correlations between stages."""
    stages = {"input": [], "drive": [], "render": [], "output": [], "input again": []}
    with VideoReader(clip) as video, LivePipeline(models) as pipe:
        for f in video.frames(frames):
            r = pipe.process(f.image, f.timestamp_ms, LiveSettings(target=target, reuse=False, reenactment=how))
            if not r.face_found or f.index % 2 or r.face.pose is None:
                continue
            render = cv2.cvtColor(models.generator.render(r.edited), cv2.COLOR_RGB2BGR)
            read = [reader.read(x) for x in (f.image, render, r.frame, perturbed(f.image))]
            if any(x is None for x in read):
                continue
            for name, x in zip(("input", "render", "output", "input again"), read):
                stages[name].append(x.motion["yaw"])
            stages["drive"].append(float(r.face.pose[0]))
    s = stages
    return {"frames": len(s["input"]), "yaw_range": round(float(np.ptp(s["input"])), 2) if s["input"] else 0.0,
            "input~drive": corr(s["input"], s["drive"]), "drive~render": corr(s["drive"], s["render"]),
            "render~output": corr(s["render"], s["output"]), "input~output": corr(s["input"], s["output"]),
            "judge ceiling": corr(s["input"], s["input again"])}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="d20.mp4,d18.mp4")
    ap.add_argument("--target", default=str(PHOTOS / "obama.jpg"), help="a photo, or seed:N")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--cache", type=Path, default=Path("runs/live_morph_targets"), help="target inversion cache")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    models = LiveModels.load(2)
    target = next(iter(load_targets([args.target], models, args.cache, 0).values())).target.wplus
    reader = MotionReader()
    rows = []
    try:
        print("| clip | reenactment | frames | input~drive | drive~render | render~output | input~output | judge ceiling |")
        print("|---|---|---|---|---|---|---|---|")
        for clip in args.clips.split(","):
            for name, how in VARIANTS.items():
                row = {"clip": clip, "reenactment": name} | run(models, reader, VIDEOS / clip, target, how, args.frames)
                rows.append(row)
                print(f"| {clip} | {name} | {row['frames']} | {row['input~drive']:.2f} | {row['drive~render']:.2f} | "
                      f"{row['render~output']:.2f} | {row['input~output']:.2f} | {row['judge ceiling']:.2f} |", flush=True)
    finally:
        reader.close()
    if args.json:
        write_json_atomic(args.json, {"target": args.target, "frames": args.frames, "rows": rows}, indent=1)


if __name__ == "__main__":
    main()
