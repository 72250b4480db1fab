"""Train the age regressor and gender classifier on UTKFace features (training/data/utkface_labels.py).

    python -m training.data.utkface_labels --split heldout
    python -m training.data.utkface_labels --split train --limit 5250
    python -m training.train.age_gender [--train runs/utk_features/train_10000.npz]

Candidates, picked by validation (the last 10 % of the training photos in a seeded shuffle): ridge regression of
age and ridge-logistic gender on the embedding (+ thumbnail), and a small MLP (F -> 256 -> 2; L1 loss on age,
cross-entropy on gender, AdamW, a few CPU minutes). The held-out 1,000 (training/data/utkface_labels.held_out_names)
are scored once, at the end. Writes runs/age_gender/labeller.npz (shipped as float16 by training/export/age_gender.py:
the engine aims still edits with it) and docs/results/age_gender_labellers.json. Trained on UTKFace: non-commercial research use only.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from engine.atomic import write_json_atomic
from training.data.utkface_labels import cache_path
from engine.attributes import AgeGenderHeads
from training.models.age_gender import LABELLER_PATH, feature_vector, save_heads


def load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(path) as d:
        return feature_vector(d["emb"], d["thumb"]), d["age"].astype(np.float32), d["gender"].astype(np.float32)


def linear_heads(x: np.ndarray, age: np.ndarray, gender: np.ndarray, lam: float) -> AgeGenderHeads:
    """Ridge on standardised features for age and for the gender label mapped to a logit-ish target (+-3)."""
    mean, std = x.mean(0), x.std(0) + 1e-3
    z = (x - mean) / std
    y = np.stack([age, 6.0 * gender - 3.0], 1)
    ym = y.mean(0)
    w = np.linalg.solve(z.T @ z + lam * len(z) * np.eye(z.shape[1]), z.T @ (y - ym))
    return AgeGenderHeads(mean.astype(np.float32), std.astype(np.float32), [(w.astype(np.float32), ym.astype(np.float32))])


def mlp_heads(x, age, gender, hidden: int = 256, epochs: int = 60, wd: float = 1e-2, seed: int = 0,
              dropout: float = 0.3) -> AgeGenderHeads:
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    mean, std = x.mean(0), x.std(0) + 1e-3
    xt = torch.from_numpy(((x - mean) / std).astype(np.float32))
    at, gt = torch.from_numpy(age), torch.from_numpy(gender)
    net = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(),
                              torch.nn.Dropout(dropout), torch.nn.Linear(hidden, 2))
    with torch.no_grad():
        net[-1].bias[0] = float(np.median(age))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 128):
            b = perm[i:i + 128]
            out = net(xt[b])
            loss = torch.nn.functional.smooth_l1_loss(out[:, 0], at[b], beta=2.0) / 10 + \
                torch.nn.functional.binary_cross_entropy_with_logits(out[:, 1], gt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    layers = [(net[1].weight.detach().numpy().T.copy(), net[1].bias.detach().numpy().copy()),
              (net[4].weight.detach().numpy().T.copy(), net[4].bias.detach().numpy().copy())]
    return AgeGenderHeads(mean.astype(np.float32), std.astype(np.float32), layers)


def score(heads: AgeGenderHeads, x, age, gender) -> dict:
    pa, pg = heads.predict(x)
    return {"age_mae": round(float(np.mean(np.abs(pa - age))), 2),
            "age_median_ae": round(float(np.median(np.abs(pa - age))), 2),
            "gender_accuracy": round(float(np.mean((pg > 0.5) == (gender > 0.5))), 4), "n": int(len(x))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, default=cache_path("train", 5250))
    ap.add_argument("--heldout", type=Path, default=cache_path("heldout", None))
    ap.add_argument("--out", type=Path, default=LABELLER_PATH)
    ap.add_argument("--lams", type=float, nargs="+", default=[0.01, 0.03, 0.1], help="ridge strengths to try")
    ap.add_argument("--epochs", type=int, default=60, help="MLP epochs")
    ap.add_argument("--report", type=Path, default=Path("docs/results/age_gender_labellers.json"))
    args = ap.parse_args(argv)
    t0 = time.time()
    x, age, gender = load(args.train)
    perm = np.random.default_rng(0).permutation(len(x))
    n_val = len(x) // 10
    va, tr = perm[:n_val], perm[n_val:]
    emb_only = slice(0, 1024)
    candidates = {}
    for lam in args.lams:
        candidates[f"linear emb lam={lam}"] = (lambda lam=lam, cols=emb_only: linear_heads(x[tr][:, cols], age[tr], gender[tr], lam), emb_only)
        candidates[f"linear emb+thumb lam={lam}"] = (lambda lam=lam: linear_heads(x[tr], age[tr], gender[tr], lam), slice(None))
    candidates["mlp emb"] = (lambda: mlp_heads(x[tr][:, emb_only], age[tr], gender[tr], epochs=args.epochs), emb_only)
    candidates["mlp emb+thumb"] = (lambda: mlp_heads(x[tr], age[tr], gender[tr], epochs=args.epochs), slice(None))
    trials = {}
    for name, (fit, cols) in candidates.items():
        heads = fit()
        trials[name] = score(heads, x[va][:, cols], age[va], gender[va])
        print(name, trials[name], f"{time.time() - t0:.0f} s", flush=True)
    best = min(trials, key=lambda k: trials[k]["age_mae"] - 20 * trials[k]["gender_accuracy"])
    fit, cols = candidates[best]
    heads = fit()  # the same recipe, seeded: refit on the training part only (validation stays for the record)
    hx, hage, hgender = load(args.heldout)
    held = score(heads, hx[:, cols], hage, hgender)
    save_heads(heads, args.out, chosen=best, held_out=held)
    report = {"chosen": best, "validation": trials, "held_out": held, "train_photos": int(len(tr)),
              "validation_photos": int(n_val), "held_out_rule": "the 1,000 UTKFace names with the lowest sha256(name); "
              "photos without a MediaPipe face dropped", "minutes": round((time.time() - t0) / 60, 1),
              "machine": "2-core Intel Xeon, no GPU, heavily shared", "date": "2026-12-06",
              "licence": "trained on UTKFace: non-commercial research use only",
              "command": "python -m training.train.age_gender " + " ".join(argv or [])}
    write_json_atomic(args.report, report)
    print(f"chosen {best}; held-out {held}; wrote {args.out} and {args.report}")


if __name__ == "__main__":
    main()
