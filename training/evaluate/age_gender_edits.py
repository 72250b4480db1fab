"""Measure the age and gender edits (and yaw, for the real-face re-calibration) on held-out real photos and on
generated faces.

    python -m training.evaluate.age_gender_edits [--utk 20] [--generated 12]

Real photos: the first `--utk` of UTKFace's held-out 1,000 (training/data/utkface_labels.held_out_names; the chip
padded by replication, as for the labellers) and ../shared/data/faces/{obama,biden}.jpg, each inverted the engine's
way (Inverter.invert_photo with the shipped encoder, corrections, identity and skin passes; 256-px generator).
For each edit asked (age +20, +10, -10, -15 years; gender toward the other sex, +-1; yaw +-20 degrees):
- achieved: the change the labellers (age, P(female): training/models/age_gender.py, on the recognition crop of the
  render in the crop's framing, as they were trained) or MediaPipe (yaw) measure between the unedited and the
  edited render;
- identity: dlib distance between the edited and the unedited render (same person < 0.6), and to the photo's crop;
- leakage: |change| of yaw and pitch (MediaPipe, degrees), of smile and jaw_open, of the other attribute;
- aimed (unless --no-aim): age and yaw also re-aimed on the face's own renders as `celeblook edit` does
  (engine.edits.aim_amounts with the engine's FaceReader: the same MediaPipe and labeller as this judge, so their
  "achieved" is the aim's own reading); yaw is also read by dlib's 68 landmarks and a generic head (DlibPose), a
  judge the aim never saw.
Yaw on the pasted-back photo: MediaPipe yaw of the whole photo with the edited face pasted back minus that of the
photo with the unedited reconstruction pasted back, by each paste-back of PASTES (the live view's, the blanket 1.3x
oval `edit` used before, and `edit`'s now: the photo's oval and the render's own, both grown 1.1x).
Writes docs/results/age_gender_eval.json (with the machine and its load) and prints markdown tables.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_json_atomic
from engine.benchmark import machine_info
from engine.edits import AIM_TOLERANCE, DirectionSet, aim_amounts
from engine.generator import Generator

FACES = Path("/work/shared/data/faces")
# paste-backs tried for the yaw edits: name -> (oval growth, also replace the render's own outline)
PASTES = {"oval 1.0": (1.0, False), "oval 1.3": (1.3, False), "both ovals 1.1": (1.1, True)}
EDITS = [("age", 20.0), ("age", 10.0), ("age", -10.0), ("age", -15.0), ("gender", "swap"), ("yaw", 20.0),
         ("yaw", -20.0)]


class Judge:
    def __init__(self):
        from training.data.face_labels import FaceLabeler
        from training.evaluate.dlib_judge import DlibIdentity, DlibPose
        from training.models.age_gender import AgeGenderLabeller

        self.ag, self.mp, self.dlib, self.pose = AgeGenderLabeller(), FaceLabeler(), DlibIdentity(), DlibPose()

    def __call__(self, bgr: np.ndarray) -> dict | None:
        ag = self.ag.label(bgr)
        mp = self.mp.label(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if ag is None or mp is None:
            return None
        pose = self.pose.pose(bgr)
        return {"age": ag["age"], "gender": ag["gender"], **{k: mp[k] for k in ("yaw", "pitch", "smile", "jaw_open")},
                "desc": self.dlib.descriptor(bgr)[0], "dlib_yaw": None if pose is None else pose[0]}

    def close(self) -> None:
        self.ag.close()
        self.mp.close()

    def yaw(self, bgr: np.ndarray) -> float | None:
        lab = self.mp.label(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return None if lab is None else lab["yaw"]


def amount_for(name, value, base) -> float:
    if value == "swap":  # toward the other sex
        return 1.0 if base["gender"] < 0.5 else -1.0
    return float(value)


def measure_face(judge: Judge, render, wplus, directions: DirectionSet, photo_crop=None, paste=None,
                 reader=None) -> dict | None:
    """render(wplus) -> BGR crop; paste(wplus) -> BGR photo with the face pasted back (real photos); `reader`
    (engine.attributes.FaceReader): also measure each aimable edit re-aimed on the face's renders the engine's way
    (engine.edits.aim_amounts, as `celeblook edit` does), under the key "<edit> aimed"."""
    base = judge(render(wplus))
    if base is None:
        return None
    out = {"base_age": base["age"], "base_gender": base["gender"], "edits": {}}
    if photo_crop is not None:
        p = judge(photo_crop)
        if p is not None:
            out |= {"photo_age": p["age"], "photo_gender": p["gender"],
                    "recon_id_to_photo": float(np.linalg.norm(p["desc"] - base["desc"]))}
            photo_desc = p["desc"]
        else:
            photo_desc = None
    base_yaw_paste = {g: judge.yaw(paste(wplus, *PASTES[g])) for g in PASTES} if paste is not None else None
    runs = []  # (key, name, asked, latent to judge)
    for name, value in EDITS:
        amount = amount_for(name, value, base)
        if name not in directions.directions:
            continue
        key = f"{name} {value if value == 'swap' else f'{value:+g}'}"
        runs.append((key, name, amount, directions.apply(wplus, **{name: amount})))
        if reader is not None and name in AIM_TOLERANCE:
            aim = aim_amounts(directions, wplus, {name: amount}, lambda w: reader.read(render(w)))
            runs.append((f"{key} aimed", name, amount, directions.apply(wplus, **aim.amounts)))
    for key, name, amount, w2 in runs:
        e = judge(render(w2))
        if e is None:
            out["edits"][key] = None
            continue
        other = "gender" if name == "age" else "age"
        row = {"asked": amount, "achieved": e[name] - base[name],
               "id_dist": float(np.linalg.norm(e["desc"] - base["desc"])),
               "pose_leak": abs(e["yaw"] - base["yaw"]) + abs(e["pitch"] - base["pitch"]) if name != "yaw"
               else abs(e["pitch"] - base["pitch"]),
               "expr_leak": abs(e["smile"] - base["smile"]) + abs(e["jaw_open"] - base["jaw_open"]),
               "other_leak": abs(e[other] - base[other]) if name != "yaw" else abs(e["age"] - base["age"])}
        if name == "yaw" and e["dlib_yaw"] is not None and base["dlib_yaw"] is not None:
            row["achieved_dlib"] = e["dlib_yaw"] - base["dlib_yaw"]  # a pose judge independent of MediaPipe
        if photo_crop is not None and photo_desc is not None:
            row["id_dist_to_photo"] = float(np.linalg.norm(e["desc"] - photo_desc))
        if name == "yaw" and paste is not None:
            for g in PASTES:
                y, y0 = judge.yaw(paste(w2, *PASTES[g])), base_yaw_paste[g]
                row[f"pasted_yaw {g}"] = None if y is None or y0 is None else y - y0
        out["edits"][key] = row
    return out


def summarise(faces: list[dict]) -> dict:
    keys = list(dict.fromkeys(k for f in faces if f for k in f["edits"]))  # in the order measured
    table = {}
    for k in keys:
        rows = [f["edits"][k] for f in faces if f and f["edits"].get(k)]
        if not rows:
            continue
        ach = np.array([r["achieved"] for r in rows])
        asked = np.array([r["asked"] for r in rows])
        ids = np.array([r["id_dist"] for r in rows])
        t = {"n": len(rows), "median_achieved": float(np.median(ach * np.sign(asked))),
             "mean_achieved": float(np.mean(ach * np.sign(asked))),
             "mean_abs_error": float(np.mean(np.abs(ach - asked))), "id_dist_mean": float(ids.mean()),
             "relative_spread": float(np.mean(np.abs(ach * np.sign(asked) - np.median(ach * np.sign(asked))))
                                      / max(abs(float(np.median(ach * np.sign(asked)))), 1e-6)),
             "share_id_below_0.6": float(np.mean(ids < 0.6)),
             "pose_leak": float(np.mean([r["pose_leak"] for r in rows])),
             "expr_leak": float(np.mean([r["expr_leak"] for r in rows])),
             "other_leak": float(np.mean([r["other_leak"] for r in rows]))}
        by_dlib = [(r["achieved_dlib"], r["asked"]) for r in rows if r.get("achieved_dlib") is not None]
        if by_dlib:
            a, q = np.array(by_dlib).T
            med = float(np.median(a * np.sign(q)))
            # its scale is not MediaPipe's (DlibPose): the spread across faces, relative to its own median
            t |= {"dlib_n": len(by_dlib), "dlib_median_achieved": med,
                  "dlib_relative_spread": float(np.mean(np.abs(a * np.sign(q) - med)) / max(abs(med), 1e-6))}
        if "id_dist_to_photo" in rows[0]:
            t["id_dist_to_photo_mean"] = float(np.mean([r["id_dist_to_photo"] for r in rows if "id_dist_to_photo" in r]))
        for g in PASTES:
            pasted = [r[f"pasted_yaw {g}"] for r in rows if r.get(f"pasted_yaw {g}") is not None]
            if pasted:
                t[f"pasted_yaw {g}"] = float(np.mean(np.array(pasted) * np.sign(asked[0])))
        table[k] = {a: round(b, 3) if isinstance(b, float) else b for a, b in t.items()}
    return table


def print_table(title: str, table: dict) -> None:
    print(f"\n{title}\n| edit | n | achieved (median, toward asked) | mean abs error | id dist | share id < 0.6 | "
          f"pose leak ° | expr leak | other attr leak | pasted yaw ° ({' / '.join(PASTES)}) | "
          f"yaw by dlib: median / spread across faces |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for k, t in table.items():
        pasted = " / ".join(f"{t[f'pasted_yaw {g}']:.1f}" for g in PASTES if f"pasted_yaw {g}" in t)
        by_dlib = f"{t['dlib_median_achieved']:+.1f} / {100 * t['dlib_relative_spread']:.0f} %" if "dlib_n" in t else ""
        print(f"| {k} | {t['n']} | {t['median_achieved']:+.2f} | {t['mean_abs_error']:.2f} | {t['id_dist_mean']:.2f} | "
              f"{t['share_id_below_0.6']:.2f} | {t['pose_leak']:.1f} | {t['expr_leak']:.2f} | {t['other_leak']:.2f} | "
              f"{pasted} | {by_dlib} |")


def real_photos(n_utk: int) -> list[tuple[str, np.ndarray]]:
    from training.data.utkface_labels import PAD, UTK_DIR, held_out_names

    out = [(p, cv2.imread(str(FACES / p))) for p in ("obama.jpg", "biden.jpg")]
    for name in held_out_names()[:n_utk]:
        image = cv2.imread(str(UTK_DIR / name))
        out.append((name, cv2.copyMakeBorder(image, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)))
    return out


def main(argv: list[str] | None = None) -> None:
    from engine.errors import NoFaceError
    from engine.inversion.encoder import Encoder
    from engine.inversion.inverter import InversionOptions, Inverter
    from engine.inversion.skin_tone import SkinToneModel
    from engine.landmarks import FaceLandmarker
    from engine.paste import PasteOptions, paste_back
    from engine.photo_edit import PhotoEditor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utk", type=int, default=20, help="held-out UTKFace photos")
    ap.add_argument("--generated", type=int, default=12, help="generated faces (seeds 1000...)")
    ap.add_argument("--directions", type=Path, help="a directions .npz (default: the shipped one)")
    ap.add_argument("--json", type=Path, default=Path("docs/results/age_gender_eval.json"))
    ap.add_argument("--no-aim", dest="aim", action="store_false", help="only the edits as calibrated")
    args = ap.parse_args(argv)
    t0 = time.time()
    directions = DirectionSet.load(args.directions) if args.directions else DirectionSet.load()
    gen = Generator.load(1, resolution=256)
    judge = Judge()
    reader = None
    if args.aim:  # the engine's own reader, as `celeblook edit` aims with it
        from engine.attributes import AgeGenderHeads, FaceReader
        from engine.face_id import FaceId

        reader = FaceReader(FaceLandmarker(max_faces=1, pose=True), FaceId.load(1), AgeGenderHeads.load())

    def render(w):
        return cv2.cvtColor(gen.render(w), cv2.COLOR_RGB2BGR)

    generated = []
    for seed in range(1000, 1000 + args.generated):
        generated.append(measure_face(judge, render, gen.sample_w(seed, 0.7)[None], directions, reader=reader))
    gen_table = summarise(generated)
    print_table(f"generated faces ({args.generated}, seeds 1000..., psi 0.7)", gen_table)

    inverter = Inverter(Encoder.load(1), gen, SkinToneModel.load())
    real = []
    with FaceLandmarker(max_faces=1) as landmarker:
        for name, image in real_photos(args.utk):
            try:
                editor = PhotoEditor.open(image, landmarker, inverter, InversionOptions(), size=256, source=name)
            except NoFaceError:
                continue
            editor.outline = landmarker  # for the render's own outline (rendered_outline)

            def paste(w, grow, own_outline, editor=editor):
                inv, face = editor.inversion, editor.face_crop(w)
                also = editor.rendered_outline(face) if own_outline else None
                return paste_back(editor.image, face, inv.crop, inv.face, PasteOptions(grow=grow), also=also)

            r = measure_face(judge, editor.face_crop, editor.wplus, directions, editor.inversion.crop.image, paste,
                             reader)
            if r is not None:
                r["photo"] = name
                real.append(r)
            print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    judge.close()
    if reader is not None:
        reader.landmarker.close()
    real_table = summarise(real)
    print_table(f"real photos ({len(real)}: held-out UTKFace + obama, biden; inverted)", real_table)
    recon_age_err = [abs(r["base_age"] - r["photo_age"]) for r in real if "photo_age" in r]
    report = {"generated": gen_table, "real": real_table,
              "real_faces": [{k: v for k, v in r.items() if k != "edits"} | {"edits": r["edits"]} for r in real],
              "reconstruction_vs_photo_age_mae": float(np.mean(recon_age_err)) if recon_age_err else None,
              "minutes": round((time.time() - t0) / 60, 1), "machine": machine_info(),
              "load_average": [round(x, 2) for x in os.getloadavg()], "command": "python -m training.evaluate.age_gender_edits " + " ".join(argv or [])}
    write_json_atomic(args.json, report)
    print(f"wrote {args.json} ({report['minutes']} min)")


if __name__ == "__main__":
    main()
