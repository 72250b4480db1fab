"""`celeblook bench`: benchmark commands that print a table (and write JSON with --json).

  celeblook bench [pipeline]  per-stage latency and end-to-end fps of the live pipeline on the dev videos,
                              at 1 thread and 2; params and MACs per model; --check tests resources/budgets.json
  celeblook bench generator   1024-px synthesis latency (onnxruntime), 1 and 2 threads; against the official
                              OpenVINO IR: python -m training.evaluate.bench_openvino (needs `train`)
  celeblook bench encoder     inversion encoder latency per aligned face
  celeblook bench refine      quality mode for stills (engine/inversion/refine.py): one objective step, one colour
                              anchor and the whole --steps run on a photo's aligned face; then the refined latent's
                              fit to the live student (match_student), what a dropped photo waits for before the
                              student renders it
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.benchmark import format_table, machine_info, median_ms, write_json
from engine.errors import BadInputError, CelebLookError
from engine.generator import Generator
from engine.inversion.refine import StudentFit
from engine.live import LIVE_GENERATORS


def bench_generator(args: argparse.Namespace) -> dict:
    """1024-px synthesis latency of the shipped ONNX generator per thread count (--threads, --repeats)."""
    w = Generator.load(threads=1).sample_w(0, 0.7)[None].astype(np.float32)
    rows = []
    for threads in args.threads:
        gen = Generator.load(threads=threads)
        ms = median_ms(lambda: gen.synthesize(w), args.repeats)
        rows.append({"runtime": "onnxruntime fp32", "threads": threads, "median_ms": round(ms, 1),
                     "fps": round(1000 / ms, 1)})
    return {"benchmark": "generator", "resolution": 1024, "batch": 1, "repeats": args.repeats,
            "machine": machine_info(), "rows": rows}


def bench_photo(args: argparse.Namespace) -> Path:
    """--photo (the documented numbers used obama.jpg of the shared test photos); BadInputError when absent."""
    if not args.photo:
        raise BadInputError(f"bench {args.target} needs a photo with a face: --photo PHOTO (the documented numbers "
                            "used the shared obama.jpg, e.g. ../shared/data/faces/obama.jpg)")
    return Path(args.photo)


def bench_encoder(args: argparse.Namespace) -> dict:
    """Inversion encoder (E_I + f, ONNX) latency per aligned face, from the 256-px crop (resize included); for the
    shipped encoder also the face recogniser alone (recognition crop included), the whole one pass
    (Encoder.invert_face: network + landmark and identity corrections) on a photo's crop (--photo) and the identity
    feedback's measurement on the one pass's reconstruction (Encoder.identity_step: landmarks on the render, the
    recogniser, the map; the render itself is the generator's benchmark)."""
    from engine.align import align_face
    from engine.inversion.encoder import Encoder, detect_face
    from engine.image_io import load_image
    from engine.landmarks import FaceLandmarker

    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    photo = bench_photo(args)
    with FaceLandmarker() as lm:
        image = load_image(photo)
        face = detect_face(image, lm, str(photo))
    crop = align_face(image, face, 256)
    rows = []
    for threads in args.threads:
        enc = Encoder.load(threads=threads, path=args.encoder)
        ms = median_ms(lambda: enc.encode(noise), args.repeats)
        rows.append({"stage": "encoder network", "runtime": "onnxruntime fp32", "threads": threads,
                     "input_px": enc.input_size, "median_ms": round(ms, 2), "fps": round(1000 / ms, 1)})
        if enc.face_id is not None:
            from engine.align import crop_points

            pts = crop_points(face, crop)[:, :2] * crop.size
            ms = median_ms(lambda: enc.face_id.embed(crop.image, pts), args.repeats)
            rows.append({"stage": "face recogniser", "runtime": "onnxruntime fp32", "threads": threads,
                         "input_px": enc.face_id.input_size, "median_ms": round(ms, 2), "fps": round(1000 / ms, 1)})
        ms = median_ms(lambda: enc.invert_face(crop, face), args.repeats)
        rows.append({"stage": "one pass (invert_face)", "runtime": "onnxruntime fp32", "threads": threads,
                     "corrections": "+".join(n for n, c in (("landmarks", enc.correction), ("identity", enc.identity))
                                             if c is not None) or "none",
                     "median_ms": round(ms, 2), "fps": round(1000 / ms, 1)})
        if enc.feedback is not None:
            from engine.inversion.encoder import realign_render
            from engine.generator import Generator, to_uint8_rgb

            embedding = enc.face_embedding(crop, face)
            render = to_uint8_rgb(Generator.load(threads).synthesize(enc.invert_face(crop, face, embedding)))[0]
            with FaceLandmarker() as lm:
                recon = realign_render(np.ascontiguousarray(render[..., ::-1]), lm, crop.size)[0]
                ms = median_ms(lambda: enc.identity_step(embedding, recon, lm), args.repeats)
            rows.append({"stage": "identity feedback step (no render)", "runtime": "onnxruntime fp32",
                         "threads": threads, "input_px": crop.size, "median_ms": round(ms, 2),
                         "fps": round(1000 / ms, 1)})
    return {"benchmark": "encoder", "batch": 1, "repeats": args.repeats, "photo": photo.name,
            "machine": machine_info(), "rows": rows}


def bench_refine(args: argparse.Namespace) -> dict:
    """The quality mode's parts and the whole run (`--steps` steps from the encoder's one pass) on a photo's crop
    (--photo)."""
    import time

    from engine.align import align_face, crop_points
    from engine.inversion.encoder import Encoder, detect_face
    from engine.image_io import load_image
    from engine.landmarks import FaceLandmarker
    from engine.edits import DirectionSet
    from engine.inversion.refine import (IdentityTerm, Refiner, StudentMatch, colour_anchor, crop_target, match_student,
                                         refine_latent)

    photo = bench_photo(args)
    with FaceLandmarker() as lm:
        image = load_image(photo)
        face = detect_face(image, lm, str(photo))
    crop = align_face(image, face, 256)
    points = crop_points(face, crop)
    rows = []
    for threads in args.threads:
        enc, refiner = Encoder.load(threads), Refiner.load(threads)
        w = enc.invert_face(crop, face)
        target, zero = crop_target(crop.image), np.zeros((1, 3, 256, 256), np.float32)
        identity = IdentityTerm.for_face(points)
        step = median_ms(lambda: refiner.loss_and_grad(w, target, zero, identity), args.repeats)
        anchor = median_ms(lambda: colour_anchor(refiner.full.synthesize(w), refiner.preview.synthesize(w)),
                           max(1, args.repeats // 3))
        t0 = time.perf_counter()
        for _ in range(2):
            refined = refine_latent(refiner, crop.image, w, args.steps, points=points)[0]
        whole = (time.perf_counter() - t0) * 500
        match = StudentMatch.load(refiner.preview, DirectionSet.load(), threads)
        fits = {}
        for fit in args.fit:
            t0 = time.perf_counter()
            with FaceLandmarker() as lm:
                match_student(match, refined, lm, fit, (crop.image, points))
            fits[fit.tag] = round(time.perf_counter() - t0, 2)
        rows.append({"threads": threads, "objective_step_ms": round(step, 1), "colour_anchor_ms": round(anchor, 1),
                     "steps": args.steps, "quality_mode_s": round(whole / 1000, 2), "student_fit_s": fits})
    return {"benchmark": "refine", "photo": photo.name, "machine": machine_info(), "rows": rows}


def fit_recipe(tag: str) -> StudentFit:
    """--fit's type: a StudentFit from its tag, or argparse's own clear error."""
    try:
        return StudentFit.from_tag(tag)
    except BadInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


TARGETS = {"pipeline": None, "generator": bench_generator, "encoder": bench_encoder,
           "refine": bench_refine}  # pipeline: below


def run(args: argparse.Namespace) -> int:
    if args.target not in TARGETS:
        raise CelebLookError(f"unknown benchmark {args.target!r}; choose from {', '.join(TARGETS)}")
    if args.frames < 1 or args.repeats < 1 or any(t < 0 for t in args.threads):
        raise BadInputError("--frames and --repeats must be >= 1 and --threads >= 0 "
                            f"(got {args.frames}, {args.repeats}, {args.threads})")
    if args.target == "pipeline":
        from engine.pipeline_bench import bench_pipeline, check_budgets

        report = bench_pipeline(args)
    else:
        report = TARGETS[args.target](args)
    for title, rows in report.get("tables", {"": report.get("rows", [])}).items():
        if title:
            print(f"\n{title}")
        print(format_table(rows, list(dict.fromkeys(k for r in rows for k in r))))
    failures = check_budgets(report, args.check) if args.target == "pipeline" and args.check is not None else []
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    for line in failures:
        print(f"OVER BUDGET: {line}")
    return 1 if failures else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: print a table of median latencies (and JSON)")
    p.add_argument("target", nargs="?", default="pipeline", help=f"what to measure: {', '.join(TARGETS)}")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to try (default 1 2)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per row (default 10)")
    p.add_argument("--videos", nargs="+", help="pipeline (required): clips to run (the budgets' clips: d18.mp4 "
                                               "d20.mp4 s18.mp4 of the shared data)")
    p.add_argument("--frames", type=int, default=30, help="pipeline: frames per clip and setting (default 30)")
    p.add_argument("--resolution", type=int, default=None,
                   help="pipeline: generator resolution (default 256; other than 256: the released network)")
    p.add_argument("--generators", nargs="+", choices=LIVE_GENERATORS, default=None,
                   help="pipeline: live generators to run, each in every mode; the first is judged against the "
                        "budgets (default: live, the shipped live-view generator)")
    p.add_argument("--photo-target", action="store_true",
                   help="pipeline: morph as toward a dropped photo before its fit to the live student (a refined "
                        "latent: the live view renders it with the preview head; fitted, it renders like a built-in "
                        "target)")
    p.add_argument("--no-identity-feedback", action="store_true",
                   help="pipeline: run the live loop without its identity feedback (an A/B of its cost)")
    p.add_argument("--check", nargs="*", choices=["laptop", "phone"], default=None,
                   help="pipeline: exit 1 when over the named budgets (no name: every budget)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--encoder", help="encoder: time this ONNX export instead of the shipped model")
    p.add_argument("--steps", type=int, default=20, help="refine: quality-mode steps of the whole run (default 20)")
    p.add_argument("--fit", nargs="+", type=fit_recipe, default=[StudentFit()], metavar="RECIPE",
                   help=f"refine: time the fit to the live student with these recipes (StudentFit.tag; default "
                        f"{StudentFit().tag}, as the app)")
    p.add_argument("--photo", help="refine, encoder (required): the photo whose face is refined / inverted (the "
                                   "documented numbers: the shared obama.jpg)")
    p.set_defaults(func=run)
