"""Try int8 static quantisation of the synthesis models and measure speed and quality against fp32.

    python -m training.export.quantize_generator [--resolution 256] [--calib 32] [--out-dir /tmp/quant]

onnxruntime's static quantisation (QDQ, per-channel int8 weights, uint8 activations calibrated with MinMax on
W+ codes near W). Variants that do not pay (slower, or PSNR against fp32 < 30 dB) are reported and not
shipped. Prints a table (and --json): median ms at 1 and 2 threads and PSNR / max error against fp32.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.atomic import write_json_atomic
from engine.benchmark import format_table, machine_info, median_ms
from engine.generator import SYNTHESIS_MODELS, Generator
from engine.models import resolve_model
from engine.onnx_session import make_session


def wplus_samples(gen: Generator, n: int, seed: int) -> list[np.ndarray]:
    """n W+ codes (1, 23, 512): truncated W (psi 0.5..1) plus small per-slot noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w = gen.sample_w(int(rng.integers(1 << 30)), float(rng.uniform(0.5, 1.0)))
        out.append((np.repeat(w[None, None], 23, axis=1) + 0.05 * rng.standard_normal((1, 23, 512))).astype(np.float32))
    return out


def quantize(src: Path, dst: Path, calib: list[np.ndarray]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"wplus": x}

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(4.0 / np.mean((a - b) ** 2)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/celeblook_quant"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    gen = Generator.load(2)
    calib, test = wplus_samples(gen, args.calib, 0), wplus_samples(gen, 4, 1)
    rows = []
    for res in args.resolution:
        fp32 = resolve_model(SYNTHESIS_MODELS[res])
        int8 = args.out_dir / f"{fp32.stem}_int8.onnx"
        quantize(fp32, int8, calib)
        ref = [make_session(fp32, 2).run(None, {"wplus": x})[0] for x in test]
        for name, path in (("fp32", fp32), ("int8 QDQ", int8)):
            outs = [make_session(path, 2).run(None, {"wplus": x})[0] for x in test]
            quality = {"psnr_vs_fp32": round(min(psnr(o, r) for o, r in zip(outs, ref)), 1) if name != "fp32" else "ref"}
            for threads in (1, 2):
                sess = make_session(path, threads)
                ms = median_ms(lambda: sess.run(None, {"wplus": test[0]}), args.repeats)
                rows.append({"resolution": res, "variant": name, "threads": threads, "median_ms": round(ms, 1),
                             "MB": round(path.stat().st_size / 1e6, 1), **quality})
    print(format_table(rows, list(rows[0])))
    if args.json:
        write_json_atomic(args.json, {"machine": machine_info(), "rows": rows})


if __name__ == "__main__":
    main()
