"""engine/face_id.py and training/convert/face_id.py: the TF.js -> ONNX converter, the shipped recogniser's parity
with TensorFlow.js itself, its recognition crop, and that it tells the test photos' people apart; the torch copy
that the quality mode differentiates (training/models/face_id.py) and its separable warp."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from engine.align import align_face, crop_points
from engine.errors import BadInputError
from engine.face_id import TEMPLATE_112, FaceId, five_points, recognition_crop, separable_warp, similarity_fit
from engine.image_io import load_image
from training.convert.face_id import graph_to_onnx

TFJS_REFERENCE = Path(__file__).parent / "data" / "face_id_tfjs.npz"


def test_shipped_recogniser_matches_tensorflow_js():
    """face_id.onnx against the output of TF.js 4.22 (CPU backend) on the same two crops
    (training/convert/tfjs_reference.js; generated faces, seeds 0 and 1)."""
    ref = np.load(TFJS_REFERENCE)
    fid = FaceId.load(threads=1)
    raw = fid.session.run(None, {"image": (ref["image"] / 255.0).transpose(0, 3, 1, 2).astype(np.float32)})[0]
    assert raw.shape == (2, 1024) and (ref["output"] != 0).sum() > 1000
    np.testing.assert_allclose(raw, ref["output"], atol=2e-5 * np.abs(ref["output"]).max())


def _node(name, op, inputs, **attr):
    return {"name": name, "op": op, "input": inputs, "attr": attr}


def _b64(s: str) -> dict:
    import base64

    return {"s": base64.b64encode(s.encode()).decode()}


def test_converter_against_numpy_on_a_small_graph():
    """A TF.js graph with the converter's ops (fused conv, plain depthwise conv, relu6 as min/max, per-channel
    arithmetic, a spatial mean) gives the numpy result of the same maths, NHWC in TF.js, NCHW in the ONNX."""
    rng = np.random.default_rng(0)
    w = {"k": rng.normal(size=(3, 3, 3, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32),
         "dw_w": rng.normal(size=(3, 3, 4, 1)).astype(np.float32), "scale": rng.normal(size=4).astype(np.float32),
         "six": np.float32(6.0), "zero": np.float32(0.0), "axes": np.array([1, 2], np.int32)}
    same, strides2 = _b64("SAME"), {"list": {"i": ["1", "2", "2", "1"]}}
    spec = {"modelTopology": {"node": [
        _node("x", "Placeholder", [], shape={"shape": {"dim": [{"size": "-1"}, {"size": "8"}, {"size": "8"},
                                                             {"size": "3"}]}}),
        _node("conv", "_FusedConv2D", ["x", "k", "b"], padding=same, strides=strides2,
              fused_ops={"list": {"s": [_b64("BiasAdd")["s"], _b64("Relu")["s"]]}}),
        _node("dw", "DepthwiseConv2dNative", ["conv", "dw_w"], padding=same, strides={"list": {"i": ["1"] * 4}}),
        _node("mul", "Mul", ["dw", "scale"]),
        _node("min", "Minimum", ["mul", "six"]),
        _node("max", "Maximum", ["min", "zero"]),
        _node("mean", "Mean", ["max", "axes"], keep_dims={"b": False}),
    ]}}
    model = graph_to_onnx(spec, w, "mean", mean=0.0, std=1.0)
    x = rng.uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    out = ort.InferenceSession(model.SerializeToString()).run(None, {"image": x.transpose(0, 3, 1, 2)})[0]

    def conv(img, k, stride, depthwise=False):  # NHWC, TF "SAME": pad (0 before, 1 after) for stride 2 on 8 px
        n, h, wd, c = img.shape
        pad = (1, 1) if stride == 1 else (0, 1)
        p = np.pad(img, ((0, 0), pad, pad, (0, 0)))
        oh = h // stride
        res = np.zeros((n, oh, oh, k.shape[3] if not depthwise else c), np.float32)
        for i in range(oh):
            for j in range(oh):
                patch = p[:, i * stride:i * stride + 3, j * stride:j * stride + 3]
                res[:, i, j] = (np.einsum("nhwc,hwc->nc", patch, k[..., 0]) if depthwise
                                else np.einsum("nhwc,hwco->no", patch, k))
        return res

    y = np.maximum(conv(x, w["k"], 2) + w["b"], 0)
    y = np.clip(conv(y, w["dw_w"], 1, depthwise=True) * w["scale"], 0, 6).mean((1, 2))
    np.testing.assert_allclose(out, y, atol=1e-4)


def test_recognition_crop_geometry():
    """The least-squares similarity recovers a known one; the five points land on the template."""
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    m = np.array([[0.8, -0.3, 5.0], [0.3, 0.8, -2.0]])
    np.testing.assert_allclose(similarity_fit(src, src @ m[:, :2].T + m[:, 2]), m, atol=1e-5)
    with pytest.raises(BadInputError, match="coincide"):
        similarity_fit(np.ones((5, 2)), src)
    pts = np.zeros((478, 3), np.float32)
    from engine.landmarks import LEFT_EYE, MOUTH_LEFT, MOUTH_RIGHT, RIGHT_EYE

    for idx, p in zip([RIGHT_EYE, LEFT_EYE, [4], [MOUTH_RIGHT], [MOUTH_LEFT]], TEMPLATE_112 * 3 + 40):
        pts[list(idx), :2] = p
    np.testing.assert_allclose(five_points(pts), TEMPLATE_112 * 3 + 40, atol=1e-4)
    img = np.zeros((500, 500, 3), np.uint8)
    assert recognition_crop(img, pts).shape == (224, 224, 3)


def test_recogniser_rejects_wrong_crops():
    fid = FaceId.load(threads=1)
    with pytest.raises(BadInputError, match="224"):
        fid.embed_crops(np.zeros((112, 112, 3), np.uint8))


def test_recogniser_tells_the_test_photos_people_apart(landmarker, face_photo):
    """Three different photographs of Obama (obama.jpg, 32bit.png, the second face of two_people.jpg) are each
    closer to the other two than to Biden (biden.jpg), by the embedding of the aligned crop (the engine's path)."""
    emb = {}
    for name, k in [("obama.jpg", 0), ("32bit.png", 0), ("two_people.jpg", 1), ("biden.jpg", 0)]:
        image = load_image(face_photo(name))
        face = sorted(landmarker.detect(image), key=lambda f: -f.area)[k]
        crop = align_face(image, face, 256)
        e = FaceId.load(threads=1).embed(crop.image, crop_points(face, crop)[:, :2] * 256)
        assert e.shape == (1024,) and abs(np.linalg.norm(e) - 1) < 1e-5
        emb[f"{name}#{k}"] = e
    obamas = ["obama.jpg#0", "32bit.png#0", "two_people.jpg#1"]
    for a in obamas:
        same = min(emb[a] @ emb[b] for b in obamas if b != a)
        assert same > emb[a] @ emb["biden.jpg#0"] + 0.05, a


def test_torch_recogniser_matches_the_shipped_onnx():
    """training/models/face_id.py runs face_id.onnx's graph in torch (the quality mode's identity term): same
    output as onnxruntime on a random crop."""
    import torch

    from training.models.face_id import FaceIdNet

    x = np.random.default_rng(0).uniform(0, 1, (2, 3, 224, 224)).astype(np.float32)
    want = FaceId.load(threads=1).session.run(None, {"image": x})[0]
    got = FaceIdNet()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max())


def test_separable_warp_reads_the_same_face_as_the_recognition_crop(landmarker, face_photo):
    """The identity term's warp (scale and shift, as two matrices) of an aligned crop gives the recogniser the same
    face as the engine's rotating recognition crop: nearly the same embedding, on a real photo."""
    image = load_image(face_photo("biden.jpg"))
    face = landmarker.detect(image)[0]
    crop = align_face(image, face, 256)
    points = crop_points(face, crop)[:, :2] * 256
    rows, cols = separable_warp(five_points(points), 256)
    assert rows.shape == cols.shape == (224, 256)
    np.testing.assert_allclose(rows.sum(1), 1, atol=1e-5)  # bilinear weights
    rgb = crop.image[..., ::-1].astype(np.float32) / 255
    warped = np.stack([rows @ rgb[..., c] @ cols.T for c in range(3)])[None]
    fid = FaceId.load(threads=1)
    e = fid.session.run(None, {"image": warped})[0][0]
    assert float(e @ fid.embed(crop.image, points)) / np.linalg.norm(e) > 0.995
    with pytest.raises(BadInputError, match="coincide"):
        separable_warp(np.ones((5, 2)), 256)
