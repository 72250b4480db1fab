"""Fit the identity feedback (engine/inversion/corrections/feedback.py) on cached generated samples the one pass never saw.

    for s in a:41 b:42; do    # 16 k samples, ~14 min on 2 cores (both at once, --threads 1 each)
      python -m training.data.samples --name idf_${s%:*} --samples 8000 --resolution 256 --seed ${s#*:} --psi-min 0.5
    done
    python -m training.fit.identity_feedback            # ~28 min on 2 cores; 5 min once the features are cached

Per sample: the engine's one pass as the identity correction was fitted on it (the shipped encoder on the crop
degraded by the training augmentation at `--encoder-aug`, plus the landmark and identity corrections; the
identity correction reads the clean crop's embedding), rendered by the 256-px preview head; MediaPipe finds the
render's face and the recogniser embeds it (samples whose render has no face are dropped). Feature: the clean
crop's embedding minus the render's. Target: what the one pass still gets wrong (W+ - one pass) in w_std units on
the shape slots. Ridge regression (lambda picked on the last `--val` samples by their latent MSE), cut to rank
`--rank`, refitted on all samples. Ridge shrinks the step it predicts; so the step's scale is then picked on the
same held-out samples by what the step is for: the recogniser's cosine between the clean crop and the render of the
moved W+ (`--scales`; the map fitted without them renders each held-out sample at each scale), and folded into the
map. Writes resources/models/identity_feedback.npz (atomically) with the held-out numbers in `meta`. Features are
cached under ~/.cache/celeblook/identity/.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import atomic_path
from engine.inversion.encoder import Encoder
from engine.face_id import FaceId
from engine.generator import Generator, to_uint8_rgb
from engine.inversion.corrections.feedback import IDENTITY_FEEDBACK_PATH, reconstruction_embedding
from engine.landmarks import FaceLandmarker
from engine.models import load_manifest, user_cache_dir
from training.data.samples import USED_SLOTS, data_root
from training.fit.identity_correction import cached_features
from training.fit.corrections import SHAPE_SLOTS, SLOTS, fit_parser, save_correction, ship_correction
from training.fit.ridge import fit_reduced_ridge, reduce_rank, ridge_path


def one_pass(enc: Encoder, feats: dict) -> np.ndarray:
    """The one pass on the used slots (N, 16, 512): the cached encoder + landmark prediction plus the identity
    correction of the clean crop's embedding."""
    pred = feats["pred"].copy()
    moved = [SLOTS.index(s) for s in np.flatnonzero(enc.identity.slots)]
    for i in range(0, len(pred), 256):
        pred[i:i + 256, moved] += enc.identity.deltas(feats["x"][i:i + 256])
    return pred


def render_embeddings(gen: Generator, face_id: FaceId, used: np.ndarray, batch: int = 8) -> np.ndarray:
    """The recogniser's embeddings (N, D) of the renders of W+ given on the used slots (N, 16, 512); NaN rows
    where MediaPipe finds no face in the render."""
    out = np.full((len(used), face_id.session.get_outputs()[0].shape[-1]), np.nan, np.float32)
    wplus = np.repeat(gen.w_avg[None, None], 23, axis=1).repeat(batch, axis=0)
    t0 = time.time()
    with FaceLandmarker() as lm:
        for i in range(0, len(used), batch):
            n = min(batch, len(used) - i)
            wplus[:n, USED_SLOTS] = used[i:i + n]
            renders = to_uint8_rgb(gen.synthesize(wplus[:n]))
            for j, rgb in enumerate(renders):
                e = reconstruction_embedding(face_id, lm, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                if e is not None:
                    out[i + j] = e
            if (i // batch) % 100 == 99:
                print(f"renders: {i + n}/{len(used)}, {(i + n) / (time.time() - t0):.1f}/s", flush=True)
    return out


def cached_feedback_features(folders: list[Path], aug: float, threads: int) -> dict:
    """{"x": clean-crop embeddings, "x_recon": the one pass's render's embeddings (NaN: no face), "pred": the one
    pass (used slots), "target": true W+ (used slots), "w_std"}, cached on disk by data and model hashes."""
    feats = cached_features(folders, aug, threads)
    enc = Encoder.load(threads)
    if enc.identity is None:
        raise SystemExit("the shipped encoder has no identity correction: fit it first "
                         "(training.fit.identity_correction)")
    key = "_".join(f.name for f in folders) + f"_{len(feats['x'])}_aug{aug:g}_{enc.one_pass_id[:12]}"
    path = user_cache_dir() / "identity" / f"feedback_{key}.npz"
    if path.is_file():
        with np.load(path) as d:
            return dict(d)
    pred = one_pass(enc, feats)
    gen = Generator.load(threads, resolution=256)
    out = {**feats, "pred": pred, "x_recon": render_embeddings(gen, FaceId.load(threads), pred)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **out)
    return out


def pick_step_scale(feats: dict, keep: np.ndarray, x: np.ndarray, err: np.ndarray, val: int, rank: int, lam: float,
                    scales: list[float], threads: int) -> tuple[float, dict]:
    """The scale of the step that brings the renders of the last `val` samples closest to their inputs by the
    recogniser (mean cosine of unit embeddings), with the map fitted on the other samples; (best, {scale: [cosine,
    latent MSE on the shape slots]})."""
    _, xm, ym, b = next(ridge_path(x[:-val], err[:-val], [lam]))
    proj, coef = reduce_rank(b, rank)
    pred = ym + ((x[-val:] - xm) @ proj) @ coef  # the step in w_std units, flattened
    step = pred.reshape(val, len(SHAPE_SLOTS), -1) * feats["w_std"]
    clean, start = feats["x"][keep][-val:], feats["pred"][keep][-val:]
    cols = [SLOTS.index(s) for s in SHAPE_SLOTS]
    gen, face_id = Generator.load(threads, resolution=256), FaceId.load(threads)
    scores = {}
    for scale in scales:
        moved = start.copy()
        moved[:, cols] += scale * step
        c = float(np.nanmean(np.sum(render_embeddings(gen, face_id, moved) * clean, 1)))
        mse = float(((err[-val:] - scale * pred) ** 2).mean())
        scores[f"{scale:g}"] = [round(c, 4), round(mse, 4)]
        print(f"step x{scale:g}: held-out recogniser cosine {c:.4f}, latent MSE {mse:.4f}", flush=True)
    best = max(scales, key=lambda s: scores[f"{s:g}"][0])
    return best, scores


def fit(folders: list[Path], val: int, rank: int, aug: float, lams: list[float], threads: int,
        scales: list[float]) -> tuple[dict, dict]:
    """(arrays for the npz, meta) of the identity feedback fitted on the cached samples in `folders`."""
    t0 = time.time()
    feats = cached_feedback_features(folders, aug, threads)
    keep = np.isfinite(feats["x_recon"]).all(1)
    cols = [SLOTS.index(s) for s in SHAPE_SLOTS]
    x = (feats["x"] - feats["x_recon"])[keep]
    err = ((feats["target"] - feats["pred"])[keep][:, cols] / feats["w_std"]).reshape(len(x), -1)
    arrays, sel = fit_reduced_ridge(x, err, val, rank, lams, " on the shape slots")
    scale, scores = pick_step_scale(feats, keep, x, err, val, rank, sel["lambda"], scales, threads)
    arrays["coef"] = (arrays["coef"].astype(np.float32) * scale).astype(np.float16)
    arrays["bias"] = arrays["bias"] * scale
    mask = np.zeros(23, bool)
    mask[SHAPE_SLOTS] = True
    enc = Encoder.load(threads)
    meta = {"samples": int(len(x)), "dropped_no_face": int((~keep).sum()), "val": val, "rank": rank,
            "lambda": sel["lambda"], "encoder_aug": aug, "slots": "shape", "render": "256-px preview head",
            "val_latent_mse_one_pass": sel["before"], "val_latent_mse_feedback": sel["after"],
            "lambdas": sel["lambdas"], "step_scale": scale, "val_recogniser_cos": scores,
            "data": [f.name for f in folders], "one_pass_id": enc.one_pass_id,
            "face_id_sha256": load_manifest()["face_id"].sha256, "seconds": round(time.time() - t0)}
    return {**arrays, "w_std": feats["w_std"].astype(np.float32), "slots": mask}, meta


def main(argv: list[str] | None = None) -> None:
    ap = fit_parser(__doc__, "idf_a,idf_b", 256, "1,3,10,30,100", IDENTITY_FEEDBACK_PATH)
    ap.add_argument("--scales", default="0,1,1.25,1.5,1.75,2,2.5",
                    help="step scales tried on the held-out samples (0: no step, for reference)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.threads)
    arrays, meta = fit([data_root() / n for n in args.data.split(",")], args.val, args.rank, args.encoder_aug,
                       [float(v) for v in args.lambdas.split(",")], args.threads,
                       [float(v) for v in args.scales.split(",")])
    save_correction(args.out, arrays, meta)
    ship_correction(
        args.out, IDENTITY_FEEDBACK_PATH, "identity_feedback",
        f"reduced-rank ridge regression (rank {meta['rank']}) from the difference of face-recognition embeddings "
        f"(face_id: input minus the one pass's render) to the one pass's W+ error on the shape slots, fitted on "
        f"{meta['samples']} generated faces (engine/inversion/corrections/feedback.py); for the one pass {meta['one_pass_id']}",
        "for s in a:41 b:42; do python -m training.data.samples --name idf_${s%:*} --samples 8000 --resolution 256 "
        "--seed ${s#*:} --psi-min 0.5; done && python -m training.fit.identity_feedback --data "
        + ",".join(meta["data"]),
        # the one pass it is fitted for holds the identity correction's term fitted on UTKFace photos
        "ours; fitted for a one pass holding a term fitted on UTKFace photos: non-commercial research use only")

if __name__ == "__main__":
    main()
