"""Fit the identity guard of aimed edits: how far the shipped recogniser's embedding (engine/face_id.py) may move
before dlib would call the edited face another person.

    python -m training.fit.identity_guard [--photos 20]

A face that answers an edit weakly gets a bigger step when `celeblook edit` aims it (engine.edits.aim_amounts),
and a bigger step costs identity. The engine cannot run dlib, but it has its recogniser: this measures, on
inversions of real photos from UTKFace's training split (the last `--photos` names, as training/fit/recalibrate_real
picks them; never the held-out 1,000), edited by age and yaw amounts from small to beyond what users ask, the
recogniser's distance (1 - cosine of the unit embeddings) and dlib's distance between the edited and the unedited
render, and reports the recogniser distance below which 95 % of the edits stay dlib < 0.55 (a margin under 0.6).
Writes docs/results/identity_guard.json; the engine's constant is engine.edits.AIM_MAX_DRIFT.
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

EDITS = [("age", a) for a in (-25.0, -15.0, -10.0, -5.0, 5.0, 10.0, 20.0, 30.0)] + \
        [("yaw", a) for a in (-35.0, -25.0, -15.0, 15.0, 25.0, 35.0)]
DLIB_SAFE = 0.55  # dlib distance the guard keeps edits under (its "same person" threshold is 0.6)


def main(argv: list[str] | None = None) -> None:
    from engine.edits import DirectionSet
    from engine.errors import NoFaceError
    from engine.face_id import FaceId
    from engine.generator import Generator
    from engine.inversion.encoder import Encoder
    from engine.inversion.inverter import InversionOptions, Inverter
    from engine.inversion.skin_tone import SkinToneModel
    from engine.landmarks import FaceLandmarker
    from engine.photo_edit import PhotoEditor
    from training.data.utkface_labels import PAD, UTK_DIR, train_names
    from training.evaluate.dlib_judge import DlibIdentity

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--report", type=Path, default=Path("docs/results/identity_guard.json"))
    args = ap.parse_args(argv)
    t0 = time.time()
    ds, gen = DirectionSet.load(), Generator.load(1, resolution=256)
    inverter, face_id, dlib = Inverter(Encoder.load(1), gen, SkinToneModel.load()), FaceId.load(1), DlibIdentity()
    pairs = []  # (edit, amount, recogniser distance, dlib distance)
    with FaceLandmarker(max_faces=1) as landmarker:
        def embed(bgr):
            faces = landmarker.detect(bgr)
            return face_id.embed(bgr, faces[0].xy) if faces else None

        for name in train_names()[-args.photos:]:
            image = cv2.copyMakeBorder(cv2.imread(str(UTK_DIR / name)), PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
            try:
                editor = PhotoEditor.open(image, landmarker, inverter, InversionOptions(), size=256, source=name)
            except NoFaceError:
                continue
            base = editor.face_crop(editor.wplus)
            base_emb = embed(base)
            if base_emb is None:
                continue
            for edit, amount in EDITS:
                render = editor.face_crop(ds.apply(editor.wplus, **{edit: amount}))
                emb = embed(render)
                if emb is not None:
                    pairs.append((edit, amount, float(1.0 - emb @ base_emb), dlib.distance(render, base)[0]))
            print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    drift, judged = np.array([p[2] for p in pairs]), np.array([p[3] for p in pairs])
    order = np.argsort(drift)
    rows = []
    for cut in np.quantile(drift, np.linspace(0.05, 1.0, 20)):
        below = judged[drift <= cut]
        rows.append({"recogniser_distance_at_most": round(float(cut), 4), "n": int(below.size),
                     "share_dlib_safe": round(float(np.mean(below < DLIB_SAFE)), 3),
                     "share_dlib_same": round(float(np.mean(below < 0.6)), 3)})
    # the largest recogniser distance d such that, of the edits with distance near d (a window of 20 neighbours),
    # 95 % are dlib-safe: the guard's cut
    safe = judged[order] < DLIB_SAFE
    window = 20
    local = np.convolve(safe.astype(float), np.ones(window) / window, mode="valid")
    ok = np.flatnonzero(local >= 0.95)
    cut = float(drift[order][ok[-1] + window // 2]) if ok.size else float(drift.min())
    corr = float(np.corrcoef(drift, judged)[0, 1])
    report = {"guard_recogniser_distance": round(cut, 4), "dlib_safe": DLIB_SAFE, "pairs": len(pairs),
              "correlation_recogniser_vs_dlib": round(corr, 3), "table": rows,
              "edits": [{"edit": e, "amount": a, "recogniser": round(r, 4), "dlib": round(d, 4)}
                        for e, a, r, d in pairs],
              "minutes": round((time.time() - t0) / 60, 1), "machine": machine_info(),
              "load_average": [round(x, 2) for x in os.getloadavg()],
              "command": "python -m training.fit.identity_guard " + " ".join(argv or [])}
    write_json_atomic(args.report, report)
    print("| recogniser distance <= | edits | dlib < 0.55 | dlib < 0.6 |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['recogniser_distance_at_most']:.3f} | {r['n']} | {r['share_dlib_safe']:.2f} | "
              f"{r['share_dlib_same']:.2f} |")
    print(f"guard: recogniser distance <= {cut:.4f} (correlation with dlib {corr:.2f}, {len(pairs)} edits); "
          f"wrote {args.report}")


if __name__ == "__main__":
    main()
