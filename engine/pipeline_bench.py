"""`celeblook bench pipeline`: the live pipeline measured stage by stage on video clips, against budgets.

Per thread count, the clips run in four modes: the generator inline ("sync") or on its own thread
("background", the app's mode: engine.background_render), each with the app's reuse rule (skip the generator
while the edited latent is still) or asking for a new face every frame. Stages: decode, landmarks, align,
encode (encoder + skin-tone match), edit, generate (in background mode: the time the loop waits for it, ~0
after the first face), paste, display (BGR -> RGB for the screen). fps = frames / wall time of the loop, clips read as fast as they decode;
"face refreshes/s" = generator runs / wall time: how often the shown face's content changes. A built-in target
is set, so every frame is really morphed (`--photo-target`: set as a dropped photo's refined latent is before its fit
to the live student, which the live view renders with the preview head: engine.live.LiveModels; once fitted, a photo
target renders with the student like the built-in one); the
identity feedback is on as in the app (`--no-identity-feedback`: off, for an A/B on one machine). Budgets:
resources/budgets.json.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

from engine.benchmark import machine_info
from engine.errors import BadInputError
from engine.live import STAGES, LiveModels, LivePipeline, LiveSettings, preview_resolution
from engine.model_stats import onnx_stats
from engine.models import RESOURCES_DIR, resolve_model
from engine.inversion.targets import builtin_targets
from engine.video import VideoReader

BUDGETS_PATH = RESOURCES_DIR / "budgets.json"
DEV_CLIPS = ("d18.mp4", "d20.mp4", "s18.mp4")
ALL_STAGES = ("decode", *STAGES, "display")
APP_MODE = "background, every frame"  # what the desktop app runs: the laptop budget is checked on it
EVERY_FRAME = "sync, every frame"  # one generator run per frame, inline: the phone budget's per-frame model cost
MODES = (("sync, reuse", False, LiveSettings()), (EVERY_FRAME, False, LiveSettings(reuse=False)),
         ("background, reuse", True, LiveSettings()), (APP_MODE, True, LiveSettings(reuse=False)))


def bench_videos(videos: list[str] | None) -> list[Path]:
    """The clips named by --videos (the budgets were measured on DEV_CLIPS of the shared data); BadInputError when
    none is named or one is missing."""
    if not videos:
        raise BadInputError("bench pipeline needs the clips to run: --videos CLIP... (the budgets' clips are "
                            f"{', '.join(DEV_CLIPS)} of the shared data, e.g. ../shared/data/video/d18.mp4)")
    missing = [v for v in videos if not Path(v).is_file()]
    if missing:
        raise BadInputError(f"video not found: {', '.join(missing)}")
    return [Path(v) for v in videos]


def run_clips(models: LiveModels, videos: list[Path], frames: int, settings: LiveSettings,
              background: bool = False) -> dict:
    """Median ms per stage over frames with a face, end-to-end fps over all frames, generator runs, and the
    capture-to-face latency: from the moment a frame is decoded to the display of a face rendered from it (median
    and 90th percentile over frames with a face)."""
    times = {k: [] for k in ALL_STAGES}
    latency = []
    total, count, renders, faces = 0.0, 0, 0, 0
    for video in videos:
        with VideoReader(video) as reader, LivePipeline(models, background_render=background) as pipe:
            captured = {}  # frame number -> when it was decoded
            for _ in range(frames):
                t0 = time.perf_counter()
                time.sleep(pipe.frame_wait())  # a paced loop leaves the generator its share
                frame = reader.read()
                t1 = time.perf_counter()
                if frame is None:
                    break
                captured[pipe.frames + 1] = t1
                result = pipe.process(frame.image, frame.timestamp_ms, settings)
                t2 = time.perf_counter()
                cv2.cvtColor(result.frame, cv2.COLOR_BGR2RGB)
                t3 = time.perf_counter()
                total += t3 - t0
                count += 1
                if result.face_found:
                    faces += 1
                    for k in STAGES:
                        times[k].append(result.timings[k])
                    times["decode"].append(1000 * (t1 - t0))
                    times["display"].append(1000 * (t3 - t2))
                    if result.face_frame in captured:
                        latency.append(1000 * (t3 - captured[result.face_frame]))
            renders += pipe.renders
    return {"frames": count, "faces": faces, "renders": renders, "fps": count / total if total else 0.0,
            "refresh_hz": renders / total if total else 0.0,
            "median_ms": {k: float(np.median(v)) if v else 0.0 for k, v in times.items()},
            "latency_ms": float(np.median(latency)) if latency else 0.0,
            "latency_p90_ms": float(np.percentile(latency, 90)) if latency else 0.0}


def bench_pipeline(args) -> dict:
    """Every mode at every thread count for each generator in --generators (the first is judged against the
    budgets): an A/B of live generators in one run."""
    budgets = json.loads(BUDGETS_PATH.read_text())
    videos = bench_videos(args.videos)
    kinds = args.generators or ["live"]
    runs, stage_rows, fps_rows, model_rows = [], [], [], []
    feedback = not args.no_identity_feedback
    photo = args.photo_target
    for kind in kinds:
        for threads in args.threads:
            models = LiveModels.load(threads, resolution=args.resolution, generator=kind)
            target = builtin_targets(models.generator, seeds=(0,))[0].wplus
            shown = models.renders_with(LiveSettings(target=target, target_refined=photo))
            label = f"{kind} ({shown.name})"  # the model that rendered: says when "live" fell back to the preview
            for mode, background, settings in MODES:
                r = run_clips(models, videos, args.frames, settings.with_(target=target, target_refined=photo,
                                                                          identity_feedback=feedback), background)
                runs.append({"generator": label, "threads": threads, "mode": mode, **r})
                stage_rows.append({"generator": label, "threads": threads, "mode": mode,
                                   **{k: round(v, 1) for k, v in r["median_ms"].items()}})
                fps_rows.append({"generator": label, "threads": threads, "mode": mode, "frames": r["frames"],
                                 "with face": r["faces"], "generator runs": r["renders"], "fps": round(r["fps"], 1),
                                 "face refreshes/s": round(r["refresh_hz"], 1),
                                 "capture-to-face ms": round(r["latency_ms"]),
                                 "p90 ms": round(r["latency_p90_ms"])})
        stats = onnx_stats(resolve_model(shown.name))
        model_rows.append({"model": f"generator ({kind}, {shown.resolution} px)",
                           "file": resolve_model(shown.name).name,
                           "params_M": round(stats.params / 1e6, 2) if stats else "n/a (needs onnx)",
                           "GMACs": round(stats.macs / 1e9, 3) if stats else "n/a (needs onnx)"})
    stats = onnx_stats(resolve_model("inversion_encoder"))
    model_rows[:0] = [{"model": "landmarks", "file": "face_landmarker.task", "params_M": "n/a (TFLite)",
                       "GMACs": "n/a (TFLite)"},
                      {"model": "encoder", "file": resolve_model("inversion_encoder").name,
                       "params_M": round(stats.params / 1e6, 2) if stats else "n/a (needs onnx)",
                       "GMACs": round(stats.macs / 1e9, 3) if stats else "n/a (needs onnx)"}]
    judged = [r for r in runs if r["generator"] == runs[0]["generator"]]
    laptop = next((r for r in judged if r["threads"] == budgets["laptop"]["threads"] and r["mode"] == APP_MODE), None)
    phone = next((r for r in judged if r["threads"] == budgets["phone"]["threads"] and r["mode"] == EVERY_FRAME), None)
    budget_rows = []
    if laptop:
        where = f"{APP_MODE} (the app), {laptop['threads']} thread(s) per model, {laptop['generator']}"
        budget_rows.append({"budget": "laptop", "measure": f"fps, {where}", "value": round(laptop["fps"], 1),
                            "limit": f">= {budgets['laptop']['min_fps']}",
                            "ok": laptop["fps"] >= budgets["laptop"]["min_fps"]})
        budget_rows.append({"budget": "laptop", "measure": f"face refreshes/s, {where}",
                            "value": round(laptop["refresh_hz"], 1),
                            "limit": f">= {budgets['laptop']['min_face_refresh_hz']}",
                            "ok": laptop["refresh_hz"] >= budgets["laptop"]["min_face_refresh_hz"]})
        budget_rows.append({"budget": "laptop", "measure": f"capture-to-face latency ms (median), {where}",
                            "value": round(laptop["latency_ms"]),
                            "limit": f"<= {budgets['laptop']['max_latency_ms']}",
                            "ok": laptop["latency_ms"] <= budgets["laptop"]["max_latency_ms"]})
    if phone:
        ms = sum(phone["median_ms"][k] for k in ("landmarks", "encode", "generate"))
        budget_rows.append({"budget": "phone", "measure": "model ms/frame (landmarks+encode+generate), 1 thread, "
                                                          f"{phone['generator']}",
                            "value": round(ms, 1), "limit": f"<= {budgets['phone']['max_model_ms']}",
                            "ok": ms <= budgets["phone"]["max_model_ms"]})
    fps = laptop["fps"] if laptop else runs[0]["fps"]
    return {"benchmark": "pipeline", "fps": round(fps, 2), "generators": kinds,
            "videos": [str(v) for v in videos], "frames_per_clip": args.frames,
            "identity_feedback": feedback, "photo_target": photo, "machine": machine_info(),
            "runs": runs, "budgets": budget_rows,
            "tables": {"per-stage median ms (frames with a face)": stage_rows, "end to end": fps_rows,
                       "models": model_rows, "budgets": budget_rows}}


def check_budgets(report: dict, names: list[str]) -> list[str]:
    """Lines describing each named budget (no names: every budget) that the report misses."""
    names = names or sorted({b["budget"] for b in report["budgets"]})
    return [f"{b['budget']}: {b['measure']} = {b['value']} (limit {b['limit']})"
            for b in report["budgets"] if b["budget"] in names and not b["ok"]]
