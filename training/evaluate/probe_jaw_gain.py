"""Probe: does the shipped jaw direction open each morph target's mouth by its calibrated amount?

    python -m training.evaluate.probe_jaw_gain --targets PHOTO,PHOTO,...,seed:N [--json docs/results/....json]

Why: reenactment drives the target's jaw by the user's measured jawOpen along one direction calibrated on generated
faces (docs/EDITS.md); a target whose mouth does not open along it answers a user's yawn with a still or closing mouth
(docs/MORPH.md). Per target (inverted as the app inverts a dropped photo, rendered by the generator the live view uses
for it) MediaPipe reads jawOpen at rest and at the direction's calibrated maximum; `gain` = the opening reached over
the opening calibrated (1: as on generated faces, 0: the mouth does not open).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_json_atomic
from engine.benchmark import provenance
from engine.live import LiveModels, LiveSettings
from training.data.face_labels import FaceLabeler
from training.evaluate.live_morph import load_targets

LABEL_SIZE = 384  # as the directions were calibrated (training/fit/directions.py)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", required=True, help="target photos or seed:N, comma-separated")
    ap.add_argument("--cache", type=Path, default=Path("runs/live_morph_targets"), help="target inversion cache")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    models = LiveModels.load(2)
    jaw = models.directions.directions["jaw_open"]
    labeler, rows = FaceLabeler(), []
    for name, (target, _) in load_targets(args.targets.split(","), models, args.cache, 20).items():
        wplus, refined = target.wplus, target.refined
        gen = models.renders_with(LiveSettings(target=wplus, target_refined=refined, strength=1.0))
        read = [labeler.label(cv2.resize(gen.render(w), (LABEL_SIZE, LABEL_SIZE), interpolation=cv2.INTER_AREA))
                for w in (wplus, models.directions.apply(wplus, jaw_open=jaw.max_units))]
        if None in read:
            print(f"{name}: no face read")
            continue
        rows.append({"target": name, "rest": round(read[0]["jaw_open"], 3), "at_max": round(read[1]["jaw_open"], 3),
                     "gain": round((read[1]["jaw_open"] - read[0]["jaw_open"]) / jaw.max_units, 3)})
        print(f"{name:40s} jawOpen {rows[-1]['rest']:.3f} -> {rows[-1]['at_max']:.3f}  gain {rows[-1]['gain']:.2f}")
    labeler.close()
    gains = np.array([r["gain"] for r in rows])
    summary = {"targets": len(rows), "median_gain": round(float(np.median(gains)), 3),
               "below_0.3": int((gains < 0.3).sum()), "below_0.5": int((gains < 0.5).sum())}
    print(summary)
    if args.json:
        write_json_atomic(args.json, {"rows": rows, "summary": summary, "calibrated_max": jaw.max_units,
                                      **provenance("training.evaluate.probe_jaw_gain", argv)})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
