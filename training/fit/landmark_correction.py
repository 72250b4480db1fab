"""Fit the landmark correction (engine/inversion/corrections/landmark.py) on cached generated samples.

    python -m training.data.samples --name lmk_a --samples 8000 --resolution 256 --seed 21 --psi-min 0.5
    python -m training.data.samples --name lmk_b --samples 8000 --resolution 256 --seed 22 --psi-min 0.5
    python -m training.fit.landmark_correction --data lmk_a,lmk_b          # 2.7 min on 2 cores

Per sample (a cache built with landmarks, training.data.samples): the render's MediaPipe landmarks in crop units
(the feature, 478 x 3), and the shipped encoder's W+ from the crop. The encoder sees the crop degraded by the
training augmentation at `--encoder-aug` (geometry jitter, blur, resampling, JPEG, noise; no colour), so the fit
learns how far to trust the landmarks where the encoder's view is poor, as it is on real photos; the landmarks
come from the clean render, as MediaPipe, trained on real faces, reads a photo. Target: the encoder's error
(W+ - predicted) in w_std units on the used slots up to 128 px (SHAPE_SLOTS; the colour slots are left alone:
correcting them too cost skin colour, docs/ENCODER.md). Ridge regression (lambda picked on the last `--val` samples
by their latent MSE), then cut to rank `--rank` (truncated SVD of the fitted map), refitted on all samples.
Writes resources/models/landmark_correction.npz (atomically) with the held-out numbers in `meta`.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from engine.inversion.encoder import Encoder
from engine.inversion.corrections.landmark import LANDMARK_CORRECTION_PATH
from engine.models import resolve_model, sha256_file
from training.data.samples import data_root, load_shards
from training.fit.corrections import (SHAPE_SLOTS, SLOTS, encoder_predictions, fit_parser, save_correction,
                                      ship_correction)
from training.fit.ridge import fit_reduced_ridge


def fit(folders: list[Path], val: int, rank: int, aug: float, lams: list[float], threads: int,
        encoder_path: str | None = None) -> tuple[dict, dict]:
    """(arrays for the npz, meta) of the landmark correction fitted on the cached samples in `folders`."""
    t0 = time.time()
    data = load_shards(folders)
    if "landmarks" not in data:
        raise SystemExit(f"{folders[0]} has no landmarks: build the cache again with training.data.samples")
    keep = data["aligned"] & np.isfinite(data["landmarks"]).all((1, 2))
    model = resolve_model("inversion_encoder", encoder_path, verify=encoder_path is None)
    enc = Encoder.load(threads, model, landmark_correction=False)
    w_std = data["w_std"]
    pred = encoder_predictions(enc, data["crop"][keep], aug)
    moved = [SLOTS.index(s) for s in SHAPE_SLOTS]
    err = ((data["wplus"][keep][:, SLOTS] - pred)[:, moved] / w_std).reshape(int(keep.sum()), -1)
    x = data["landmarks"][keep].reshape(int(keep.sum()), -1)
    del data
    arrays, sel = fit_reduced_ridge(x, err, val, rank, lams)
    slots = np.zeros(23, bool)
    slots[SHAPE_SLOTS] = True
    meta = {"samples": int(len(x)), "val": val, "rank": rank, "lambda": sel["lambda"], "encoder_aug": aug,
            "val_latent_mse_encoder": sel["before"], "val_latent_mse_corrected": sel["after"],
            "lambdas": sel["lambdas"], "data": [f.name for f in folders],
            "encoder_sha256": sha256_file(model),
            "seconds": round(time.time() - t0)}
    return {**arrays, "w_std": w_std.astype(np.float32), "slots": slots}, meta


def main(argv: list[str] | None = None) -> None:
    ap = fit_parser(__doc__, "lmk_a,lmk_b", 64, "0.001,0.003,0.01,0.03,0.1,0.3,1", LANDMARK_CORRECTION_PATH)
    ap.add_argument("--encoder", help="inversion_encoder.onnx (default: the shipped one)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.threads)
    arrays, meta = fit([data_root() / n for n in args.data.split(",")], args.val, args.rank, args.encoder_aug,
                       [float(v) for v in args.lambdas.split(",")], args.threads, args.encoder)
    save_correction(args.out, arrays, meta)
    ship_correction(
        args.out, LANDMARK_CORRECTION_PATH, "landmark_correction",
        f"reduced-rank ridge regression (rank {meta['rank']}) from MediaPipe's 478 landmarks in crop units to the "
        f"inversion encoder's W+ error, fitted on {meta['samples']} generated faces (engine/inversion/corrections/landmark.py); "
        "for the encoder with sha256 " + meta["encoder_sha256"],
        "python -m training.data.samples --name lmk_a --samples 8000 --resolution 256 --seed 21 --psi-min 0.5 && "
        "python -m training.data.samples --name lmk_b --samples 8000 --resolution 256 --seed 22 --psi-min 0.5 && "
        "python -m training.fit.landmark_correction --data lmk_a,lmk_b")


if __name__ == "__main__":
    main()
