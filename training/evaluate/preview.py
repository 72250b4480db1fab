"""Quality and speed of the preview generators (256 / 512 px heads) against the 1024-px output.

    python -m training.evaluate.preview [--faces 16] [--json docs/results/preview_eval.json]

For held-out generated faces: PSNR and SSIM of each preview render against the 1024-px render downscaled
(INTER_AREA) to the same size, dlib identity distance between them (256-px crops), and median synthesis ms
at 1 and 2 threads, all in one run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_json_atomic
from engine.benchmark import format_table, machine_info, median_ms
from engine.generator import Generator
from training.evaluate.dlib_judge import DlibIdentity
from training.evaluate.image_metrics import ssim_map


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=16)
    ap.add_argument("--seed", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path, default=Path("docs/results/preview_eval.json"))
    args = ap.parse_args(argv)
    full = Generator.load(2)
    ident = DlibIdentity()
    ws = [full.sample_w(args.seed + i, 0.7) for i in range(args.faces)]
    refs = [full.render(w) for w in ws]
    rows = []
    for res in (1024, 512, 256):
        gens = {t: Generator.load(t, resolution=res) for t in (1, 2)}
        psnrs, ssims, ids = [], [], []
        for w, ref in zip(ws, refs):
            img = gens[2].render(w)
            target = cv2.resize(ref, (res, res), interpolation=cv2.INTER_AREA) if res != 1024 else ref
            err = np.mean((img.astype(np.float64) - target) ** 2)
            psnrs.append(10 * np.log10(255.0**2 / max(err, 1e-12)))
            ssims.append(float(ssim_map(img, target).mean()))
            small = lambda x: cv2.cvtColor(cv2.resize(x, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)  # noqa: E731
            ids.append(ident.distance(small(img), small(ref))[0])
        timing = {f"ms_{t}_thread{'s' if t > 1 else ''}": round(median_ms(lambda: gens[t].synthesize(ws[0]), args.repeats), 1)
                  for t in (1, 2)}
        rows.append({"generator": f"{res} px" + (" (released)" if res == 1024 else " (preview head)"),
                     **timing, "psnr_db": round(float(np.mean([p for p in psnrs if np.isfinite(p)] or [float('inf')])), 2),
                     "ssim": round(float(np.mean(ssims)), 3), "dlib_id_dist": round(float(np.mean(ids)), 3)})
    print(format_table(rows, list(rows[0])))
    write_json_atomic(args.json, {"faces": args.faces, "seeds": [args.seed, args.seed + args.faces - 1],
                                  "machine": machine_info(), "rows": rows,
                                  "command": "python -m training.evaluate.preview " + " ".join(argv or [])})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
