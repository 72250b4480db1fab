"""Quality and speed of the fast generators (512 / 256-px preview heads, the live-view student) against the released
1024-px output, on held-out codes of three kinds.

    python -m training.evaluate.preview [--faces 16] [--targets 16] [--also-live OLD.onnx] [--json docs/results/preview_eval.json]

Codes: W of held-out seeds (psi 0.7); W+ drawn like the encoder's training targets (truncation, per-slot noise,
style mixing) from a seed no training run used; the engine's one-pass inversions of the real faces of the
shared set (photos and video frames; never trained on); and `--targets` held-out UTKFace photos inverted like the
app's morph targets (quality mode: training/data/morph_targets.py), the codes the live view renders at full strength.
`--also-live` adds a row for another live student's ONNX (an earlier one), so old and new are measured in one run. For each generator and set: PSNR and SSIM against the
1024-px render downscaled (INTER_AREA) to its size, dlib identity distance between them (256-px images), and the
median synthesis ms at 1 and 2 threads and its MACs, all in one run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import write_json_atomic
from engine.benchmark import format_table, machine_info, median_ms
from engine.generator import LIVE_SYNTHESIS, SYNTHESIS_MODELS, Generator
from engine.models import load_manifest, resolve_model
from training.evaluate.dlib_judge import DlibIdentity
from training.evaluate.image_metrics import ssim_map

GENERATORS = (("1024 px (released)", 1024, False), ("512 px (preview head)", 512, False),
              ("256 px (preview head)", 256, False), ("256 px (live student)", 256, True))


def real_face_codes(threads: int = 2, per_clip: int = 3) -> list[np.ndarray]:
    """The encoder's one pass (network + corrections) on the shared photos and `per_clip` frames of each clip."""
    from engine.align import align_face
    from engine.image_io import load_image
    from engine.inversion.encoder import Encoder
    from engine.landmarks import FaceLandmarker
    from training.data.face_sets import PHOTOS, VIDEOS, video_frames

    enc = Encoder.load(threads)
    images = [load_image(p) for p in sorted(PHOTOS.iterdir()) if p.suffix.lower() in (".jpg", ".png")]
    images += [frame for _, frame in video_frames(VIDEOS, per_clip)]
    codes = []
    with FaceLandmarker(max_faces=1) as lm:
        for image in images:
            faces = lm.detect(image)
            if faces:
                codes.append(enc.invert_face(align_face(image, faces[0], 256), faces[0]))
    return codes


def encoder_like_codes(n: int, seed: int = 777) -> list[np.ndarray]:
    """W+ drawn like the encoder's training targets (training/data/samples.py), from a held-out seed."""
    from training.data.samples import SampleRecipe, sample_wplus, w_stats

    gen = Generator.load(2)
    _, w_std = w_stats(gen.map)
    wplus, _ = sample_wplus(np.random.default_rng(seed), gen.map, gen.w_avg, w_std, n, SampleRecipe())
    return list(wplus[:, None])


def unlisted_generator(path: Path, threads: int) -> Generator:
    """A 256-px synthesis ONNX that is not in the manifest (an earlier student), with the shipped mapping."""
    from engine.onnx_session import make_session

    g = Generator.load(threads, resolution=256)
    return Generator(make_session(path, threads), g.mapping, g.w_avg, 256, path.name)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=16, help="codes per generated set")
    ap.add_argument("--seed", type=int, default=2000)
    ap.add_argument("--per-clip", type=int, default=3, help="video frames per shared clip in the real-face set")
    ap.add_argument("--targets", type=int, default=16, help="held-out UTKFace photos inverted like morph targets (0: none)")
    ap.add_argument("--also-live", type=Path, help="another live student's ONNX, measured in the same run")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path, default=Path("docs/results/preview_eval.json"))
    args = ap.parse_args(argv)
    full = Generator.load(2)
    ident = DlibIdentity()
    sets = {"W, held-out seeds": [full.sample_w(args.seed + i, 0.7) for i in range(args.faces)],
            "W+ like the encoder's targets": encoder_like_codes(args.faces),
            "real-face inversions": real_face_codes(2, args.per_clip)}
    if args.targets:
        from training.data.morph_targets import invert_targets
        from training.data.utkface import UTK_DIR

        if UTK_DIR.is_dir():
            sets["UTKFace targets (quality mode)"] = list(invert_targets("heldout", args.targets)["wplus"][:, None])
    refs = {name: [full.render(w) for w in codes] for name, codes in sets.items()}
    small = lambda x: cv2.cvtColor(cv2.resize(x, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)  # noqa: E731
    manifest = load_manifest()
    rows = []
    rows_to_run = [(label, res, live, None) for label, res, live in GENERATORS]
    if args.also_live:
        rows_to_run.append((f"256 px (live student: {args.also_live.name})", 256, True, args.also_live))
    for label, res, live, path in rows_to_run:
        name = LIVE_SYNTHESIS if live else SYNTHESIS_MODELS[res]
        if name not in manifest and path is None:
            continue
        gens = {t: Generator.load(t, resolution=res, live=live) if path is None else unlisted_generator(path, t)
                for t in (1, 2)}
        timing = {f"ms_{t}_thread{'s' if t > 1 else ''}": round(median_ms(lambda: gens[t].synthesize(sets["W, held-out seeds"][0]), args.repeats), 1)
                  for t in (1, 2)}
        from engine.model_stats import onnx_stats

        stats = onnx_stats(path or resolve_model(name))
        for set_name, codes in sets.items():
            psnrs, ssims, ids = [], [], []
            for w, ref in zip(codes, refs[set_name]):
                img = gens[2].render(w)
                target = cv2.resize(ref, (res, res), interpolation=cv2.INTER_AREA) if res != 1024 else ref
                err = np.mean((img.astype(np.float64) - target) ** 2)
                psnrs.append(10 * np.log10(255.0**2 / max(err, 1e-12)))
                ssims.append(float(ssim_map(img, target).mean()))
                ids.append(ident.distance(small(img), small(ref))[0])
            rows.append({"generator": label, "codes": f"{set_name} ({len(codes)})", **timing,
                         "GMACs": round(stats.macs / 1e9, 2) if stats else "n/a",
                         "psnr_db": round(float(np.mean([min(p, 99.0) for p in psnrs])), 2),
                         "ssim": round(float(np.mean(ssims)), 3), "dlib_id_dist": round(float(np.mean(ids)), 3),
                         "dlib_max": round(float(np.max(ids)), 3)})
    print(format_table(rows, list(rows[0])))
    write_json_atomic(args.json, {"faces": args.faces, "seeds": [args.seed, args.seed + args.faces - 1],
                                  "machine": machine_info(), "rows": rows,
                                  "command": "python -m training.evaluate.preview " + " ".join(argv or [])})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
