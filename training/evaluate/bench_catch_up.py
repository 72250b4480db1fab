"""Which of the live changes costs face refreshes: the app's loop (background render, every frame, 1 thread) toward
the seed-0 face with the catch-up and the head-pose drive switched off one after the other, alternated.

    python -m training.evaluate.bench_catch_up [--repeats 3] [--frames 60] [--json docs/results/bench_catch_up_ab.json]

Clips: d18, d20, s18 of the shared data. Prints one line per run; the JSON keeps every run (fps, face refreshes/s,
capture-to-face latency, the paste stage's median ms).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.edits import Reenactment
from engine.inversion.targets import builtin_targets
from engine.live import LiveModels, LiveSettings
from engine.pipeline_bench import run_clips
from training.data.face_sets import VIDEOS

VARIANTS = {"now": {}, "no catch-up": {"catch_up": False},
            "no catch-up, encoder pose": {"catch_up": False, "reenactment": Reenactment(pose_share=0.0)}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=60, help="frames of each clip per run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    clips = [VIDEOS / f"{c}.mp4" for c in ("d18", "d20", "s18")]
    models = LiveModels.load(1)
    target = builtin_targets(models.generator, seeds=(0,))[0].wplus
    out = {k: [] for k in VARIANTS}
    for rep in range(args.repeats):
        for name, change in VARIANTS.items():
            r = run_clips(models, clips, args.frames, LiveSettings(reuse=False, target=target, **change), background=True)
            out[name].append({k: r[k] for k in ("fps", "refresh_hz", "latency_ms")} | {"paste_ms": r["median_ms"]["paste"]})
            print(rep, name, {k: round(v, 1) for k, v in out[name][-1].items()}, flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
