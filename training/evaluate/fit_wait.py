"""How long a dropped photo waits for its fit to the live student in the app's setting.

One thread per model, the live loop running beside the fit on a clip fed at its own rate (as from a webcam), morphing
toward that photo on the preview head (what the window shows until the fit is done). `celeblook bench refine` times
the fit alone.

    python -m training.evaluate.fit_wait --photo ../shared/data/faces/biden.jpg \
        --fit x40c2of24lr0.03p1 x60c3of24lr0.02p0 --json docs/results/fit_wait.json

Prints each recipe's seconds alone and beside the loop, and the loop's frames a second meanwhile; `--json` writes them.
"""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from engine.align import align_face, crop_points
from engine.atomic import write_json_atomic
from engine.benchmark import provenance
from engine.commands.bench import fit_recipe
from engine.image_io import load_image
from engine.inversion.encoder import detect_face
from engine.inversion.inverter import InversionOptions
from engine.inversion.refine import StudentFit, match_student
from engine.landmarks import FaceLandmarker
from engine.live import LiveModels, LivePipeline, LiveSettings
from engine.video import VideoReader
from training.data.face_sets import VIDEOS


def live_loop(models: LiveModels, clip: Path, settings: LiveSettings, stop: threading.Event, shown: list) -> None:
    """The app's loop on `clip`, over and over until `stop`: frames due at the clip's rate, those missed while busy
    dropped; `shown[0]` counts the frames processed."""
    while not stop.is_set():
        with VideoReader(clip) as reader, LivePipeline(models, background_render=True) as pipe:
            start = time.perf_counter()
            for frame in reader.frames(10_000):
                if stop.is_set():
                    return
                due = start + frame.timestamp_ms / 1000.0
                if time.perf_counter() > due + 0.04:
                    continue  # a webcam's frame that arrived while the loop was busy
                time.sleep(max(0.0, due - time.perf_counter()))
                pipe.process(frame.image, frame.timestamp_ms, settings)
                shown[0] += 1


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, required=True, help="the dropped photo")
    ap.add_argument("--fit", nargs="+", type=fit_recipe, default=[StudentFit()], metavar="RECIPE",
                    help="recipes (StudentFit.tag) to time, in this order")
    ap.add_argument("--clip", default="d20.mp4", help="the webcam stand-in (a clip of ../shared/data/video)")
    ap.add_argument("--cache", type=Path, default=Path("runs/live_morph_targets"), help="target cache folder")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    models = LiveModels.load(threads=1)  # the app's setting: one thread per model
    with FaceLandmarker(max_faces=4, expressions=True) as lm:
        target = models.target_cache(lm, InversionOptions(quality_steps=20), args.cache, None).load(args.photo)
        image = load_image(args.photo)
        face = detect_face(image, lm, str(args.photo))
        crop = align_face(image, face, 256)
        photo = (crop.image, crop_points(face, crop))

        def fit_seconds(fit: StudentFit) -> float:
            t0 = time.perf_counter()
            match_student(models.student_match, target.wplus, lm, fit, photo)
            return time.perf_counter() - t0

        rows = [{"fit": fit.tag, "alone_s": round(fit_seconds(fit), 1)} for fit in args.fit]
        settings = LiveSettings(target=target.wplus, target_refined=True, strength=1.0, preset="reenact")
        stop, shown = threading.Event(), [0]
        loop = threading.Thread(target=live_loop, args=(models, VIDEOS / args.clip, settings, stop, shown), daemon=True)
        loop.start()
        time.sleep(3.0)  # the loop's models warm
        try:
            for row, fit in zip(rows, args.fit):
                before, t0 = shown[0], time.perf_counter()
                row["beside_live_s"] = round(fit_seconds(fit), 1)
                row["live_fps"] = round((shown[0] - before) / (time.perf_counter() - t0), 1)
        finally:
            stop.set()
            loop.join(10)
    for row in rows:
        print(f"{row['fit']}: {row['alone_s']} s alone, {row['beside_live_s']} s beside the live loop "
              f"({row['live_fps']} frames/s meanwhile)")
    if args.json:
        write_json_atomic(args.json, {"photo": args.photo.name, "clip": args.clip, "rows": rows,
                                      **provenance("training.evaluate.fit_wait", argv)})


if __name__ == "__main__":
    main()
