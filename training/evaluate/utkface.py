"""The inversion encoder on the held-out UTKFace photos (training/data/utkface.py: the 1,000 names with the lowest
sha256, never trained on), several encoders in one run, with the fairness table per race and age group.

    python -m training.data.utkface --split heldout          # once: aligned crops + masks under runs/utkface
    python -m training.evaluate.utkface --n 300 --encoder shipped --encoder runs/leg/inversion_encoder.onnx \
        --json docs/results/utkface_eval.json
    python -m training.evaluate.utkface --n 169 --encoder shipped --codes runs/morph_targets/heldout.npz --common
        # beside them, the quality mode's codes of the photos that have one: what a network trained on them could reach

Per photo and encoder: the one pass (network alone; for the shipped model also the engine's one pass with its
landmark and identity corrections, which are tied to its sha256) rendered at 1024 px by the engine's generator and
re-aligned by its own landmarks (as `celeblook invert` writes it); identity = dlib descriptor distance between the
aligned input crop and that reconstruction (< 0.6: the same person); skin = median CIELAB in the input's face oval,
reconstruction minus input (delta L*, delta E76); PSNR in the oval. Groups: UTKFace race (0 White, 1 Black,
2 Asian, 3 Indian, 4 other; the 3 names without race are in no race group) and age group.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from engine.atomic import write_json_atomic
from engine.benchmark import provenance
from training.data.utkface import AGE_GROUPS, RACES, age_group, load_cache

LIMIT = 0.6
STORED = "stored codes"  # the method of rows judged from --codes


def stored_codes(path: Path) -> dict[str, np.ndarray]:
    """{photo name: W+ (23, 512)} of a training.data.morph_targets file: the quality mode's code of each photo."""
    with np.load(path, allow_pickle=False) as data:
        return {str(name): w for name, w in zip(data["names"], data["wplus"])}


def evaluate(encoders: list[str], n: int, threads: int = 2, start: int = 0, rows_file: Path | None = None,
             shipped_fits: bool = False, codes: dict[str, dict[str, np.ndarray]] | None = None,
             identity_correction: Path | None = None, feedback: bool = False) -> list[dict]:
    """Rows per photo, encoder and method. With `rows_file` (JSON lines) every photo's rows are appended as soon as
    they are measured and photos already there (per encoder) are skipped: a long run can be stopped and resumed,
    and encoders measured in separate runs are compared on the photos both have. `shipped_fits`: a development
    encoder also gets the shipped landmark and identity corrections (fitted for the shipped network), to see
    whether a new network still needs them before they are refitted. `codes` ({label: {photo name: W+}}, e.g. the
    quality mode's codes that training.data.morph_targets stores: `stored_codes`) are judged like an encoder's
    on the photos they cover: how far a network trained toward those codes could get at best.
    `identity_correction`: the shipped encoder's one pass also with this identity correction (a development fit,
    Encoder.with_identity), as a method of its own beside the shipped one. `feedback`: the shipped one pass also
    after one identity-feedback step on its 1024-px render (what `celeblook invert` adds before its skin loop)."""
    import json
    import cv2
    from engine.generator import Generator
    from engine.inversion.corrections.identity import IdentityCorrection
    from engine.inversion.encoder import Encoder
    from engine.inversion.skin_tone import skin_lab
    from engine.landmarks import FaceLandmarker
    from training.evaluate.dlib_judge import DlibIdentity
    from engine.generator import to_uint8_rgb
    from training.evaluate.encoder import ID_LOOP, ONE_PASS, render_aligned
    from training.evaluate.image_metrics import region_metrics

    d = load_cache("heldout")
    idx = range(start, min(start + n, len(d["names"])))
    gen, ident = Generator.load(threads), DlibIdentity()
    encs = {name: Encoder.load(threads, None if name == "shipped" else name) for name in encoders}
    fits = Encoder.load(threads) if shipped_fits else None
    other = encs["shipped"].with_identity(IdentityCorrection.load(identity_correction)) \
        if identity_correction is not None and "shipped" in encs else None
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] \
        if rows_file is not None and rows_file.is_file() else []
    done = {(r["name"], r["encoder"]) for r in rows}
    codes = codes or {}
    rows = [r for r in rows if r["encoder"] in encoders or r["encoder"] in codes]
    out = open(rows_file, "a") if rows_file is not None else None
    t0 = time.time()
    with FaceLandmarker() as lm:
        for k, i in enumerate(idx):
            todo = {name: enc for name, enc in encs.items() if (d["names"][i], name) not in done}
            stored = {label: by_name[d["names"][i]] for label, by_name in codes.items()
                      if d["names"][i] in by_name and (d["names"][i], label) not in done}
            if not todo and not stored:
                continue
            rgb = np.ascontiguousarray(d["crop"][i])
            crop = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            oval, points = d["oval"][i], d["points"][i].astype(np.float32)
            desc_in, found_in = ident.descriptor(crop)
            lab_in = skin_lab(crop, oval)
            age, gender, race = (int(v) for v in d["labels"][i])
            judged = [(label, STORED, wplus) for label, wplus in stored.items()]
            for name, enc in todo.items():
                methods = {"network": enc.invert(crop)}
                fitted = enc if name == "shipped" else fits
                if fitted is not None and fitted.correction is not None:
                    w = fitted.correction.apply(methods["network"], points)
                    if fitted.identity is not None:
                        emb = fitted.face_id.embed(crop, points[:, :2] * crop.shape[0])
                        methods[ONE_PASS + ("" if name == "shipped" else " (shipped fits)")] = \
                            fitted.identity.apply(w, emb)
                        if name == "shipped" and other is not None:
                            methods[f"{ONE_PASS} ({identity_correction.name})"] = other.identity.apply(w, emb)
                        if name == "shipped" and feedback and enc.feedback is not None:
                            one = methods[ONE_PASS]
                            render = cv2.cvtColor(to_uint8_rgb(gen.synthesize(one))[0], cv2.COLOR_RGB2BGR)
                            step = enc.identity_step(emb, render, lm)
                            methods[ID_LOOP] = one if step is None else one + step[None]
                judged += [(name, method, wplus) for method, wplus in methods.items()]
            for name, method, wplus in judged:
                recon, _ = render_aligned(gen, lm, wplus)
                desc, found = ident.descriptor(recon)
                diff = skin_lab(recon, oval) - lab_in
                psnr, _ = region_metrics(crop, recon, oval)
                rows.append({"name": d["names"][i], "age": age, "gender": gender, "race": race,
                             "encoder": name, "method": method,
                             "id_dist": float(np.linalg.norm(desc - desc_in)), "dlib_found": found and found_in,
                             "skin_dL": float(diff[0]), "skin_dE": float(np.linalg.norm(diff)),
                             "psnr": float(psnr)})
                if out is not None:
                    out.write(json.dumps(rows[-1]) + "\n")
                    out.flush()
            if (k + 1) % 25 == 0:
                print(f"{k + 1}/{len(idx)} photos, {time.time() - t0:.0f} s", flush=True)
    return rows


def _stats(rs: list[dict]) -> dict:
    d = np.array([r["id_dist"] for r in rs])
    return {"n": len(rs), "id_dist": round(float(d.mean()), 3), "same_person": round(float((d < LIMIT).mean()), 3),
            "skin_dE": round(float(np.mean([r["skin_dE"] for r in rs])), 2),
            "skin_dL": round(float(np.mean([r["skin_dL"] for r in rs])), 2),
            "psnr_db": round(float(np.mean([r["psnr"] for r in rs])), 2)}


def summarise(rows: list[dict]) -> dict:
    """{encoder/method: {"all": stats, "race": {group: stats}, "age": {group: stats}, "worst_gap": ...}}"""
    out = {}
    for key in dict.fromkeys((r["encoder"], r["method"]) for r in rows):
        rs = [r for r in rows if (r["encoder"], r["method"]) == key]
        s = {"all": _stats(rs), "race": {}, "age": {}}
        for ri, race in enumerate(RACES):
            g = [r for r in rs if r["race"] == ri]
            if g:
                s["race"][race] = _stats(g)
        for lo, hi in AGE_GROUPS:
            label = age_group(lo)
            g = [r for r in rs if age_group(r["age"]) == label]
            if g:
                s["age"][label] = _stats(g)
        groups = list(s["race"].values()) + list(s["age"].values())
        s["worst_gap_id"] = round(max(g["id_dist"] for g in groups) - s["all"]["id_dist"], 3)
        out[f"{key[0]} / {key[1]}"] = s
    return out


def markdown(summary: dict) -> str:
    lines = ["| encoder / method | group | n | dlib distance | same person (< 0.6) | skin ΔE | skin ΔL* | PSNR (oval) |",
             "|---|---|---|---|---|---|---|---|"]
    for key, s in summary.items():
        for label, st in [("all", s["all"])] + [(f"race {k}", v) for k, v in s["race"].items()] + \
                [(f"age {k}", v) for k, v in s["age"].items()]:
            lines.append(f"| {key} | {label} | {st['n']} | {st['id_dist']:.3f} | {100 * st['same_person']:.0f} % | "
                         f"{st['skin_dE']:.1f} | {st['skin_dL']:+.1f} | {st['psnr_db']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", action="append", help="'shipped' or an ONNX path (repeat to compare)")
    ap.add_argument("--n", type=int, default=1000, help="the first N held-out photos (sha256 order)")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shipped-fits", action="store_true",
                    help="also apply the shipped landmark and identity corrections to development encoders")
    ap.add_argument("--codes", type=Path, action="append", default=[],
                    help="also judge stored quality-mode codes (training.data.morph_targets' held-out file)")
    ap.add_argument("--identity-correction", type=Path,
                    help="also the shipped one pass with this identity correction (a development fit)")
    ap.add_argument("--feedback", action="store_true",
                    help="the shipped one pass also after one identity-feedback step (as celeblook invert does)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--rows", type=Path, help="JSON lines of every measured row: appended as it goes, resumed from")
    ap.add_argument("--common", action="store_true",
                    help="summarise only the photos every encoder has rows for (--rows from separate runs)")
    args = ap.parse_args(argv)
    t0 = time.time()
    encoders = args.encoder or ["shipped"]
    if args.shipped_fits and args.rows:  # the rows file counts a photo as done per encoder, fits or not
        raise SystemExit("--shipped-fits cannot resume from --rows (a development encoder's earlier rows lack the "
                         "fitted method); run it without --rows")
    codes = {str(path): stored_codes(path) for path in args.codes}
    if (args.identity_correction or args.feedback) and args.rows:  # a photo counts as done per encoder, not method
        raise SystemExit("--identity-correction and --feedback cannot resume from --rows; run them without --rows")
    rows = evaluate(encoders, args.n, args.threads, args.start, args.rows, args.shipped_fits, codes,
                    args.identity_correction, args.feedback)
    if args.common:
        have = [{r["name"] for r in rows if r["encoder"] == e} for e in [*encoders, *codes]]
        common = set.intersection(*have)
        rows = [r for r in rows if r["name"] in common]
    summary = summarise(rows)
    print(markdown(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.json, {"n": args.n, "start": args.start, "summary": summary, "rows": rows,
                                      "seconds": round(time.time() - t0),
                                      **provenance("training.evaluate.utkface", argv)}, indent=1)


if __name__ == "__main__":
    main()
