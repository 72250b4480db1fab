"""Ridge regression for the linear corrections: one eigendecomposition for a whole lambda path, the pick of lambda
on held-out samples, and the cut to low rank that keeps the shipped maps small."""
from __future__ import annotations

import numpy as np


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
