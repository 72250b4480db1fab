"""Measure what the latent edits do, on generated faces, with MediaPipe and dlib.

    python -m training.evaluate.edits [--faces 12] [--json docs/results/edits_eval.json]

1. Slot groups (engine/edits.py SLOT_GROUPS): for pairs of faces (A, B), copy one group of B's slots into A
   and measure the change from A: head pose (|d yaw| + |d pitch|, degrees), expression (|d smile|, |d jaw|),
   identity (dlib distance to A and to B) and colour (mean Lab a/b shift of the face region). This is what
   decides which slots a morph takes from the target.
2. Morph presets, with and without the pose lock: pose change from A, identity distance to A and to B.
3. Directions (resources/models/directions.npz): for each edit asked in real units, the change MediaPipe measures on
   the output (mean and mean absolute error), identity kept (dlib distance to the unedited render) and
   leakage (mean |change| of the other pose angle / expressions).
Prints markdown tables and writes JSON.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_json_atomic
from engine.edits import SLOT_GROUPS, DirectionSet, morph, slot_weights
from engine.generator import Generator
from training.evaluate.dlib_judge import DlibIdentity
from training.data.face_labels import EXPRESSIONS, FaceLabeler

LABEL_SIZE = 384
EDITS = [("yaw", -20.0), ("yaw", -10.0), ("yaw", 10.0), ("yaw", 20.0), ("pitch", -10.0), ("pitch", 10.0),
         ("smile", 0.3), ("smile", -0.3), ("jaw_open", 0.2), ("eye_blink", 0.3), ("brow_raise", 0.15)]


class Probe:
    """Renders latents and measures them: MediaPipe labels, dlib descriptors, face-region colour."""

    def __init__(self, gen: Generator):
        self.gen, self.labeler, self.ident = gen, FaceLabeler(), DlibIdentity()

    def measure(self, latent: np.ndarray) -> dict:
        rgb = self.gen.render(latent)
        small = cv2.resize(rgb, (LABEL_SIZE, LABEL_SIZE), interpolation=cv2.INTER_AREA)
        bgr256 = cv2.cvtColor(cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
        lab = cv2.cvtColor(bgr256[64:208, 64:192], cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)
        return {"labels": self.labeler.label(small), "desc": self.ident.descriptor(bgr256)[0],
                "ab": lab[:, 1:].mean(0)}

    def close(self) -> None:
        self.labeler.close()


def id_dist(a: dict, b: dict) -> float:
    return float(np.linalg.norm(a["desc"] - b["desc"]))


def slot_group_table(probe: Probe, ws: np.ndarray) -> list[dict]:
    """Copy each slot group of B into A (pairs of consecutive faces) and measure the change from A."""
    rows = []
    groups = {g: slot_weights(**{g: 1.0}) for g in SLOT_GROUPS} | {"all": slot_weights(**{g: 1.0 for g in SLOT_GROUPS})}
    pairs = [(ws[i], ws[i + 1]) for i in range(0, len(ws) - 1, 2)]
    base = [(probe.measure(a), probe.measure(b)) for a, b in pairs]
    for name, weights in groups.items():
        acc = {"pose_deg": [], "expr": [], "id_to_A": [], "id_to_B": [], "colour_ab": []}
        for (a, b), (ma, mb) in zip(pairs, base):
            m = probe.measure(morph(a, b, 1.0, weights))
            if m["labels"] is None or ma["labels"] is None:
                continue
            la, lm = ma["labels"], m["labels"]
            acc["pose_deg"].append(abs(lm["yaw"] - la["yaw"]) + abs(lm["pitch"] - la["pitch"]))
            acc["expr"].append(abs(lm["smile"] - la["smile"]) + abs(lm["jaw_open"] - la["jaw_open"]))
            acc["id_to_A"].append(id_dist(m, ma))
            acc["id_to_B"].append(id_dist(m, mb))
            acc["colour_ab"].append(float(np.linalg.norm(m["ab"] - ma["ab"])))
        slots = [s for s in range(23) if weights[s] > 0 and (s == 0 or s % 3 or s == 21) and s != 22]
        rows.append({"group": name, "slots": slots, "pairs": len(acc["pose_deg"]),
                     **{k: round(float(np.mean(v)), 3) for k, v in acc.items()}})
    return rows


def morph_table(probe: Probe, ws: np.ndarray, directions: DirectionSet) -> list[dict]:
    """Morph A toward B at strength 1 with each preset, with and without the pose lock."""
    pairs = [(ws[i], ws[i + 1]) for i in range(0, len(ws) - 1, 2)]
    base = [(probe.measure(a), probe.measure(b)) for a, b in pairs]
    rows = []
    for preset, lock in [("identity", None), ("identity", directions), ("full", None)]:
        pose, to_a, to_b = [], [], []
        for (a, b), (ma, mb) in zip(pairs, base):
            m = probe.measure(morph(a, b, 1.0, preset, pose_lock=lock))
            if m["labels"] is None or ma["labels"] is None:
                continue
            pose.append(abs(m["labels"]["yaw"] - ma["labels"]["yaw"]) + abs(m["labels"]["pitch"] - ma["labels"]["pitch"]))
            to_a.append(id_dist(m, ma))
            to_b.append(id_dist(m, mb))
        rows.append({"morph": preset + (" + pose lock" if lock else ""), "pairs": len(pose),
                     "pose_change_deg": round(float(np.mean(pose)), 2), "id_to_user": round(float(np.mean(to_a)), 3),
                     "id_to_target": round(float(np.mean(to_b)), 3),
                     "share_target_under_0.6": round(float(np.mean(np.array(to_b) < 0.6)), 2)})
    return rows


def direction_table(probe: Probe, ws: np.ndarray, directions: DirectionSet) -> list[dict]:
    """For each (attribute, amount) edit: achieved change, error, identity kept, leakage."""
    base = [probe.measure(w) for w in ws]
    rows = []
    others_of = {"yaw": ["pitch"], "pitch": ["yaw"]}
    for name, amount in EDITS:
        got, ids, leak = [], [], []
        for w, mb in zip(ws, base):
            me = probe.measure(directions.apply(w, **{name: amount}))
            if me["labels"] is None or mb["labels"] is None:
                continue
            got.append(me["labels"][name] - mb["labels"][name])
            ids.append(id_dist(me, mb))
            others = others_of.get(name, ["yaw", "pitch"]) + [e for e in EXPRESSIONS if e != name]
            leak.append({o: abs(me["labels"][o] - mb["labels"][o]) for o in others})
        got = np.array(got)
        pose_leak = [np.mean([d[o] for o in ("yaw", "pitch") if o in d]) for d in leak]
        expr_leak = [np.mean([d[o] for o in EXPRESSIONS if o in d]) for d in leak]
        rows.append({"edit": f"{name} {amount:+g} {directions.directions[name].unit.split()[0]}",
                     "faces": len(got), "achieved_mean": round(float(got.mean()), 3),
                     "abs_error": round(float(np.abs(got - amount).mean()), 3),
                     "id_dist_mean": round(float(np.mean(ids)), 3),
                     "id_share_under_0.45": round(float(np.mean(np.array(ids) < 0.45)), 2),
                     "leak_pose_deg": round(float(np.mean(pose_leak)), 2),
                     "leak_expr_score": round(float(np.mean(expr_leak)), 3)})
    return rows


def markdown(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=12, help="generated faces per table (held-out seeds)")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--psi", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=Path("docs/results/edits_eval.json"))
    ap.add_argument("--morph-only", action="store_true", help="skip the directions table")
    args = ap.parse_args(argv)
    t0 = time.time()
    gen = Generator.load(args.threads)
    ws = np.stack([gen.sample_w(args.seed + i, args.psi) for i in range(args.faces)])
    probe = Probe(gen)
    slots = slot_group_table(probe, ws)
    print(markdown(slots), flush=True)
    directions = DirectionSet.load()
    morphs = morph_table(probe, ws, directions)
    print(markdown(morphs), flush=True)
    dirs = direction_table(probe, ws, directions) if not args.morph_only else []
    if dirs:
        print(markdown(dirs))
    probe.close()
    report = {"faces": args.faces, "psi": args.psi, "seeds": [args.seed, args.seed + args.faces - 1],
              "slot_groups": slots, "morph": morphs, "directions": dirs, "minutes": round((time.time() - t0) / 60, 1),
              "command": "python -m training.evaluate.edits " + " ".join(argv or [])}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.json, report)
    print(f"wrote {args.json} ({report['minutes']} min)")


if __name__ == "__main__":
    main()
