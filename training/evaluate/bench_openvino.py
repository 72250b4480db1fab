"""Synthesis latency of the official OpenVINO IR beside our ONNX export: the comparison in docs/BENCHMARKS.md's
generator table. It lives here, not in `celeblook bench generator`, because the engine ships without openvino and
the IR is found by training code (training/convert/random_face_weights.py).

    python -m training.evaluate.bench_openvino [--threads 1 2] [--repeats 10] [--json generator.json]
"""
from __future__ import annotations

import argparse

import numpy as np

from engine.benchmark import format_table, median_ms, write_json
from engine.commands.bench import bench_generator
from engine.generator import Generator
from training.convert.random_face_weights import ir_dir


def openvino_synthesis(threads: int):
    """Compiled OpenVINO IR synthesis (f32) or None when openvino / the IR files are not available."""
    try:
        import openvino as ov

        folder = ir_dir(allow_fetch=False)
    except (ImportError, FileNotFoundError):
        return None
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    return ov.Core().compile_model(str(folder / "SynthesisNetwork.xml"), "CPU", config)


def bench_openvino(args: argparse.Namespace) -> dict:
    """`celeblook bench generator`'s report with an OpenVINO IR row after each onnxruntime row (same latent)."""
    report = bench_generator(args)
    w = Generator.load(threads=1).sample_w(0, 0.7)[None].astype(np.float32)
    rows = []
    for row in report["rows"]:
        rows.append(row)
        threads = row["threads"]
        ov_model = openvino_synthesis(threads)
        if ov_model is None:
            rows.append({"runtime": "openvino IR f32", "threads": threads, "median_ms": "n/a (openvino absent)"})
            continue
        ms = median_ms(lambda: ov_model(w), args.repeats)
        rows.append({"runtime": "openvino IR f32", "threads": threads, "median_ms": round(ms, 1),
                     "fps": round(1000 / ms, 1)})
    return {**report, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to try (default 1 2)")
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per row (default 10)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    report = bench_openvino(args)
    print(format_table(report["rows"], list(dict.fromkeys(k for r in report["rows"] for k in r))))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
