"""Probe: can the app tell, once per dropped photo, whether the live student keeps that target?

    python -m training.evaluate.probe_student_targets --targets PHOTO,PHOTO,... [--json docs/results/....json]

Why: the live student keeps most photo targets but loses a few badly (docs/BENCHMARKS.md, "Shipped where it holds"),
so the live view renders every photo target with the preview head. A check run once per target could hand the
others to the student. Per target (inverted exactly as the app inverts a dropped photo) the target at rest and four
copies driven along the shipped directions (jaw open, yaw both ways, smile: what reenactment does at full strength)
are rendered by both generators; the row gives the mean and lowest cosine similarity of the engine's recogniser
(engine.face_id) between the student's and the preview head's faces, and dlib's mean descriptor distance between
them (the evaluations' judge; training-side only). Compare the rows with how often each generator's live output was
recognised (training/evaluate/live_morph.py --also "student renders photos").
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_json_atomic
from engine.benchmark import machine_info
from engine.face_id import FaceId
from engine.landmarks import FaceLandmarker
from engine.live import LiveModels
from training.evaluate.dlib_judge import DlibIdentity
from training.evaluate.live_morph import load_targets

DRIVES = ({}, {"jaw_open": 0.8}, {"yaw": 0.6}, {"yaw": -0.6}, {"smile": 0.6})  # shares of each direction's max_units


def agreement(models: LiveModels, wplus: np.ndarray, fid: FaceId, lm: FaceLandmarker,
              ident: DlibIdentity) -> tuple[list[float], list[float]]:
    """Per drive: the recogniser's cosine similarity and dlib's distance between the student's and the preview
    head's faces of the target at rest and driven."""
    d = models.directions
    sims, dists = [], []
    for drive in DRIVES:
        w = d.apply(wplus, **{k: v * d.directions[k].max_units for k, v in drive.items()}) if drive else wplus
        embs, faces = [], []
        for gen in (models.generator, models.refined_generator):
            faces.append(cv2.cvtColor(gen.render(w), cv2.COLOR_RGB2BGR))
            found = lm.detect(faces[-1])
            embs.append(fid.embed(faces[-1], found[0].xy) if found else None)
        sims.append(float(embs[0] @ embs[1]) if all(e is not None for e in embs) else 0.0)
        dists.append(ident.distance(*faces)[0])
    return sims, dists


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", required=True, help="target photos, comma-separated")
    ap.add_argument("--cache", type=Path, default=Path("runs/live_morph_targets"), help="target inversion cache")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    models = LiveModels.load(2)
    if models.refined_generator is None:
        raise SystemExit("the live student is not shipped: nothing to compare")
    targets = load_targets(args.targets.split(","), models, args.cache, 20)
    fid, ident, rows = FaceId.load(2), DlibIdentity(), []
    with FaceLandmarker() as lm:
        for name, (wplus, _, _) in targets.items():
            sims, dists = agreement(models, wplus, fid, lm, ident)
            rows.append({"target": name, "mean_cos": round(float(np.mean(sims)), 4), "min_cos": round(min(sims), 4),
                         "dlib_mean": round(float(np.mean(dists)), 4), "per_drive_cos": [round(s, 4) for s in sims],
                         "per_drive_dlib": [round(x, 4) for x in dists]})
            print(f"{name:40s} recogniser cos mean {rows[-1]['mean_cos']:.3f} min {rows[-1]['min_cos']:.3f}  "
                  f"dlib distance {rows[-1]['dlib_mean']:.3f}", flush=True)
    if args.json:
        write_json_atomic(args.json, {"rows": rows, "drives": list(DRIVES), "machine": machine_info(),
                                      "command": "python -m training.evaluate.probe_student_targets " + " ".join(argv or [])})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
