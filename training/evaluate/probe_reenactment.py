"""Probe the reenactment's choices: which slots carry the user's motion, and how much the measured blendshapes and
head pose drive.

    python -m training.evaluate.probe_reenactment --json docs/results/probe_reenactment.json   # ~40 min on 2 cores

Each variant of engine.edits.Reenactment runs the live pipeline (as training.evaluate.live_morph does it, `sync`)
at strength 1 toward each target on each clip and is judged the same way: frames recognised as the target by dlib
and the correlation of the output's pose and expression with the input's. d18 has wide mouth openings and
smiles, d20 moderate ones: a choice has to hold on both.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from engine.atomic import atomic_path
from engine.edits import Reenactment, slot_weights
from engine.live import LiveModels, LiveSettings
from training.data.face_sets import PHOTOS, VIDEOS
from training.evaluate.dlib_judge import DlibIdentity
from training.evaluate.live_morph import MotionReader, judge, load_targets, markdown, run_clip, totals

ALL = ("jaw_open", "smile", "eye_blink", "brow_raise")
VARIANTS: dict[str, tuple[Reenactment, bool]] = {  # name -> (how, drive_expression)
    "slots 0-3, latent only": (Reenactment(motion=slot_weights(coarse=1.0)), False),
    "slots 0-9, latent only": (Reenactment(), False),
    "slots 0-12, latent only": (Reenactment(motion=slot_weights(coarse=1.0, middle=1.0, fine=1.0) * (np.arange(23) < 13)),
                                False),
    "slots 0-9 x1.5, latent only": (Reenactment(motion=1.5 * slot_weights(coarse=1.0, middle=1.0)), False),
    "drive all 4, share 1": (Reenactment(driven=ALL, share=1.0), True),
    "drive all 4, share 0.5": (Reenactment(driven=ALL, share=0.5), True),
    "drive jaw+smile, share 0.5": (Reenactment(driven=("jaw_open", "smile"), share=0.5), True),
    "drive jaw, share 1": (Reenactment(share=1.0), True),
    "drive jaw, share 0.5 (default)": (Reenactment(), True),
    "drive jaw, and the head pose by MediaPipe, share 0.5": (Reenactment(pose_share=0.5), True),
    "drive jaw, and the head pose by MediaPipe, share 1": (Reenactment(pose_share=1.0), True),
    "drive jaw and head pose, motion on slots 4-9 only": (Reenactment(motion=slot_weights(middle=1.0)), True),
    "drive jaw and head pose, no latent motion": (Reenactment(motion=slot_weights(coarse=0.0, middle=0.0)), True),
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="d18.mp4,d20.mp4")
    ap.add_argument("--targets", default=f"{PHOTOS / 'biden.jpg'},{PHOTOS / 'obama.jpg'}")
    ap.add_argument("--variants", help=f"a subset, separated by semicolons: {'; '.join(VARIANTS)}")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--cache", type=Path, default=Path("runs/live_morph_targets"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.variants.split(";")] if args.variants else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)}")
    t0 = time.time()
    models = LiveModels.load(1)
    targets = load_targets(args.targets.split(","), models, args.cache, 20)  # refined, as the app makes them
    reader, ident, rows = MotionReader(), DlibIdentity(), []
    for clip in args.clips.split(","):
        for name in names:
            how, drive = VARIANTS[name]
            for tname, (target, crop) in targets.items():
                wplus, refined = target.wplus, target.refined
                settings = LiveSettings(target=wplus, target_refined=refined, strength=1.0, reenactment=how,
                                        drive_expression=drive)
                pairs = run_clip(models, VIDEOS / clip, settings, args.frames, "sync", args.every)
                row = {"clip": clip, "target": tname, "morph": name, **judge(pairs, reader, ident, crop)}
                rows.append(row)
                print(markdown([row]).splitlines()[-1], flush=True)
    reader.close()
    summary = totals(rows)
    print(markdown(summary))
    print(f"{time.time() - t0:.0f} s")
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps({"rows": rows, "summary": summary, "frames": args.frames,
                                             "every": args.every}, indent=1))


if __name__ == "__main__":
    main()
