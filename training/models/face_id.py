"""The shipped face recogniser (`face_id.onnx`, training/convert/face_id.py) as a torch module, for gradients.

The quality mode's objective (training/export/refiner.py) adds an identity term: how far the recogniser's
embedding of the render is from the photo's. That needs the recogniser's backward pass, so its graph is run here
in torch, op by op, from the very ONNX file the engine ships (the few ops the converter writes: convolutions with
TF's SAME padding, elementwise arithmetic, clipping, a global mean). Parity with onnxruntime: tests/test_refine.py.

The identity term reads a recognition crop made from the aligned 256-px crop by a separable warp (scale and shift,
no rotation: the aligned crop is already upright): `rows @ image @ cols.T`, two fixed bilinear matrices
(engine.face_id.separable_warp), so the warp and its gradient are plain matrix products in the exported graph.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.models import MODELS_DIR

FACE_ID_ONNX = MODELS_DIR / "face_id.onnx"


def _same_upper_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF's SAME padding (extra pixel after), for a square input."""
    size = x.shape[-1]
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    before, after = total // 2, total - total // 2
    return F.pad(x, (before, after, before, after))


class FaceIdNet(torch.nn.Module):
    """image (B, 3, 224, 224) RGB in [0, 1] -> embedding (B, 1024), not normalised: face_id.onnx in torch."""

    OPS = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div,
           "Min": torch.minimum, "Max": torch.maximum}

    def __init__(self, path: str | Path = FACE_ID_ONNX):
        super().__init__()
        import onnx
        from onnx import helper, numpy_helper

        model = onnx.load(str(path))
        self.consts = {}
        for i, init in enumerate(model.graph.initializer):
            value = numpy_helper.to_array(init)
            # the TF.js weights were float16 before the converter widened them: kept as such they halve the
            # exported objective's share of the file and lose nothing (checked per tensor)
            half = value.dtype == np.float32 and np.array_equal(value.astype(np.float16).astype(np.float32), value)
            self.register_buffer(f"c{i}", torch.from_numpy(value.astype(np.float16) if half else value.copy()))
            self.consts[init.name] = f"c{i}"
        self.nodes = [(n.op_type, list(n.input), n.output[0],
                       {a.name: helper.get_attribute_value(a) for a in n.attribute}) for n in model.graph.node]
        self.input_name, self.output_name = model.graph.input[0].name, model.graph.output[0].name
        for op, _, _, attrs in self.nodes:
            if op not in self.OPS and op not in ("Conv", "Relu", "ReduceMean", "Identity"):
                raise NotImplementedError(f"face_id.onnx op {op} has no torch version here")
            if op == "Conv" and attrs.get("auto_pad", b"SAME_UPPER") not in (b"SAME_UPPER", "SAME_UPPER"):
                raise NotImplementedError("only SAME_UPPER convolutions")

    def _const(self, name: str) -> torch.Tensor:
        value = getattr(self, self.consts[name])
        return value.float() if value.dtype == torch.float16 else value

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        env = {self.input_name: image}
        get = lambda name: env[name] if name in env else self._const(name)  # noqa: E731
        for op, inputs, output, attrs in self.nodes:
            x = [get(name) for name in inputs]
            if op == "Conv":
                weight = x[1]
                stride = attrs.get("strides", [1, 1])[0]
                y = F.conv2d(_same_upper_pad(x[0], weight.shape[-1], stride), weight, x[2] if len(x) > 2 else None,
                             stride, 0, 1, attrs.get("group", 1))
            elif op in self.OPS:
                y = self.OPS[op](x[0], x[1])
            elif op == "Relu":
                y = F.relu(x[0])
            elif op == "ReduceMean":
                axes = attrs["axes"] if "axes" in attrs else x[1].tolist()
                y = x[0].mean(dim=list(axes), keepdim=bool(attrs.get("keepdims", 1)))
            else:  # Identity
                y = x[0]
            env[output] = y
        return env[self.output_name]


def identity_loss(net: FaceIdNet, image: torch.Tensor, target: torch.Tensor, rows: torch.Tensor,
                  cols: torch.Tensor) -> torch.Tensor:
    """1 - cosine of the recogniser's embeddings of `image` and `target` (B, 3, S, S) in [-1, 1], both read
    through the separable warp `rows` (224, S), `cols` (224, S) into the recognition crop, averaged over the batch;
    no gradient to `target`."""
    def embed(x):
        e = net(rows @ ((x + 1) / 2) @ cols.T)
        return e / e.norm(dim=1, keepdim=True).clamp_min(1e-8)

    with torch.no_grad():
        want = embed(target)
    return 1 - (embed(image) * want).sum(1).mean()
