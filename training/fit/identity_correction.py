"""Fit the identity correction (engine/inversion/corrections/identity.py) on cached generated samples.

    for s in a:31 b:32 c:33 d:34; do    # 32 k samples, ~30 min on 2 cores (two at a time, --threads 1 each)
      python -m training.data.samples --name idc_${s%:*} --samples 8000 --resolution 256 --seed ${s#*:} --psi-min 0.5
    done
    python -m training.fit.identity_correction            # ~9 min on 2 cores, ~1 min once the features are cached

Per sample (a cache built with landmarks, training.data.samples): the feature is the face-recognition embedding
(engine/face_id.py) of the clean aligned crop, as the recogniser, trained on real photos, reads a photo; the
prediction is the engine's one pass: the shipped encoder on the crop degraded by the training augmentation at
`--encoder-aug` (as in training/fit/landmark_correction.py: the fit learns how far to trust the recogniser where
the encoder's view is poor, as it is on real photos), plus the shipped landmark correction. Target: what that one
pass still gets wrong (W+ - predicted) in w_std units on `--slots`. Ridge regression (lambda picked on the last
`--val` samples by their latent MSE), cut to rank `--rank`, refitted on all samples. Writes
resources/models/identity_correction_generated.npz (atomically) with the held-out numbers in `meta`: the base that
training/fit/identity_correction_real.py adds a real-photo term to, making the correction the engine loads.
Embeddings and predictions are cached under ~/.cache/celeblook/identity/.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import atomic_path
from engine.inversion.encoder import Encoder
from engine.face_id import FaceId, recognition_crop
from engine.inversion.corrections.landmark import LANDMARK_CORRECTION_PATH
from engine.models import MODELS_DIR, load_manifest, sha256_file, user_cache_dir
from training.data.samples import USED_SLOTS, data_root, load_shards
from training.fit.corrections import (SHAPE_SLOTS, SLOTS, encoder_predictions, fit_parser, save_correction,
                                      ship_correction)
from training.fit.ridge import fit_reduced_ridge

# the fit on generated faces alone; the engine loads it only with the real-photo term added (identity_correction.npz)
GENERATED_PATH = MODELS_DIR / "identity_correction_generated.npz"
SLOT_SETS = {"all": list(USED_SLOTS), "shape": SHAPE_SLOTS, "colour": [s for s in USED_SLOTS if s >= 16]}


def face_embeddings(face_id: FaceId, crops_rgb: np.ndarray, landmarks: np.ndarray, batch: int = 32) -> np.ndarray:
    """Recognition embeddings (N, D) of aligned crops (uint8 RGB) from their landmarks in crop units."""
    out = []
    t0 = time.time()
    for i in range(0, len(crops_rgb), batch):
        rec = [recognition_crop(cv2.cvtColor(c, cv2.COLOR_RGB2BGR), p[:, :2] * c.shape[0], face_id.input_size)
               for c, p in zip(crops_rgb[i:i + batch], landmarks[i:i + batch])]
        out.append(face_id.embed_crops(rec))
        if (i // batch) % 50 == 49:
            print(f"face id: {i + batch}/{len(crops_rgb)}, {(i + batch) / (time.time() - t0):.0f}/s", flush=True)
    return np.concatenate(out)


def one_pass_predictions(enc: Encoder, crops_rgb: np.ndarray, landmarks: np.ndarray, aug: float) -> np.ndarray:
    """The engine's one pass on the used slots (N, 16, 512): the encoder (input augmented at `aug`) plus its
    landmark correction, batched."""
    pred = encoder_predictions(enc, crops_rgb, aug)
    moved = [SLOTS.index(s) for s in np.flatnonzero(enc.correction.slots)]
    pred[:, moved] += enc.correction.deltas(landmarks)
    return pred


def cached_features(folders: list[Path], aug: float, threads: int) -> dict:
    """{"x": embeddings, "pred": one-pass W+ (used slots), "target": true W+ (used slots), "w_std"} of the
    aligned samples in `folders`, cached on disk by data, augmentation and model hashes."""
    manifest = load_manifest()
    shards = sum(len(list(f.glob("shard_*.npz"))) for f in folders)
    key = "_".join(f.name for f in folders) + f"_{shards}shards_aug{aug:g}_{manifest['inversion_encoder'].sha256[:8]}" \
        f"_{sha256_file(LANDMARK_CORRECTION_PATH)[:8]}_{manifest['face_id'].sha256[:8]}"
    path = user_cache_dir() / "identity" / f"{key}.npz"
    if path.is_file():
        with np.load(path) as d:
            return dict(d)
    data = load_shards(folders, keys=("crop", "wplus", "aligned", "landmarks"))
    if "landmarks" not in data:
        raise SystemExit(f"{folders[0]} has no landmarks: build the cache again with training.data.samples")
    keep = np.flatnonzero(data["aligned"] & np.isfinite(data["landmarks"]).all((1, 2)))
    whole = len(keep) == len(data["aligned"])  # no copy of the crops when every sample is kept
    crops, points = (data["crop"] if whole else data["crop"][keep]), data["landmarks"][keep]
    enc = Encoder.load(threads)
    if enc.correction is None:
        raise SystemExit("the shipped encoder has no landmark correction: fit it first (training.fit.landmark_correction)")
    out = {"x": face_embeddings(FaceId.load(threads), crops, points),
           "pred": one_pass_predictions(enc, crops, points, aug),
           "target": data["wplus"][keep][:, SLOTS], "w_std": data["w_std"]}
    del data, crops
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **out)
    return out


def fit(folders: list[Path], val: int, rank: int, aug: float, lams: list[float], slots: str,
        threads: int) -> tuple[dict, dict]:
    """(arrays for the npz, meta) of the identity correction fitted on the cached samples in `folders`."""
    t0 = time.time()
    feats = cached_features(folders, aug, threads)
    moved = SLOT_SETS[slots]
    cols = [SLOTS.index(s) for s in moved]
    x = feats["x"]
    err = ((feats["target"] - feats["pred"])[:, cols] / feats["w_std"]).reshape(len(x), -1)
    arrays, sel = fit_reduced_ridge(x, err, val, rank, lams, f" on slots {slots}")
    mask = np.zeros(23, bool)
    mask[moved] = True
    manifest = load_manifest()
    meta = {"samples": int(len(x)), "val": val, "rank": rank, "lambda": sel["lambda"], "encoder_aug": aug,
            "slots": slots, "val_latent_mse_one_pass": sel["before"], "val_latent_mse_corrected": sel["after"],
            "lambdas": sel["lambdas"], "data": [f.name for f in folders],
            "encoder_sha256": manifest["inversion_encoder"].sha256,
            "landmark_correction_sha256": sha256_file(LANDMARK_CORRECTION_PATH),
            "face_id_sha256": manifest["face_id"].sha256, "seconds": round(time.time() - t0)}
    return {**arrays, "w_std": feats["w_std"].astype(np.float32), "slots": mask}, meta


def main(argv: list[str] | None = None) -> None:
    ap = fit_parser(__doc__, "idc_a,idc_b,idc_c,idc_d", 256, "0.3,1,3,10,30", GENERATED_PATH)
    ap.add_argument("--slots", choices=sorted(SLOT_SETS), default="shape",
                    help="which used slots it moves: all, shape (up to 128 px) or colour")
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.threads)
    arrays, meta = fit([data_root() / n for n in args.data.split(",")], args.val, args.rank, args.encoder_aug,
                       [float(v) for v in args.lambdas.split(",")], args.slots, args.threads)
    save_correction(args.out, arrays, meta)
    ship_correction(
        args.out, GENERATED_PATH, "identity_correction_generated",
        f"reduced-rank ridge regression (rank {meta['rank']}) from the face-recognition embedding (face_id) to the one "
        f"pass's W+ error on the used slots ({meta['slots']}), fitted on {meta['samples']} generated faces "
        f"(engine/inversion/corrections/identity.py); for the encoder with sha256 {meta['encoder_sha256']} and its landmark "
        "correction; the base of identity_correction (which adds a real-photo term), not loaded by the engine",
        "for s in a:31 b:32 c:33 d:34; do python -m training.data.samples --name idc_${s%:*} --samples 8000 "
        "--resolution 256 --seed ${s#*:} --psi-min 0.5; done && python -m training.fit.identity_correction --data "
        + ",".join(meta["data"]))

if __name__ == "__main__":
    main()
