"""Fit the landmark correction (engine/landmark_correction.py) on cached generated samples.

    python -m training.encoder_data --name lmk_a --samples 8000 --resolution 256 --seed 21 --psi-min 0.5
    python -m training.encoder_data --name lmk_b --samples 8000 --resolution 256 --seed 22 --psi-min 0.5
    python -m training.fit_landmark_correction --data lmk_a,lmk_b          # 2.7 min on 2 cores

Per sample (a cache built with landmarks, training.encoder_data): the render's MediaPipe landmarks in crop units
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

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import atomic_path
from engine.inversion.encoder import Encoder
from engine.inversion.corrections.landmark import LANDMARK_CORRECTION_PATH
from engine.models import resolve_model, sha256_file
from training.encoder_data import USED_SLOTS, data_root, load_shards

SLOTS = list(USED_SLOTS)
# the slots the correction moves: coarse, middle and fine (4-128 px), not the colour slots (256 px to the RGB
# head, 16 17 19 20 21: skin, hair and light, which the landmarks do not see; docs/EDITS.md)
SHAPE_SLOTS = [s for s in USED_SLOTS if s < 16]


def encoder_predictions(enc: Encoder, crops_rgb: np.ndarray, aug: float, seed: int = 0,
                        batch: int = 32) -> np.ndarray:
    """The encoder's W+ (N, 16, 512) on the used slots for uint8 RGB crops, augmented at strength `aug`."""
    from training.train_encoder import augment

    rng = np.random.default_rng(seed)
    out = np.zeros((len(crops_rgb), len(SLOTS), 512), np.float32)
    t0 = time.time()
    for i in range(0, len(crops_rgb), batch):
        x = augment(crops_rgb[i:i + batch], enc.input_size, rng, aug, 0.0).numpy()
        out[i:i + batch] = enc.session.run(None, {"image": x})[0][:, SLOTS]
        if (i // batch) % 50 == 49:
            print(f"encoder: {i + batch}/{len(crops_rgb)}, {(i + batch) / (time.time() - t0):.0f}/s", flush=True)
    return out


def ridge_path(x: np.ndarray, y: np.ndarray, lams: list[float]):
    """Ridge fits y ≈ y_mean + (x - x_mean) @ B for every lambda from one eigendecomposition; yields
    (lambda, x_mean, y_mean, B)."""
    xm, ym = x.mean(0), y.mean(0)
    xc = (x - xm).astype(np.float64)
    evals, q = np.linalg.eigh(xc.T @ xc)
    c = q.T @ (xc.T @ (y - ym).astype(np.float64))
    for lam in lams:
        yield lam, xm, ym, (q @ (c / (evals + lam)[:, None])).astype(np.float32)


def reduce_rank(b: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """B (F, T) ≈ proj (F, k) @ coef (k, T), the best rank-k approximation: proj = the top k left singular
    vectors (from the F x F matrix B B^T, cheaper than B's SVD when T >> F), coef = proj^T B."""
    evals, u = np.linalg.eigh(b.astype(np.float64) @ b.T.astype(np.float64))
    proj = u[:, ::-1][:, :rank].astype(np.float32)
    return proj, proj.T @ b


def fit_reduced_ridge(x: np.ndarray, err: np.ndarray, val: int, rank: int, lams: list[float],
                      label: str = "") -> tuple[dict, dict]:
    """err ≈ bias + ((x - x_mean) @ proj) @ coef: lambda picked by the latent MSE of the last `val` samples (fitted on
    the rest), then refitted on all samples and cut to rank `rank`. Returns (x_mean, proj, coef, bias as float32 /
    float16 arrays; {"lambda", "before", "after": held-out MSE without / with it, "lambdas": MSE per lambda})."""
    tr, ho = slice(0, len(x) - val), slice(len(x) - val, None)
    base = float((err[ho] ** 2).mean())
    scores = []
    for lam, xm, ym, b in ridge_path(x[tr], err[tr], lams):
        proj, coef = reduce_rank(b, rank)
        full = float(((err[ho] - ym - (x[ho] - xm) @ b) ** 2).mean())
        scores.append((float(((err[ho] - ym - ((x[ho] - xm) @ proj) @ coef) ** 2).mean()), lam))
        print(f"lambda {lam:g}: held-out latent MSE{label} {base:.4f} -> {scores[-1][0]:.4f} at rank {rank} "
              f"({full:.4f} at full rank)", flush=True)
    best_mse, best_lam = min(scores)
    _, xm, ym, b = next(ridge_path(x, err, [best_lam]))
    proj, coef = reduce_rank(b, rank)
    arrays = {"x_mean": xm.astype(np.float32), "proj": proj.astype(np.float16), "coef": coef.astype(np.float16),
              "bias": ym.astype(np.float32)}
    return arrays, {"lambda": best_lam, "before": round(base, 4), "after": round(best_mse, 4),
                    "lambdas": {f"{lam:g}": round(m, 4) for m, lam in scores}}


def save_correction(path: Path, arrays: dict, meta: dict) -> None:
    """Write a correction's arrays and its meta (JSON) as one npz, atomically."""
    print(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def ship_correction(path: Path, shipped: Path, name: str, source: str, regenerate: str) -> None:
    """Record a correction just written to `path` in the model manifest as `name`, when `path` is its `shipped`
    location (a development fit written elsewhere is not recorded)."""
    if path != shipped:
        return
    from training.export_onnx import update_manifest

    update_manifest({name: {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                            "source": source, "licence": "Apache-2.0 (ours)", "shipped": True,
                            "regenerate": regenerate}})


def fit(folders: list[Path], val: int, rank: int, aug: float, lams: list[float], threads: int,
        encoder_path: str | None = None) -> tuple[dict, dict]:
    """(arrays for the npz, meta) of the landmark correction fitted on the cached samples in `folders`."""
    t0 = time.time()
    data = load_shards(folders)
    if "landmarks" not in data:
        raise SystemExit(f"{folders[0]} has no landmarks: build the cache again with training.encoder_data")
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


def fit_parser(doc: str, data: str, rank: int, lambdas: str, out: Path) -> argparse.ArgumentParser:
    """The command line the correction fits share (data folders, held-out count, rank, the encoder input's
    augmentation, lambdas, threads, output); each script adds its own options."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--data", default=data, help="cache folders (with landmarks) under the encoder-data root")
    ap.add_argument("--val", type=int, default=500, help="last N samples held out to pick lambda")
    ap.add_argument("--rank", type=int, default=rank)
    ap.add_argument("--encoder-aug", type=float, default=0.5, help="augmentation strength of the encoder's input")
    ap.add_argument("--lambdas", default=lambdas)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=out)
    return ap


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
        f"inversion encoder's W+ error, fitted on {meta['samples']} generated faces (engine/landmark_correction.py); "
        "for the encoder with sha256 " + meta["encoder_sha256"],
        "python -m training.encoder_data --name lmk_a --samples 8000 --resolution 256 --seed 21 --psi-min 0.5 && "
        "python -m training.encoder_data --name lmk_b --samples 8000 --resolution 256 --seed 22 --psi-min 0.5 && "
        "python -m training.fit_landmark_correction --data lmk_a,lmk_b")


if __name__ == "__main__":
    main()
