"""Probe: does a face-recognition descriptor trained on real faces carry identity the inversion encoder misses?

    python -m training.evaluate.probe_identity_feature --json docs/results/identity_probe.json

On cached generated samples (training.data.samples shards) it computes dlib's 128-d face descriptor of each
aligned crop (a fixed central box: the crops are aligned) and the shipped encoder's W+, fits a ridge regression
from the descriptor to the encoder's error (target W+ - predicted, the 16 used slots, w_std units), and then
inverts every real face and held-out generated face twice, with and without that linear correction (and shows
the average face, w_avg, as the scale of both measures). Reported
per set: dlib identity distance (as in training.evaluate.encoder) and, because dlib also supplies the
correction's input, an identity measure independent of it: the face-shape error, MediaPipe's 468 3-D landmarks
of input and reconstruction after a similarity (Procrustes) fit, RMS over the input shape's RMS radius.

A research probe, not a shipped path: the engine has no dlib. Descriptors and encoder outputs are cached
(atomically) under ~/.cache/celeblook/probe/, ≈ 80 ms per sample on 2 cores.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import atomic_path, write_json_atomic
from engine.inversion.encoder import Encoder
from engine.generator import Generator
from engine.landmarks import FaceLandmarker
from engine.latents import to_wplus
from training.data.samples import USED_SLOTS, data_root, load_shards
from training.data.face_sets import PHOTOS, VIDEOS
from training.evaluate.dlib_judge import DlibIdentity
from training.evaluate.encoder import collect_inputs, render_aligned

SLOTS = list(USED_SLOTS)


def central_descriptor(ident: DlibIdentity, bgr: np.ndarray) -> np.ndarray:
    """dlib's 128-d descriptor of an aligned crop, its face box fixed to the crop's centre (no detector)."""
    rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    rect = ident.central_box(rgb.shape[0])
    return np.array(ident.net.compute_face_descriptor(rgb, ident.shape(rgb, rect)), np.float32)


def fit_correction(x: np.ndarray, r: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression r ≈ [x - mean, 1] @ B (features (N, F), targets (N, T)); returns (mean, B (F + 1, T))."""
    mean = x.mean(0)
    a = np.c_[x - mean, np.ones(len(x))]
    b = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ r)
    return mean, b


def apply_correction(x: np.ndarray, mean: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.c_[np.atleast_2d(x) - mean, np.ones(len(np.atleast_2d(x)))] @ b


def shape_error(face_a, face_b) -> float:
    """Face-shape distance of two MediaPipe faces: 468 3-D landmarks, similarity-aligned (Procrustes), RMS
    residual over the first shape's RMS radius (0: same shape up to pose and scale)."""
    a, b = (f.points[:468].astype(np.float64) for f in (face_a, face_b))
    a, b = a - a.mean(0), b - b.mean(0)
    a, b = a / np.sqrt((a ** 2).sum(1).mean()), b / np.sqrt((b ** 2).sum(1).mean())
    u, s, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1, 1, d]) @ vt
    scale = (s * [1, 1, d]).sum() / (b ** 2).sum()
    return float(np.sqrt(((b @ rot * scale - a) ** 2).sum(1).mean()))


def training_features(folders: list[Path], samples: int, ident: DlibIdentity, enc: Encoder) -> dict:
    """Descriptors and encoder W+ of the first `samples` cached samples (cached on disk)."""
    key = "_".join(f.name for f in folders) + f"_{samples}"
    path = data_root().parent / "probe" / f"dlib_{key}.npz"
    if path.exists():
        with np.load(path) as d:
            return dict(d)
    data = load_shards(folders, limit=samples)
    n = len(data["psi"])
    x, pred = np.zeros((n, 128), np.float32), np.zeros((n, len(SLOTS), 512), np.float32)
    t0 = time.time()
    for i in range(n):
        bgr = cv2.cvtColor(data["crop"][i], cv2.COLOR_RGB2BGR)
        x[i], pred[i] = central_descriptor(ident, bgr), enc.invert(bgr)[0, SLOTS]
        if i % 1000 == 999:
            print(f"{i + 1}/{n} samples, {(i + 1) / (time.time() - t0):.1f}/s", flush=True)
    out = {"x": x, "pred": pred, "target": data["wplus"][:, SLOTS], "w_std": data["w_std"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="prev6k,prev6k_b", help="cache folders under the encoder-data root")
    ap.add_argument("--samples", type=int, default=12000)
    ap.add_argument("--val", type=int, default=500, help="last N samples held out to report the latent error")
    ap.add_argument("--lam", type=float, default=1.0, help="ridge strength")
    ap.add_argument("--generated", type=int, default=8)
    ap.add_argument("--video-frames", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    t0 = time.time()
    ident, enc, gen = DlibIdentity(), Encoder.load(args.threads), Generator.load(args.threads)
    feats = training_features([data_root() / n for n in args.data.split(",")], args.samples, ident, enc)
    w_std = feats["w_std"]  # (512,)
    err = ((feats["target"] - feats["pred"]) / w_std).reshape(len(feats["x"]), -1)
    nv = args.val
    mean, b = fit_correction(feats["x"][:-nv], err[:-nv], args.lam)
    held = err[-nv:]
    val = {"latent_mse_encoder": float((held ** 2).mean()),
           "latent_mse_corrected": float(((held - apply_correction(feats["x"][-nv:], mean, b)) ** 2).mean())}
    mean, b = fit_correction(feats["x"], err, args.lam)
    print(f"held-out latent MSE (these samples were in the encoder's training set): "
          f"{val['latent_mse_encoder']:.4f} -> {val['latent_mse_corrected']:.4f}")
    rows = []
    with FaceLandmarker() as lm:
        for it in collect_inputs(lm, gen, PHOTOS, args.generated, VIDEOS, args.video_frames):
            w = enc.invert(it["crop"])
            fixed = w.copy()
            fixed[0, SLOTS] += apply_correction(central_descriptor(ident, it["crop"]), mean, b).reshape(-1, 512) * w_std
            in_face = lm.detect(it["crop"])
            for method, wplus in (("w_avg", to_wplus(gen.w_avg)), ("encoder", w), ("encoder + descriptor", fixed)):
                recon, _ = render_aligned(gen, lm, wplus)
                out_face = lm.detect(recon)
                rows.append({"set": it["set"], "name": it["name"], "method": method,
                             "id_dist": ident.distance(it["crop"], recon)[0],
                             "shape_err": shape_error(in_face[0], out_face[0]) if in_face and out_face else None})
            print(f"{it['set']:9s} {it['name']:22s} " + "  ".join(
                f"{r['method']}: id {r['id_dist']:.3f}" for r in rows[-3:]), flush=True)
    summary = []
    for s in ("photos", "video", "generated"):
        for method in ("w_avg", "encoder", "encoder + descriptor"):
            rs = [r for r in rows if r["set"] == s and r["method"] == method]
            d = np.array([r["id_dist"] for r in rs])
            shapes = [r["shape_err"] for r in rs if r["shape_err"] is not None]
            summary.append({"set": s, "method": method, "n": len(rs), "id_dist": round(float(d.mean()), 3),
                            "id_share_lt_0.6": round(float(np.mean(d < 0.6)), 2),
                            "shape_err": round(float(np.mean(shapes)), 4), "shape_n": len(shapes)})
    print("| set | method | n | dlib distance | share < 0.6 | face-shape error |\n|---|---|---|---|---|---|")
    for r in summary:
        print(f"| {r['set']} | {r['method']} | {r['n']} | {r['id_dist']} | {r['id_share_lt_0.6']} | {r['shape_err']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.json, {"validation": val, "summary": summary, "rows": rows, "samples": args.samples,
                                      "lam": args.lam, "seconds": round(time.time() - t0)}, indent=1)


if __name__ == "__main__":
    main()
