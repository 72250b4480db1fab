"""Fit the skin-tone model (engine/inversion/skin_tone.py) on cached generated samples and write resources/models/skin_tone.npz.

    python -m training.fit.skin_tone --data prev6k_d --samples 3000

Per sample: the aligned crop's face oval (MediaPipe landmarks) gives the skin's median CIELAB; the feature is the
mean over the used slots of the target (W+ - w_avg) / w_std. Ridge regression (lambda 10) from feature to
CIELAB; the correlation of fit and reading per channel on a held-out tenth is printed and stored in `meta`.
"""
from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from engine.atomic import atomic_path
from engine.landmarks import FACE_OVAL, FaceLandmarker
from engine.inversion.skin_tone import SKIN_TONE_PATH, skin_lab
from training.data.samples import USED_SLOTS, data_root, load_shards


def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y ≈ y_mean + (x - x_mean) @ coef; returns (x_mean, coef, y_mean)."""
    xm, ym = x.mean(0), y.mean(0)
    xc = x - xm
    coef = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ (y - ym))
    return xm, coef, ym


def readings(data: dict) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, 512), skin CIELAB (N, 3)) of the samples whose crop has a face."""
    slots = list(USED_SLOTS)
    feats, labs = [], []
    with FaceLandmarker() as lm:
        for i in range(len(data["psi"])):
            bgr = cv2.cvtColor(data["crop"][i], cv2.COLOR_RGB2BGR)
            faces = lm.detect(bgr)
            if not faces:
                continue
            mask = np.zeros(bgr.shape[:2], np.uint8)
            cv2.fillPoly(mask, [np.round(faces[0].xy[list(FACE_OVAL)]).astype(np.int32)], 1)
            feats.append(((data["wplus"][i][slots] - data["w_avg"]) / data["w_std"]).mean(0))
            labs.append(skin_lab(bgr, mask.astype(bool)))
    return np.array(feats), np.array(labs)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="prev6k_d", help="cache folder(s) under the encoder-data root, comma-separated")
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--lam", type=float, default=10.0)
    ap.add_argument("--out", default=str(SKIN_TONE_PATH))
    args = ap.parse_args(argv)
    data = load_shards([data_root() / n for n in args.data.split(",")], limit=args.samples)
    x, y = readings(data)
    n_val = len(x) // 10
    xm, coef, ym = ridge(x[:-n_val], y[:-n_val], args.lam)
    pred = ym + (x[-n_val:] - xm) @ coef
    r = [round(float(np.corrcoef(pred[:, k], y[-n_val:, k])[0, 1]), 3) for k in range(3)]
    print(f"{len(x)} samples with a face; held-out correlation L* a* b*: {r}")
    xm, coef, ym = ridge(x, y, args.lam)
    slots = np.zeros(23, bool)
    slots[list(USED_SLOTS)] = True
    meta = {"data": args.data, "samples": len(x), "lam": args.lam, "held_out_r_Lab": r,
            "command": f"python -m training.fit.skin_tone --data {args.data} --samples {args.samples}"}
    with atomic_path(args.out, suffix=".npz") as tmp:
        np.savez(tmp, x_mean=xm.astype(np.float32), coef=coef.astype(np.float32), lab_mean=ym.astype(np.float32),
                 w_avg=data["w_avg"].astype(np.float32), w_std=data["w_std"].astype(np.float32), slots=slots,
                 meta=np.array(json.dumps(meta)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
