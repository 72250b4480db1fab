"""Try int8 static quantisation of the synthesis models and measure speed and quality against fp32.

    python -m training.export.quantize_generator [--models live 256] [--calib 32] [--out-dir /tmp/quant]

onnxruntime's static quantisation (QDQ, per-channel int8 weights, uint8 activations calibrated with MinMax on
W+ codes near W), per layer group: every Conv/MatMul/Gemm ("all", what was tried first: the style affines and
the wavelet heads lose too much), the pointwise 1x1 convolutions only ("pointwise": most of the MACs; depthwise,
heads, affines stay fp32), and the pointwise convolutions on the 64- and 128-px blocks only ("pointwise, last
blocks"). Variants that do not pay (slower, or PSNR against fp32 < 30 dB) are reported and not shipped. Prints a
table (and --json): median ms at 1 and 2 threads and the worst PSNR against fp32 on held-out codes.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.atomic import write_json_atomic
from engine.benchmark import format_table, machine_info, median_ms
from engine.generator import LIVE_SYNTHESIS, SYNTHESIS_MODELS, Generator
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


def conv_groups(path: Path) -> dict[str, list[str]]:
    """Node names per layer group: "pointwise" (1x1, ungrouped, more than 12 outputs: not a wavelet head) and
    "pointwise, last blocks" (those whose output is at least 64 px wide)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(path)))
    inits = {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}
    widths = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in model.graph.value_info}
    groups = {"pointwise": [], "pointwise, last blocks": []}
    for n in model.graph.node:
        w = inits.get(n.input[1]) if n.op_type == "Conv" and len(n.input) > 1 else None
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        if w is not None and tuple(w[2:]) == (1, 1) and group == 1 and w[0] > 12:
            groups["pointwise"].append(n.name)
            out = widths.get(n.output[0])
            if out and out[-1] >= 64:
                groups["pointwise, last blocks"].append(n.name)
    return groups


def quantize(src: Path, dst: Path, calib: list[np.ndarray], nodes: list[str] | None = None) -> None:
    """Static QDQ int8 of `nodes` (default: every Conv, MatMul and Gemm)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"wplus": x}

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"], nodes_to_quantize=nodes)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(4.0 / np.mean((a - b) ** 2)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["live", "256"],
                    help="live (the live-view student), 256, 512, 1024 (the released network and its heads)")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/celeblook_quant"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    gen = Generator.load(2)
    calib, test = wplus_samples(gen, args.calib, 0), wplus_samples(gen, 8, 1)
    rows = []
    for model in args.models:
        fp32 = resolve_model(LIVE_SYNTHESIS if model == "live" else SYNTHESIS_MODELS[int(model)])
        variants = [("fp32", fp32)]
        for group, nodes in [("all", None), *conv_groups(fp32).items()]:
            path = args.out_dir / f"{fp32.stem}_int8_{group.replace(', ', '_').replace(' ', '_')}.onnx"
            quantize(fp32, path, calib, nodes)
            variants.append((f"int8 QDQ, {group}", path))
        ref = [make_session(fp32, 2).run(None, {"wplus": x})[0] for x in test]
        for name, path in variants:
            outs = [make_session(path, 2).run(None, {"wplus": x})[0] for x in test]
            quality = {"psnr_vs_fp32": round(min(psnr(o, r) for o, r in zip(outs, ref)), 1) if name != "fp32" else "ref"}
            for threads in (1, 2):
                sess = make_session(path, threads)
                ms = median_ms(lambda: sess.run(None, {"wplus": test[0]}), args.repeats)
                rows.append({"model": fp32.stem, "variant": name, "threads": threads, "median_ms": round(ms, 1),
                             "MB": round(path.stat().st_size / 1e6, 1), **quality})
    print(format_table(rows, list(rows[0])))
    if args.json:
        write_json_atomic(args.json, {"machine": machine_info(), "rows": rows,
                                      "command": "python -m training.export.quantize_generator " + " ".join(argv or [])})


if __name__ == "__main__":
    main()
