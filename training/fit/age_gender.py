"""Fit age and gender directions in W, labelled by the UTKFace-trained labellers, and add them to directions.npz.

    python -m training.fit.age_gender [--samples 300] [--calib-faces 10]

The recipe of training/fit/directions.py with other labellers (training/models/age_gender.py: age in years and
P(female) from the recogniser's embedding of the face's recognition crop):
1. Label: sample z -> w (psi ~ U(0.5, 1)), render at 256 px (the distilled preview head: labels are taken on a
   224-px recognition crop anyway), label age and P(female).
2. Fit: ridge of age, and of the gender logit, on w - w_avg.
3. Decouple: each loses its components along the shipped yaw, pitch, smile, jaw_open, eye_blink and brow_raise
   (Gram-Schmidt) and along the other's raw direction (age keeps no gender, gender no age).
4. Choose slots: the slot set with the largest attribute change per unit of dlib identity change (>= 40 % of the
   all-slots change), as for the other directions.
5. Calibrate: on held-out faces at +-s/2, +-s latent units (s set, from the fit and the slot trial, to move about
   20 years / 0.8 of P(female); at most 4x the fit's guess):
   slope through the origin in years (age) and in P(female) (gender, 0..1: +1 = male to female; measured on
   the faces with room to move: male ones stepped toward female, female ones toward male).
Writes the two directions into resources/models/directions.npz (keeping the others; manifest entry with the
UTKFace licence) and docs/results/age_gender_directions.json. Labellers trained on UTKFace: non-commercial
research use only.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_json_atomic
from engine.edits import DIRECTIONS_PATH, DirectionSet, slot_weights
from engine.generator import Generator
from engine.models import sha256_file
from training.export.manifest import update_manifest
from training.fit.directions import SLOT_CHOICES, masked, sample_ws, slope_fit

NAMES = ("age", "gender")
UNITS = {"age": "years", "gender": "P(female)"}
TARGET = {"age": 20.0, "gender": 0.8}  # the largest calibration step aims at about this change
PRIOR = ("yaw", "pitch", "smile", "jaw_open", "eye_blink", "brow_raise")
LICENCE_NOTE = "age and gender: labellers trained on UTKFace, non-commercial research use only"


class Measure:
    """Render a latent at 256 px and measure age, P(female) (the labellers) and the dlib descriptor."""

    def __init__(self, gen: Generator, dlib: bool = True):
        from training.models.age_gender import AgeGenderLabeller

        self.gen, self.labeller = gen, AgeGenderLabeller()
        self.ident = None
        if dlib:
            from training.evaluate.dlib_judge import DlibIdentity
            self.ident = DlibIdentity()

    def __call__(self, latent: np.ndarray) -> dict | None:
        bgr = cv2.cvtColor(self.gen.render(latent), cv2.COLOR_RGB2BGR)
        if bgr.shape[0] != 256:
            bgr = cv2.resize(bgr, (256, 256), interpolation=cv2.INTER_AREA)
        lab = self.labeller.label(bgr)
        if lab is None:
            return None
        if self.ident is not None:
            lab["desc"] = self.ident.descriptor(bgr)[0]
        return lab


def ridge(x: np.ndarray, y: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """Ridge coefficients (not normalised) of y on centred x."""
    xc, yc = x - x.mean(0), y - y.mean()
    return np.linalg.solve(xc.T @ xc + lam * len(x) * np.eye(x.shape[1]), xc.T @ yc)


def orthogonalise(v: np.ndarray, against: list[np.ndarray]) -> np.ndarray:
    """v without its components along `against` (orthonormalised first), unit length."""
    basis = []
    for a in against:
        a = a.astype(np.float64).copy()
        for b in basis:
            a -= (a @ b) * b
        basis.append(a / np.linalg.norm(a))
    v = v.astype(np.float64).copy()
    for b in basis:
        v -= (v @ b) * b
    return (v / np.linalg.norm(v)).astype(np.float32)


def select_slots(measure: Measure, ws: np.ndarray, direction: np.ndarray, name: str, step: float):
    base = [measure(w) for w in ws]
    rows = []
    for choice, groups in SLOT_CHOICES.items():
        offset = masked(direction, slot_weights(**{g: 1.0 for g in groups}))
        edited = [measure(w[None, :] + step * offset) for w in ws]
        pairs = [(b, e) for b, e in zip(base, edited) if b is not None and e is not None]
        change = float(np.mean([e[name] - b[name] for b, e in pairs]))
        dist = float(np.mean([np.linalg.norm(e["desc"] - b["desc"]) for b, e in pairs]))
        rows.append({"slots": choice, "change": round(change, 4), "id_dist": round(dist, 4),
                     "change_per_id": round(abs(change) / max(dist, 0.02), 3)})
        print(f"  {name} slots {choice}: change {change:+.3f}, id {dist:.3f}", flush=True)
    full = rows[0]["change"]
    ok = [r for r in rows if abs(r["change"]) >= 0.4 * abs(full) and np.sign(r["change"]) == np.sign(full)]
    return max(ok, key=lambda r: r["change_per_id"])["slots"], rows


def calibrate(measure: Measure, latents: np.ndarray, offset: np.ndarray, name: str, steps) -> dict:
    """Attribute change per latent step of `offset` (23, 512), through the origin, on W+ `latents` (N, 23, 512)."""
    base = [measure(w) for w in latents]
    xs, ys = [], []
    for s in steps:
        for b, w in zip(base, latents):
            if b is None or (name == "gender" and (b[name] >= 0.5) == (s > 0)):
                continue  # gender: male faces step toward female, female ones toward male (P(female) saturates)
            e = measure(w[None] + s * offset)
            if e is not None:
                xs.append(s)
                ys.append(e[name] - b[name])
    return slope_fit(xs, ys, steps)


def write_directions(new: dict[str, np.ndarray], masks: dict[str, np.ndarray], meta_new: dict,
                     path: Path = DIRECTIONS_PATH) -> None:
    """Add (or replace) directions in the .npz, keeping the others, and update its manifest entry."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != "meta"}
        meta = json.loads(str(data["meta"]))
    meta.update(meta_new)
    arrays.update(new)
    arrays.update({f"{k}_slots": m for k, m in masks.items()})
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, meta=json.dumps(meta), **arrays)
    tmp.replace(path)
    if path == DIRECTIONS_PATH:
        update_manifest({"directions": {
            "file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
            "source": "pose/expression directions in W fitted on 800 generated faces labelled by MediaPipe, slot sets "
                      "chosen by identity cost; age and gender directions fitted on generated faces labelled by an "
                      "age regressor and gender classifier trained on UTKFace (training/train/age_gender.py)",
            "licence": f"Apache-2.0 (ours); {LICENCE_NOTE}",
            "regenerate": "python -m training.fit.directions && python -m training.fit.age_gender", "shipped": True}})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--calib-faces", type=int, default=10)
    ap.add_argument("--select-faces", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=DIRECTIONS_PATH)
    ap.add_argument("--report", type=Path, default=Path("docs/results/age_gender_directions.json"))
    args = ap.parse_args(argv)
    t0 = time.time()
    gen = Generator.load(args.threads, resolution=256)
    measure = Measure(gen)
    ws = sample_ws(gen, args.samples, args.seed + 10)
    labels = []
    for i, w in enumerate(ws):
        labels.append(measure(w))
        if (i + 1) % 50 == 0:
            print(f"labelled {i + 1}/{len(ws)} ({time.time() - t0:.0f} s)", flush=True)
    keep = [i for i, lab in enumerate(labels) if lab is not None]
    x = ws[keep] - gen.w_avg
    age = np.array([labels[i]["age"] for i in keep])
    female = np.clip(np.array([labels[i]["gender"] for i in keep]), 0.02, 0.98)
    raw = {"age": ridge(x, age), "gender": ridge(x, np.log(female / (1 - female)))}
    prior = DirectionSet.load(args.out)
    against = [prior.directions[n].vector for n in PRIOR]
    dirs = {"age": orthogonalise(raw["age"], against + [raw["gender"]]),
            "gender": orthogonalise(raw["gender"], against + [raw["age"]])}
    stats = {"age": {"mean": float(age.mean()), "std": float(age.std()), "min": float(age.min()), "max": float(age.max())},
             "gender": {"mean": float(female.mean()), "share_female": float(np.mean(female > 0.5))}}
    print(f"labels: {stats}", flush=True)
    # a first step size from the fit: the age regression's slope along the decoupled direction; for gender,
    # P(female) moves about 0.25 per unit of logit near 0.5
    est = {"age": abs(float(raw["age"] @ dirs["age"])), "gender": 0.25 * abs(float(raw["gender"] @ dirs["gender"]))}
    select_ws = sample_ws(gen, args.select_faces, args.seed + 12)
    calib = np.repeat(sample_ws(gen, args.calib_faces, args.seed + 11)[:, None, :], 23, axis=1)
    meta, masks = {}, {}
    for name in NAMES:
        step = TARGET[name] / est[name]
        choice, trials = select_slots(measure, select_ws, dirs[name], name, step * 0.6)
        masks[name] = slot_weights(**{g: 1.0 for g in SLOT_CHOICES[choice]})
        trial = next(r for r in trials if r["slots"] == choice)  # rescale the step to the measured response
        step = float(np.clip(TARGET[name] / max(abs(trial["change"]) / (0.6 * step), 1e-6), step, 4 * step))
        c = calibrate(measure, calib, masked(dirs[name], masks[name]), name, (-step, -step / 2, step / 2, step))
        if c["units_per_step"] < 0:  # point the direction toward older / more female
            dirs[name], c["units_per_step"] = -dirs[name], -c["units_per_step"]
        meta[name] = {"unit": UNITS[name], **c, "slots": choice, "slot_trials": trials, "step": step,
                      "cos_to_raw_fit": float(dirs[name] @ raw[name] / np.linalg.norm(raw[name])),
                      "fitted_on": len(keep), "calibrated_on": "generated faces", "licence": LICENCE_NOTE}
        print(f"{name}: slots {choice}; {c['units_per_step']:.3f} {UNITS[name]} per latent unit, up to "
              f"{c['max_units']:.2f}", flush=True)
    write_directions(dirs, masks, meta, args.out)
    report = {"samples": args.samples, "faces_found": len(keep), "label_stats": stats, "directions": meta,
              "cos_age_gender": float(dirs["age"] @ dirs["gender"]), "minutes": round((time.time() - t0) / 60, 1),
              "machine": "2-core Intel Xeon, no GPU, heavily shared", "date": "2026-12-06",
              "command": "python -m training.fit.age_gender " + " ".join(argv or [])}
    write_json_atomic(args.report, report)
    print(f"wrote {args.out} and {args.report} in {report['minutes']} min")


if __name__ == "__main__":
    main()
