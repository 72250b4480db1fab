"""Evaluate `celeblook morph --strength 1` on photos: is the output the target, by dlib?

    python -m training.evaluate.morph_stills --json docs/results/morph_stills.json      # ~5 min on 2 cores

Every photo of --photos is morphed toward every target of another person (the shared photos of Biden and Obama, and
built-in generated faces saved as photos), once as the command does it now (reenact, the target refined by the
quality mode) and once as it did before (the identity preset toward a one-pass target). The output's aligned crop
(`--crop`) is compared with the target photo's aligned crop (dlib < 0.6: the same person) and with the source's.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from engine.align import align_face
from engine.atomic import atomic_path
from engine.cli import main as celeblook
from engine.generator import Generator
from engine.image_io import load_image
from engine.landmarks import FaceLandmarker
from training.data.face_sets import PHOTOS, SIZE
from training.evaluate.dlib_judge import DlibIdentity

# How the command is run: now, and as it was before reenactment (2026-12-06).
CONFIGS = {"reenact, refined target": ["--preset", "reenact"],
           "before: identity, one-pass target": ["--preset", "identity", "--target-quality", "0"]}
SAME = 0.6


def person(path: Path) -> str:
    """Who a photo shows (file names of the shared set: obama-240p and obama_partial_face are Obama)."""
    return path.stem.split("-")[0].split("_")[0]


def aligned(path: Path, lm: FaceLandmarker) -> np.ndarray:
    image = load_image(path)
    faces = lm.detect(image)
    if not faces:
        raise SystemExit(f"no face in {path}")
    return align_face(image, faces[0], SIZE, blur_padding=False).image


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--targets", default="biden.jpg,obama.jpg", help="target photos in --photos")
    ap.add_argument("--seeds", default="3,7", help="built-in generated faces used as target photos too")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    t0 = time.time()
    work = Path(tempfile.mkdtemp(prefix="morph_stills_"))
    gen = Generator.load(2)
    targets = [args.photos / t for t in args.targets.split(",")]
    for seed in (int(s) for s in args.seeds.split(",") if s):
        path = work / f"seed{seed}.png"
        cv2.imwrite(str(path), cv2.cvtColor(gen.render(gen.sample_w(seed, 0.7)), cv2.COLOR_RGB2BGR))
        targets.append(path)
    sources = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    ident, rows = DlibIdentity(), []
    with FaceLandmarker(max_faces=4) as lm:
        crops = {p: aligned(p, lm) for p in sources + targets}
        for src in sources:
            for tgt in (t for t in targets if person(t) != person(src)):
                row = {"source": src.name, "target": tgt.name}
                for name, flags in CONFIGS.items():
                    out = work / f"{src.stem}_{tgt.stem}_{len(rows)}_{name[:6]}.png"
                    rc = celeblook(["morph", str(src), "--to", str(tgt), "--strength", "1", "--crop", "--out",
                                    str(out), *flags])
                    if rc != 0:
                        raise SystemExit(f"celeblook morph failed on {src.name} -> {tgt.name}")
                    image = cv2.imread(str(out))
                    row[name] = {"to_target": round(ident.distance(image, crops[tgt])[0], 4),
                                 "to_source": round(ident.distance(image, crops[src])[0], 4)}
                rows.append(row)
                print(row, flush=True)
    summary = {}
    for name in CONFIGS:
        d = np.array([r[name]["to_target"] for r in rows])
        summary[name] = {"pairs": len(rows), "target": int((d < SAME).sum()), "mean_to_target": round(float(d.mean()), 4),
                         "mean_to_source": round(float(np.mean([r[name]["to_source"] for r in rows])), 4)}
    print("| morph | pairs recognised as the target (dlib < 0.6) | mean distance to target | to source |")
    print("|---|---|---|---|")
    for name, s in summary.items():
        print(f"| {name} | {s['target']} / {s['pairs']} | {s['mean_to_target']:.3f} | {s['mean_to_source']:.3f} |")
    print(f"{time.time() - t0:.0f} s")
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
