"""What the linear-correction fits (landmark, identity, identity feedback) share: the slots they move, the
encoder's view of the cached crops, their command line, and how a fitted correction is written and shipped."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from engine.atomic import atomic_path
from engine.inversion.encoder import Encoder
from engine.models import sha256_file
from training.data.augment import augment
from training.data.samples import USED_SLOTS
from training.export.manifest import update_manifest

SLOTS = list(USED_SLOTS)
# the slots the correction moves: coarse, middle and fine (4-128 px), not the colour slots (256 px to the RGB
# head, 16 17 19 20 21: skin, hair and light, which the landmarks do not see; docs/EDITS.md)
SHAPE_SLOTS = [s for s in USED_SLOTS if s < 16]


def encoder_predictions(enc: Encoder, crops_rgb: np.ndarray, aug: float, seed: int = 0,
                        batch: int = 32) -> np.ndarray:
    """The encoder's W+ (N, 16, 512) on the used slots for uint8 RGB crops, augmented at strength `aug`."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(crops_rgb), len(SLOTS), 512), np.float32)
    t0 = time.time()
    for i in range(0, len(crops_rgb), batch):
        x = augment(crops_rgb[i:i + batch], enc.input_size, rng, aug, 0.0).numpy()
        out[i:i + batch] = enc.session.run(None, {"image": x})[0][:, SLOTS]
        if (i // batch) % 50 == 49:
            print(f"encoder: {i + batch}/{len(crops_rgb)}, {(i + batch) / (time.time() - t0):.0f}/s", flush=True)
    return out


def save_correction(path: Path, arrays: dict, meta: dict) -> None:
    """Write a correction's arrays and its meta (JSON) as one npz, atomically."""
    print(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def ship_correction(path: Path, shipped: Path, name: str, source: str, regenerate: str,
                    licence: str = "Apache-2.0 (ours)") -> None:
    """Record a correction just written to `path` in the model manifest as `name`, when `path` is its `shipped`
    location (a development fit written elsewhere is not recorded)."""
    if path != shipped:
        return
    update_manifest({name: {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                            "source": source, "licence": licence, "shipped": True,
                            "regenerate": regenerate}})


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
