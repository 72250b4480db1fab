"""Parameters and multiply-accumulates of an ONNX model, counted from its graph.

Uses the `onnx` package (in the `train` extra) for shape inference; without it, stats are unavailable.
Counted: Conv / ConvTranspose (out elements x in-channels/groups x kernel area), MatMul and Gemm (M x K x N);
element-wise ops are ignored (they are a small share of a conv net's cost).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelStats:
    params: int
    macs: int


def _dims(value_info) -> list[int] | None:
    dims = [d.dim_value if d.HasField("dim_value") else 1 for d in value_info.type.tensor_type.shape.dim]
    return dims or None


def onnx_stats(path: str | os.PathLike, batch: int = 1) -> ModelStats | None:
    """Params and MACs for `batch` images of an ONNX model, or None when the onnx package is missing."""
    try:
        import onnx
        from onnx import numpy_helper, shape_inference
    except ImportError:
        return None
    model = onnx.load(str(path))
    for inp in model.graph.input:  # fix the batch so reshapes after it get concrete shapes
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    model = shape_inference.infer_shapes(model, data_prop=True)
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consts = {}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    shapes = {vi.name: _dims(vi) for vi in list(graph.value_info) + list(graph.input) + list(graph.output)}
    shapes.update({k: list(v.shape) for k, v in {**inits, **consts}.items()})
    params = sum(int(v.size) for v in inits.values()) + sum(int(v.size) for v in consts.values() if v.size > 16)
    macs = 0
    for n in graph.node:
        out = shapes.get(n.output[0])
        if n.op_type in ("Conv", "ConvTranspose") and out and n.input[1] in shapes:
            w = shapes[n.input[1]]  # Conv: (C_out, C_in/g, kh, kw); ConvTranspose: (C_in, C_out/g, kh, kw)
            inner = w[1] * int(np.prod(w[2:])) if n.op_type == "Conv" else w[0] // max(1, out[1] // w[1]) * int(np.prod(w[2:]))
            macs += int(np.prod(out)) * inner
        elif n.op_type in ("MatMul", "Gemm") and out:
            a = shapes.get(n.input[0])
            if a:
                k = a[-1] if not (n.op_type == "Gemm" and any(x.name == "transA" and x.i for x in n.attribute)) else a[0]
                macs += int(np.prod(out)) * k
    return ModelStats(params=params, macs=macs * batch)
