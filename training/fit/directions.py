"""Fit head-pose and expression directions in W (InterFaceGAN-style) and calibrate them in real units.

    python -m training.fit.directions [--samples 800] [--calib-faces 12]
    python -m training.fit.directions --from resources/models/directions.npz   # redo steps 4-5 only

1. Label: sample z -> w (psi uniform in [0.5, 1.0]), render with the shipped ONNX generator, label each face
   with MediaPipe (yaw/pitch/roll in degrees, blendshape scores; training/data/face_labels.py).
2. Fit: ridge regression of each attribute on w - w_avg; the direction is the unit coefficient vector.
3. Decouple: Gram-Schmidt in order yaw, pitch, smile, jaw_open, eye_blink, brow_raise, so each
   expression direction has the pose directions projected out, and each later one the earlier ones.
4. Choose slots: apply each direction to one of several slot sets (coarse, coarse+middle, ..., all) and keep
   the set with the largest attribute change per unit of identity change (dlib descriptor distance), among
   sets reaching >= 40 % of the all-slots change: layer-wise edits keep identity.
5. Calibrate: on held-out faces, step along each (slot-masked) direction by +-s latent units, measure the
   change with MediaPipe and fit units-per-step through the origin; `max_units` is the change reached at
   the largest step.
Writes resources/models/directions.npz (per attribute: a (512,) vector and a (23,) slot mask, plus JSON meta;
manifest entry) and a JSON report.
Runs on the CPU (the generator is onnxruntime); ~0.4 s per rendered face on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_json_atomic
from engine.edits import DIRECTIONS_PATH, slot_weights
from engine.generator import Generator
from engine.models import sha256_file
from training.export.manifest import update_manifest
from training.data.face_labels import ATTRIBUTES, POSE, FaceLabeler

# Roll is labelled but gets no direction: FFHQ alignment removed it from the training data (a fit on
# 100 faces moved roll < 1 degree), and a crop rotation does it exactly.
EDITS = tuple(a for a in ATTRIBUTES if a != "roll")

UNITS = {a: ("degrees" if a in POSE else "blendshape score") for a in ATTRIBUTES}
LABEL_SIZE = 384  # MediaPipe sees a downscaled render; labels are resolution-independent


def render_labels(gen: Generator, labeler: FaceLabeler, latents: np.ndarray) -> list[dict | None]:
    """Render each latent and label the face (None when MediaPipe finds none)."""
    out = []
    for latent in latents:
        rgb = cv2.resize(gen.render(latent), (LABEL_SIZE, LABEL_SIZE), interpolation=cv2.INTER_AREA)
        out.append(labeler.label(rgb))
    return out


def sample_ws(gen: Generator, n: int, seed: int) -> np.ndarray:
    """n truncated W (n, 512) with psi ~ U(0.5, 1.0)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 512)).astype(np.float32)
    psi = rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
    return gen.w_avg + psi * (gen.map(z) - gen.w_avg)


def fit_direction(x: np.ndarray, y: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Unit vector of the ridge-regression coefficients of y on centred x."""
    xc, yc = x - x.mean(0), y - y.mean()
    coef = np.linalg.solve(xc.T @ xc + ridge * len(x) * np.eye(x.shape[1]), xc.T @ yc)
    return coef / np.linalg.norm(coef)


def decouple(directions: dict[str, np.ndarray], order: tuple[str, ...] = EDITS) -> dict[str, np.ndarray]:
    """Gram-Schmidt in `order`: each direction loses its components along the earlier ones."""
    basis, out = [], {}
    for name in order:
        v = directions[name].astype(np.float64).copy()
        for b in basis:
            v -= (v @ b) * b
        v /= np.linalg.norm(v)
        basis.append(v)
        out[name] = v.astype(np.float32)
    return out


def masked(direction: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """(23, 512) W+ offset: the direction on the slots with weight > 0."""
    return slots[:, None] * direction[None, :]


def calibrate(gen: Generator, labeler: FaceLabeler, ws: np.ndarray, offset: np.ndarray, name: str,
              steps: tuple[float, ...]) -> dict:
    """Fit attribute change per latent step of `offset` (23, 512) through the origin on faces `ws` (N, 512)."""
    base = render_labels(gen, labeler, ws)
    xs, ys = [], []
    for s in steps:
        edited = render_labels(gen, labeler, ws[:, None, :] + s * offset)
        for b, e in zip(base, edited):
            if b is not None and e is not None:
                xs.append(s)
                ys.append(e[name] - b[name])
    return slope_fit(xs, ys, steps)


def slope_fit(xs: list[float], ys: list[float], steps: tuple[float, ...]) -> dict:
    """Attribute change `ys` per latent step `xs`, through the origin; max_units: mean |change| at the largest step."""
    xs, ys = np.array(xs), np.array(ys)
    slope = float(xs @ ys / (xs @ xs))
    top = np.abs(xs) == max(abs(s) for s in steps)
    return {"units_per_step": slope, "max_units": float(np.mean(np.abs(ys[top]))),
            "residual_std": float(np.std(ys - slope * xs)), "n": int(len(xs))}


# Candidate slot sets for an edit, from engine.edits.SLOT_GROUPS (the colour group is never edited alone).
SLOT_CHOICES = {
    "all": ("coarse", "middle", "fine", "colour"),
    "coarse": ("coarse",),
    "coarse+middle": ("coarse", "middle"),
    "middle": ("middle",),
    "middle+fine": ("middle", "fine"),
    "coarse+middle+fine": ("coarse", "middle", "fine"),
}


def select_slots(gen: Generator, labeler: FaceLabeler, ws: np.ndarray, direction: np.ndarray, name: str,
                 step: float) -> tuple[str, list[dict]]:
    """Pick the slot set that changes `name` most per unit of identity change (dlib descriptor distance)
    for a step of `step` latent units, among sets that reach at least 40 % of the all-slots change."""
    from training.evaluate.dlib_judge import DlibIdentity

    ident = DlibIdentity()

    def measure(latents):
        out = []
        for latent in latents:
            rgb = gen.render(latent)
            small = cv2.resize(rgb, (LABEL_SIZE, LABEL_SIZE), interpolation=cv2.INTER_AREA)
            bgr = cv2.cvtColor(cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
            out.append((labeler.label(small), ident.descriptor(bgr)[0]))
        return out

    base = measure(ws)
    rows = []
    for choice, groups in SLOT_CHOICES.items():
        offset = masked(direction, slot_weights(**{g: 1.0 for g in groups}))
        edited = measure(ws[:, None, :] + step * offset)
        pairs = [(b, e) for b, e in zip(base, edited) if b[0] is not None and e[0] is not None]
        change = float(np.mean([e[0][name] - b[0][name] for b, e in pairs]))
        dist = float(np.mean([np.linalg.norm(e[1] - b[1]) for b, e in pairs]))
        rows.append({"slots": choice, "change": round(change, 4), "id_dist": round(dist, 4),
                     "change_per_id": round(abs(change) / max(dist, 0.02), 3)})
    full = abs(rows[0]["change"])
    ok = [r for r in rows if abs(r["change"]) >= 0.4 * full and np.sign(r["change"]) == np.sign(rows[0]["change"])]
    return max(ok, key=lambda r: r["change_per_id"])["slots"], rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=800, help="labelled faces for the regression")
    ap.add_argument("--calib-faces", type=int, default=12, help="held-out faces per calibration")
    ap.add_argument("--pose-step", type=float, default=5.0, help="largest calibration step for pose (latent units)")
    ap.add_argument("--expr-step", type=float, default=4.0, help="largest calibration step for expressions")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=DIRECTIONS_PATH)
    ap.add_argument("--report", type=Path, default=Path("docs/results/directions_fit.json"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--select-faces", type=int, default=6, help="faces per slot-set trial")
    ap.add_argument("--from", dest="from_npz", type=Path,
                    help="reuse the direction vectors of this .npz (skip labelling), redo slot choice + calibration")
    args = ap.parse_args(argv)

    gen = Generator.load(threads=args.threads)
    labeler = FaceLabeler()
    t0 = time.time()
    if args.from_npz:
        with np.load(args.from_npz, allow_pickle=False) as data:
            dirs = {a: data[a].astype(np.float32) for a in EDITS}
            previous = json.loads(str(data["meta"]))
        raw_cos = {a: previous[a].get("cos_to_raw_fit") for a in EDITS}
        earlier = json.loads(args.report.read_text()) if args.report.is_file() else {}
        stats, n_found = earlier.get("label_stats"), previous[EDITS[0]].get("fitted_on", earlier.get("faces_found"))
    else:
        ws = sample_ws(gen, args.samples, args.seed)
        labels = []
        for i in range(0, len(ws), 50):
            labels += render_labels(gen, labeler, ws[i : i + 50])
            rate = len(labels) / (time.time() - t0)
            print(f"labelled {len(labels)}/{len(ws)} faces ({rate:.1f}/s)", flush=True)
        keep = [i for i, lab in enumerate(labels) if lab is not None]
        x = ws[keep] - gen.w_avg
        stats = {a: {"mean": float(np.mean([labels[i][a] for i in keep])),
                     "std": float(np.std([labels[i][a] for i in keep]))} for a in ATTRIBUTES}
        raw = {a: fit_direction(x, np.array([labels[i][a] for i in keep])) for a in EDITS}
        dirs = decouple(raw)
        raw_cos = {a: float(dirs[a] @ raw[a]) for a in EDITS}
        n_found = len(keep)
    select_ws = sample_ws(gen, args.select_faces, args.seed + 2)
    calib_ws = sample_ws(gen, args.calib_faces, args.seed + 1)
    meta, slot_masks = {}, {}
    for a in EDITS:
        step = args.pose_step if a in POSE else args.expr_step
        choice, trials = select_slots(gen, labeler, select_ws, dirs[a], a, step * 0.6)
        slot_masks[a] = slot_weights(**{g: 1.0 for g in SLOT_CHOICES[choice]})
        c = calibrate(gen, labeler, calib_ws, masked(dirs[a], slot_masks[a]), a, (-step, -step / 2, step / 2, step))
        meta[a] = {"unit": UNITS[a], **c, "slots": choice, "slot_trials": trials, "cos_to_raw_fit": raw_cos[a],
                   "fitted_on": n_found}
        print(f"{a}: slots {choice}; {c['units_per_step']:.3f} {UNITS[a]} per latent unit, "
              f"up to {c['max_units']:.2f}", flush=True)
    labeler.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    extra = {}  # directions fitted elsewhere (age, gender: training/fit/age_gender.py) stay
    if args.out.is_file():
        with np.load(args.out, allow_pickle=False) as data:
            old_meta = json.loads(str(data["meta"]))
            for name in set(old_meta) - set(meta):
                meta[name] = old_meta[name]
                extra |= {k: data[k] for k in (name, f"{name}_slots") if k in data.files}
    tmp = args.out.with_suffix(".tmp.npz")
    np.savez(tmp, meta=json.dumps(meta), **dirs, **{f"{a}_slots": m for a, m in slot_masks.items()}, **extra)
    tmp.replace(args.out)
    if args.out == DIRECTIONS_PATH:
        update_manifest({"directions": {
            "file": args.out.name, "sha256": sha256_file(args.out), "bytes": args.out.stat().st_size,
            "source": f"pose/expression directions in W fitted on {n_found} generated faces labelled by MediaPipe",
            "licence": "Apache-2.0 (ours)" + ("; age and gender: labellers trained on UTKFace, non-commercial research "
                                              "use only" if "age" in meta or "gender" in meta else ""),
            "regenerate": "python -m training.fit.directions", "shipped": True}})
    report = {"samples": args.samples, "faces_found": n_found, "label_stats": stats, "directions": meta,
              "minutes": round((time.time() - t0) / 60, 1), "command": "python -m training.fit.directions " +
              " ".join(argv or [])}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.report, report)
    print(f"wrote {args.out} and {args.report} in {report['minutes']} min")


if __name__ == "__main__":
    main()
