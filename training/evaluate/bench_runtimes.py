"""Which runtime and settings each live model should run with, by measurement: onnxruntime with spinning threads or
sleeping ones, and OpenVINO reading the same ONNX file, at 1 and 2 threads; alone, and beside a second thread that
keeps the other cores busy the way the app's per-frame loop does (landmarks + encoder on the same 2 cores).

    python -m training.evaluate.bench_runtimes [--repeats 15] [--json docs/results/bench_runtimes.json]

The engine ships onnxruntime only (OpenVINO is in the `train` extra); a row where OpenVINO wins clearly is the
case for adding it. Prints one table: median ms per model, runtime, threads, alone / contended.
"""
from __future__ import annotations

import argparse
import threading

import numpy as np

from engine.benchmark import format_table, machine_info, median_ms, write_json
from engine.generator import LIVE_SYNTHESIS, SYNTHESIS_MODELS
from engine.models import load_manifest, resolve_model
from engine.onnx_session import make_session


def inputs_for(name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if name == "inversion_encoder":
        size = int(make_session(resolve_model(name), 1).get_inputs()[0].shape[-1])
        return {"image": rng.random((1, 3, size, size), dtype=np.float32)}
    return {"wplus": (0.5 * rng.standard_normal((1, 23, 512))).astype(np.float32)}


def runners(name: str, threads: int):
    """(runtime label, callable) pairs for one model."""
    path, feed = resolve_model(name), inputs_for(name)
    out = []
    for spin in (True, False):
        sess = make_session(path, threads, spin=spin)
        out.append((f"onnxruntime, {'spinning' if spin else 'sleeping'} threads", lambda s=sess: s.run(None, feed)))
    try:
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                              "INFERENCE_PRECISION_HINT": "f32"})
        out.append(("openvino (the same ONNX), f32", lambda: compiled(list(feed.values()))))
    except ImportError:
        pass
    return out


class Busy:
    """A thread running `fn` in a loop until stopped: the other half of the app's work."""

    def __init__(self, fn):
        self.fn, self.stop = fn, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stop.is_set():
            self.fn()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    manifest = load_manifest()
    models = [m for m in (LIVE_SYNTHESIS, SYNTHESIS_MODELS[256], "inversion_encoder") if m in manifest]
    encoder = make_session(resolve_model("inversion_encoder"), 1)
    enc_feed = inputs_for("inversion_encoder")
    gen = make_session(resolve_model(models[0]), 1)
    gen_feed = inputs_for(models[0])
    rows = []
    for name in models:
        # the contending thread: the encoder beside a generator, the live generator beside the encoder
        other = (lambda: gen.run(None, gen_feed)) if name == "inversion_encoder" else (lambda: encoder.run(None, enc_feed))
        for threads in (1, 2):
            for runtime, fn in runners(name, threads):
                fn()  # warm-up
                alone = median_ms(fn, args.repeats)
                with Busy(other):
                    contended = median_ms(fn, args.repeats)
                rows.append({"model": name, "runtime": runtime, "threads": threads, "alone_ms": round(alone, 1),
                             "contended_ms": round(contended, 1)})
                print(rows[-1], flush=True)
    print(format_table(rows, list(rows[0])))
    if args.json:
        write_json(args.json, {"benchmark": "runtimes", "machine": machine_info(), "rows": rows,
                               "command": "python -m training.evaluate.bench_runtimes " + " ".join(argv or [])})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
