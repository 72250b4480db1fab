"""Probe: can the app tell, once per dropped photo, whether the live student keeps that target?

    python -m training.evaluate.probe_student_targets --targets PHOTO,PHOTO,... [--labels LIVE_MORPH.json ...]
        [--json docs/results/....json]

Why: the live student keeps most photo targets but loses a few badly (docs/BENCHMARKS.md, "Shipped where it holds"),
so the live view renders every photo target with the preview head. A check run once per target could hand the
others to the student. Per target (inverted exactly as the app inverts a dropped photo) the target at rest and four
copies driven along the shipped directions (jaw open, yaw both ways, smile: what reenactment does at full strength)
are rendered by both generators, and each row gives the signals a check could use, averaged over the five renders:

- engine-side (what the app has): `cos` — the engine's recogniser (engine.face_id) between the two generators' faces;
  `cos_gap_photo` — how much closer the preview head's face is to the photo than the student's, by that recogniser;
  `psnr_face` — the two faces' agreement in pixels (inner face); `detail` — the student's fine detail (mean |Laplacian|
  over the inner face) as a share of the preview head's;
- the judge (training-side only): `dlib` — dlib's descriptor distance between the two generators' faces.

With `--labels` (live_morph.py JSON files run with --also "student renders photos") each target is labelled by the
share of judged frames the student loses against the preview head (`lost` when ≥ `--lost-share`), and each signal's
ROC AUC for telling lost targets from kept ones is printed and written (0.5: no better than chance).
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_json_atomic
from engine.benchmark import provenance
from engine.face_id import FaceId
from engine.landmarks import FaceLandmarker
from engine.live import LiveModels
from training.evaluate.dlib_judge import DlibIdentity
from training.evaluate.live_morph import load_targets

DRIVES = ({}, {"jaw_open": 0.8}, {"yaw": 0.6}, {"yaw": -0.6}, {"smile": 0.6})  # shares of each direction's max_units
INNER_FACE = (slice(72, 216), slice(64, 192))  # rows, columns of a 256-px aligned render: brows to chin, cheek to cheek
# (name, True when a higher value should mean "lost")
SIGNALS = (("cos", False), ("cos_gap_photo", True), ("psnr_face", False), ("detail", False), ("dlib", True))


def _embed(fid: FaceId, lm: FaceLandmarker, bgr: np.ndarray) -> np.ndarray | None:
    found = lm.detect(bgr)
    return fid.embed(bgr, found[0].xy) if found else None


def _detail(bgr: np.ndarray) -> float:
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F))[INNER_FACE].mean())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a[INNER_FACE].astype(np.float32) - b[INNER_FACE].astype(np.float32)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-6)))


def signals(models: LiveModels, wplus: np.ndarray, photo_emb: np.ndarray | None, fid: FaceId, lm: FaceLandmarker,
            ident: DlibIdentity) -> dict[str, list[float]]:
    """Per drive, each signal between the student's (models.generator) and the preview head's faces."""
    d = models.directions
    out = defaultdict(list)
    for drive in DRIVES:
        w = d.apply(wplus, **{k: v * d.directions[k].max_units for k, v in drive.items()}) if drive else wplus
        student, preview = (cv2.cvtColor(g.render(w), cv2.COLOR_RGB2BGR)
                            for g in (models.generator, models.refined_generator))
        es, ep = _embed(fid, lm, student), _embed(fid, lm, preview)
        out["cos"].append(float(es @ ep) if es is not None and ep is not None else 0.0)
        if photo_emb is not None and es is not None and ep is not None:
            out["cos_gap_photo"].append(float(ep @ photo_emb - es @ photo_emb))
        out["psnr_face"].append(_psnr(student, preview))
        out["detail"].append(_detail(student) / max(_detail(preview), 1e-6))
        out["dlib"].append(ident.distance(student, preview)[0])
    return out


def lost_shares(label_files: list[Path]) -> dict[str, float]:
    """Per target: (frames the preview head keeps − frames the student keeps) / judged frames, over every clip."""
    kept = defaultdict(lambda: {"student": [0, 0], "preview": [0, 0]})
    for f in label_files:
        for r in json.loads(Path(f).read_text())["rows"]:
            if r["clip"] == "all" or r["morph"].startswith("you") or not r["morph"].startswith("reenact"):
                continue
            k = kept[r["target"]]["student" if "student renders photos" in r["morph"] else "preview"]
            k[0], k[1] = k[0] + r["same"], k[1] + r["judged"]
    return {t: (v["preview"][0] - v["student"][0]) / max(v["student"][1], 1)
            for t, v in kept.items() if v["student"][1] and v["preview"][1]}


def auc(values: list[float], lost: list[bool], higher_means_lost: bool) -> float:
    """ROC AUC of `values` for telling lost targets from kept ones (ties count half)."""
    pos = [v for v, y in zip(values, lost) if y]
    neg = [v for v, y in zip(values, lost) if not y]
    if not pos or not neg:
        return float("nan")
    sign = 1 if higher_means_lost else -1
    return float(np.mean([(sign * (a - b) > 0) + 0.5 * (a == b) for a in pos for b in neg]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", required=True, help="target photos, comma-separated")
    ap.add_argument("--labels", type=Path, nargs="*", default=[],
                    help="live_morph JSON files (run with --also \"student renders photos\") that label the targets")
    ap.add_argument("--lost-share", type=float, default=0.1, help="a target is lost when the student keeps this "
                    "share of judged frames fewer than the preview head")
    ap.add_argument("--cache", type=Path, default=Path("runs/live_morph_targets"), help="target inversion cache")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    models = LiveModels.load(2)
    if models.refined_generator is None:
        raise SystemExit("the live student is not shipped: nothing to compare")
    targets = load_targets(args.targets.split(","), models, args.cache, 20)
    shares = lost_shares(args.labels)
    fid, ident, rows = FaceId.load(2), DlibIdentity(), []
    with FaceLandmarker() as lm:
        for name, (target, reference) in targets.items():
            wplus = target.wplus
            per_drive = signals(models, wplus, _embed(fid, lm, reference), fid, lm, ident)
            row = {"target": name, **{k: round(float(np.mean(v)), 4) for k, v in per_drive.items()}}
            if name in shares:
                row["lost_share"] = round(shares[name], 3)
            rows.append(row)
            print("  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{v:36s}" for k, v in row.items()), flush=True)
    labelled = [r for r in rows if "lost_share" in r and all(k in r for k, _ in SIGNALS)]
    lost = [r["lost_share"] >= args.lost_share for r in labelled]
    aucs = {k: round(auc([r[k] for r in labelled], lost, up), 3) for k, up in SIGNALS}
    if labelled:
        print(f"{sum(lost)} of {len(labelled)} labelled targets lost; ROC AUC per signal: "
              + ", ".join(f"{k} {v:.2f}" for k, v in aucs.items()))
    if args.json:
        write_json_atomic(args.json, {"rows": rows, "drives": list(DRIVES), "lost_share": args.lost_share,
                                      "auc": aucs if labelled else {},
                                      **provenance("training.evaluate.probe_student_targets", argv)})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
