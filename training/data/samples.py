"""Data-free training samples for the inversion encoder: z -> w -> W+ -> render -> aligned crop.

Recipe (one sample, `SampleRecipe`):
  * z ~ N(0, I), w = mapping(z), truncated with psi ~ U(psi_min, psi_max) (a mix of truncation levels);
  * W+ near W: with probability `p_perturb` every slot gets its own small perturbation
    sigma * w_std * N(0, I) (sigma ~ U(0, sigma_max); w_std = per-dimension std of mapped W at psi 1),
    with probability `p_mix` style mixing (slots >= a random crossover slot take a second w);
  * render the 1024-px face (engine Generator = onnxruntime, the fastest path measured here) and
    cut the MediaPipe FFHQ-style aligned crop (engine.align), i.e. exactly what a real photo goes through;
  * keep the crop (the encoder's input before augmentation), the render downsampled to 256 px (target of the
    image loss, in the generator's own framing) and the W+ target.

Samples are written as shards (`shard_00000.npz`: crop (N,256,256,3) uint8 RGB, target (N,256,256,3) uint8 RGB,
wplus (N,23,512) float32, psi (N,), aligned (N,) bool: False when MediaPipe found no face and the crop is the
plain resized render, landmarks (N,478,3) float32: the render's MediaPipe points in crop units, as
engine.align.crop_points gives them for a photo; NaN without a face; absent in caches built before it) under ~/.cache/celeblook/encoder_data/<name>/ with `stats.npz` (w_avg, w_std), never in
the repository. Building resumes: existing shards are kept. Several processes can build disjoint shard ranges
(`--first-shard`).

    python -m training.data.samples --name cpu3k --samples 2000 --threads 2
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.latents import N_SLOTS, STYLE_DIM
from engine.models import user_cache_dir

CROP = 256
SHARD_SIZE = 100
# slots that drive the released generator (README: 0, 1, 2, 4, 5, 7, 8, ..., 19, 20, 21)
# slots 0, 3i+1, 3i+2 (i = 0..6) and 21 (the image head); 3, 6, ..., 18 and 22 are unused
N_LANDMARKS = 478  # MediaPipe FaceLandmarker points per face
USED_SLOTS = tuple(sorted({0, 21} | {s for s in range(1, 21) if s % 3}))


@dataclass
class SampleRecipe:
    psi_min: float = 0.3
    psi_max: float = 1.0
    p_perturb: float = 0.5
    sigma_max: float = 0.15
    p_mix: float = 0.15


def data_root() -> Path:
    return user_cache_dir() / "encoder_data"


def w_stats(mapping_fn, n: int = 8192, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """(w_avg_mapped, w_std): mean and per-dimension std of mapped standard-normal z (psi 1)."""
    rng = np.random.default_rng(seed)
    ws = np.concatenate([mapping_fn(rng.standard_normal((512, STYLE_DIM)).astype(np.float32))
                         for _ in range(n // 512)])
    return ws.mean(0).astype(np.float32), ws.std(0).astype(np.float32)


def sample_wplus(rng: np.random.Generator, mapping_fn, w_avg: np.ndarray, w_std: np.ndarray,
                 n: int, recipe: SampleRecipe) -> tuple[np.ndarray, np.ndarray]:
    """n W+ codes (n, 23, 512) following `recipe`, and their psi (n,)."""
    z = rng.standard_normal((2 * n, STYLE_DIM)).astype(np.float32)
    w = mapping_fn(z)
    psi = rng.uniform(recipe.psi_min, recipe.psi_max, n).astype(np.float32)
    w1 = w_avg + psi[:, None] * (w[:n] - w_avg)
    w2 = w_avg + psi[:, None] * (w[n:] - w_avg)
    wplus = np.repeat(w1[:, None], N_SLOTS, axis=1)
    for i in range(n):
        if rng.random() < recipe.p_mix:
            cross = int(rng.integers(4, 20))
            wplus[i, cross:] = w2[i]
        if rng.random() < recipe.p_perturb:
            sigma = rng.uniform(0.0, recipe.sigma_max)
            wplus[i] += sigma * w_std * rng.standard_normal((N_SLOTS, STYLE_DIM)).astype(np.float32)
    return wplus.astype(np.float32), psi


def aligned_crop(landmarker, image_rgb: np.ndarray, size: int = CROP) -> tuple[np.ndarray, bool, np.ndarray]:
    """MediaPipe FFHQ-style crop of a rendered face (RGB in, RGB out), whether a face was found (else the crop is
    the plain resize) and its landmarks in crop units (engine.align.crop_points; NaN when no face was found)."""
    from engine.align import align_face, crop_points

    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    faces = landmarker.detect(bgr)
    if not faces:
        return (cv2.resize(image_rgb, (size, size), interpolation=cv2.INTER_AREA), False,
                np.full((N_LANDMARKS, 3), np.nan, np.float32))
    crop = align_face(bgr, faces[0], size)
    return cv2.cvtColor(crop.image, cv2.COLOR_BGR2RGB), True, crop_points(faces[0], crop)


def build(name: str, samples: int, threads: int = 2, first_shard: int = 0, seed: int = 0,
          recipe: SampleRecipe = SampleRecipe(), shard_size: int = SHARD_SIZE, root: Path | None = None,
          resolution: int = 1024) -> Path:
    """Render `samples` samples into shards first_shard.. of data_root()/name (existing shards are skipped).
    `resolution` 256 renders with the distilled 256-px preview head (≈ 4x faster, 25 dB from the 1024 output):
    the CPU path to many samples; 1024 is the full generator."""
    from engine.generator import Generator, to_uint8_rgb
    from engine.landmarks import FaceLandmarker

    out = (root or data_root()) / name
    out.mkdir(parents=True, exist_ok=True)
    gen = Generator.load(threads=threads, resolution=resolution)
    stats = out / "stats.npz"
    if not stats.is_file():
        _, w_std = w_stats(gen.map)
        np.savez(stats, w_avg=gen.w_avg, w_std=w_std, recipe=np.array(str(asdict(recipe))))
    w_std = np.load(stats)["w_std"]
    n_shards = -(-samples // shard_size)
    t0, done = time.time(), 0
    with FaceLandmarker() as landmarker:
        for k in range(first_shard, first_shard + n_shards):
            path = out / f"shard_{k:05d}.npz"
            if path.is_file():
                continue
            rng = np.random.default_rng([seed, k])
            wplus, psi = sample_wplus(rng, gen.map, gen.w_avg, w_std, shard_size, recipe)
            crops, targets, aligned, points = [], [], [], []
            for i in range(shard_size):
                img = to_uint8_rgb(gen.synthesize(wplus[i:i + 1]))[0]
                crop, ok, pts = aligned_crop(landmarker, img)
                crops.append(crop)
                aligned.append(ok)
                points.append(pts)
                targets.append(cv2.resize(img, (CROP, CROP), interpolation=cv2.INTER_AREA))
                done += 1
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, crop=np.stack(crops), target=np.stack(targets), wplus=wplus, psi=psi,
                     aligned=np.array(aligned), landmarks=np.stack(points), resolution=np.int32(resolution))
            tmp.replace(path)
            rate = done / (time.time() - t0)
            print(f"{path.name}: {done} samples, {rate:.2f} samples/s, aligned {np.mean(aligned):.2f}", flush=True)
    return out


def load_shards(folders: Path | list[Path], limit: int | None = None,
                keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """All shards of one or more cache folders (crop, target, wplus, psi, aligned, and landmarks where the first
    shard has them; only `keys` of those when given; at most `limit` samples from each folder) in one array per
    key, and the first folder's stats. The arrays are allocated once and filled shard by shard, so peak memory is
    the data itself (~0.44 MB per sample with every key), not a multiple of it."""
    folders = [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]
    plan = []  # (shard path, samples to take)
    for folder in folders:
        paths = sorted(folder.glob("shard_*.npz"))
        if not paths:
            raise FileNotFoundError(f"no shards in {folder}: build them with python -m training.data.samples")
        taken = 0
        for p in paths:
            with np.load(p) as d:
                n = len(d["psi"]) if limit is None else min(len(d["psi"]), limit - taken)
            plan.append((p, n))
            taken += n
            if limit is not None and taken >= limit:
                break
    with np.load(plan[0][0]) as d:
        present = ("crop", "target", "wplus", "psi", "aligned") + (("landmarks",) if "landmarks" in d.files else ())
        keys = present if keys is None else tuple(k for k in keys if k in present)
        total = sum(n for _, n in plan)
        data = {k: np.empty((total,) + d[k].shape[1:], d[k].dtype) for k in keys}
    at = 0
    for p, n in plan:
        with np.load(p) as d:
            for k in keys:
                data[k][at:at + n] = d[k][:n]
        at += n
    with np.load(folders[0] / "stats.npz") as s:
        data["w_avg"], data["w_std"] = s["w_avg"], s["w_std"]
    return data


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="default", help="cache subfolder under ~/.cache/celeblook/encoder_data")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    ap.add_argument("--first-shard", type=int, default=0)
    ap.add_argument("--shard-size", type=int, default=SHARD_SIZE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--psi-min", type=float, default=SampleRecipe.psi_min, help="truncation range, low end")
    ap.add_argument("--psi-max", type=float, default=SampleRecipe.psi_max, help="truncation range, high end")
    ap.add_argument("--resolution", type=int, choices=[1024, 256], default=1024,
                    help="render size: 1024 (full generator) or 256 (distilled preview head, the fast CPU path)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    build(args.name, args.samples, args.threads, args.first_shard, args.seed, shard_size=args.shard_size,
          resolution=args.resolution, recipe=SampleRecipe(psi_min=args.psi_min, psi_max=args.psi_max))


if __name__ == "__main__":
    main()
