"""Export the quality mode's loss and its gradient to ONNX, so the engine refines an inversion without torch.

    python -m training.export.refiner          # resources/models/refiner_256.onnx + manifest entry
    python -m training.export.refiner --live   # resources/models/refiner_live_256.onnx: the same objective through the
                                               # live student, which a photo target's latent is fitted to

The graph (`refiner_256.onnx`, batch 1): inputs `wplus` (1, 23, 512), `target` (1, 3, 256, 256) RGB in [-1, 1]
(the aligned crop), `offset` (1, 3, 256, 256) (the colour anchor added to the render, engine/inversion/refine.py),
`id_rows`, `id_cols` (224, 256) (the separable warp into the recognition crop, engine.face_id.separable_warp)
and `id_weight` (1,); outputs `loss` () = L1 + (1 - MS-SSIM) of (preview render + offset) against the target
(training.models.encoder.image_losses, as in training/fit/refine_inversion.py) + id_weight x (1 - cosine of the face
recogniser's embeddings of the two; training/models/face_id.py, the shipped face_id.onnx) and `grad` (1, 23, 512)
= d loss / d wplus. The render is the frozen torch generator through the distilled 256-px preview head
(training/train/preview_heads.py), the same network as the engine's mobilestylegan_synthesis_256.onnx; with --live
it is the live-view student (training/train/live_generator.py, mobilestylegan_live_256.onnx), and the target is the
preview head's render of the same motion (engine.inversion.refine.match_student).

How: the forward and the backward pass are traced together into one graph of aten operations (make_fx through
torch.autograd.grad), then exported by torch's ONNX exporter. The backward operations the exporter has no ONNX
function for are written as forward ones: the input gradient of a fixed-weight convolution is a transposed
convolution with the same weight, and the gradient of a non-overlapping average pool spreads each value evenly
over its cell. Parity with torch's own gradient: tests/test_refine.py.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.models import MODELS_DIR
from training.export.manifest import LICENCE, SOURCE, update_manifest
from training.fit.refine_inversion import SIZE, load_refiner

aten = torch.ops.aten
OUT = MODELS_DIR / "refiner_256.onnx"
OUT_LIVE = MODELS_DIR / "refiner_live_256.onnx"
PREVIEW_BLOCK = 4  # the 256-px preview head
REGENERATE = "python -m training.export.refiner"


def conv_input_grad(grad_out, inp, weight, bias_sizes, stride, padding, dilation, transposed, output_padding,
                    groups, mask):
    """aten.convolution_backward for a convolution whose weight is a constant: the input gradient is the
    transposed convolution of grad_out with the same weight (output padding recovers the input size)."""
    if transposed or mask[1]:
        raise NotImplementedError("only the input gradient of a fixed-weight, non-transposed convolution")
    grad_in = None
    if mask[0]:
        pad_out = [inp.shape[2 + i] - ((grad_out.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                                       + dilation[i] * (weight.shape[2 + i] - 1) + 1) for i in range(2)]
        grad_in = aten.convolution(grad_out, weight, None, stride, padding, dilation, True, pad_out, groups)
    return grad_in, None, grad_out.sum([0, 2, 3]) if mask[2] else None


def _spread(grad_out: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    return grad_out.repeat_interleave(kh, 2).repeat_interleave(kw, 3) / (kh * kw)


def avg_pool_grad(grad_out, inp, kernel, stride, padding, ceil_mode, count_include_pad, divisor):
    """aten.avg_pool2d_backward for non-overlapping cells (stride = kernel, no padding), as MS-SSIM uses."""
    k = list(kernel) * (2 // len(kernel))
    if (list(stride) or k) != k or any(padding) or divisor is not None:
        raise NotImplementedError("only non-overlapping average pools")
    return _spread(grad_out, *k)


def adaptive_avg_pool_grad(grad_out, inp):
    """aten._adaptive_avg_pool2d_backward when the input is a whole multiple of the output (area resize)."""
    kh, kw = inp.shape[2] // grad_out.shape[2], inp.shape[3] // grad_out.shape[3]
    if (kh * grad_out.shape[2], kw * grad_out.shape[3]) != tuple(inp.shape[2:]):
        raise NotImplementedError("only whole-multiple adaptive average pools")
    return _spread(grad_out, kh, kw)


def decompositions() -> dict:
    from torch._decomp import core_aten_decompositions

    table = core_aten_decompositions()
    table[aten.convolution_backward.default] = conv_input_grad
    table[aten.avg_pool2d_backward.default] = avg_pool_grad
    table[aten._adaptive_avg_pool2d_backward.default] = adaptive_avg_pool_grad
    return table


INPUTS = ["wplus", "target", "offset", "id_rows", "id_cols", "id_weight"]


def preview_render(synthesis: torch.nn.Module):
    """W+ (1, 23, 512) -> the 256-px preview head's RGB (1, 3, 256, 256)."""
    return lambda wplus: F.interpolate(synthesis(wplus, PREVIEW_BLOCK), size=(SIZE, SIZE), mode="area")


def loss_and_grad(render, face_id: torch.nn.Module):
    """f(wplus, target, offset, id_rows, id_cols, id_weight) -> (loss, d loss / d wplus): the quality mode's
    objective through `render` (W+ -> RGB (1, 3, 256, 256): preview_render, or the live student);
    `face_id`: training.models.face_id.FaceIdNet."""
    from training.models.encoder import image_losses
    from training.models.face_id import identity_loss

    def f(wplus, target, offset, id_rows, id_cols, id_weight):
        wplus = wplus.detach().requires_grad_(True)
        with torch.enable_grad():
            image = render(wplus)  # (1, 3, 256, 256)
            parts = image_losses(image + offset, target)
            identity = identity_loss(face_id, image + offset, target, id_rows, id_cols)
            loss = parts["l1"] + parts["msssim"] + (id_weight * identity).sum()
            (grad,) = torch.autograd.grad(loss, wplus)
        return loss.detach(), grad

    return f


class TracedObjective(torch.nn.Module):
    """The traced forward + backward graph as a module for the exporter."""

    def __init__(self, graph: torch.fx.GraphModule):
        super().__init__()
        self.graph_module = graph

    def forward(self, wplus, target, offset, id_rows, id_cols, id_weight):
        return self.graph_module(wplus, target, offset, id_rows, id_cols, id_weight)


def example_inputs(model, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random W+ near w_avg, target and anchor; the warp of a face whose five points are jittered around the
    template's (so the recognition crop lies inside the image)."""
    from engine.face_id import TEMPLATE_112, separable_warp

    g = torch.Generator().manual_seed(seed)
    wplus = (model.w_avg.detach()[None, None] + 0.3 * torch.randn(1, 23, 512, generator=g)).contiguous()
    target = torch.rand(1, 3, SIZE, SIZE, generator=g) * 2 - 1
    offset = 0.05 * torch.randn(1, 3, SIZE, SIZE, generator=g)
    five = TEMPLATE_112.astype(np.float64) * (SIZE / 112.0) + torch.randn(5, 2, generator=g).double().numpy()
    rows, cols = (torch.from_numpy(m) for m in separable_warp(five, SIZE))
    return wplus, target, offset, rows, cols, torch.tensor([1.0])


def load_render(live: bool, threads: int = 2):
    """(the released model with its preview heads, the render the objective differentiates): the preview head, or
    with `live` the live student (its blocks 0-2 are the released network's)."""
    model = load_refiner(threads)
    if not live:
        return model, preview_render(model.synthesis)
    from training.train.live_generator import load_live_synthesis

    return model, load_live_synthesis(teacher=model).requires_grad_(False)


def export(out: Path = OUT, threads: int = 2, live: bool = False) -> Path:
    """Trace, export (weights inside the file), check against torch's gradient, write atomically."""
    from torch.fx.experimental.proxy_tensor import make_fx

    from training.models.face_id import FaceIdNet

    model, render = load_render(live, threads)
    f = loss_and_grad(render, FaceIdNet())
    inputs = example_inputs(model)
    graph = make_fx(f, decomposition_table=decompositions())(*inputs)
    tmp = out.with_suffix(".tmp.onnx")
    torch.onnx.export(TracedObjective(graph), inputs, str(tmp), dynamo=True, external_data=False, optimize=True,
                      input_names=INPUTS, output_names=["loss", "grad"])
    import onnxruntime as ort

    got = ort.InferenceSession(str(tmp)).run(None, dict(zip(INPUTS, (x.numpy() for x in inputs))))
    want = [t.numpy() for t in f(*inputs)]
    errs = [float(np.abs(a - b).max()) for a, b in zip(got, want)]
    print(f"parity vs torch (max abs): loss {errs[0]:.2e}, grad {errs[1]:.2e} (grad max {np.abs(want[1]).max():.2e})")
    if errs[1] > 1e-3 * np.abs(want[1]).max() or errs[0] > 1e-4:
        tmp.unlink()
        raise SystemExit("the exported gradient does not match torch's")
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help=f"default {OUT.name}, with --live {OUT_LIVE.name} (in {MODELS_DIR})")
    ap.add_argument("--live", action="store_true", help="the objective through the live student")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    shipped = OUT_LIVE if args.live else OUT
    path = export(args.out or shipped, args.threads, args.live)
    if path == shipped:
        from engine.models import sha256_file

        what = ("a photo target's fit to the live student: L1 + 1 - MS-SSIM of the live student's 256-px render "
                "against a target image (the preview head's render of the same driven latent)" if args.live else
                "quality-mode objective for stills: L1 + 1 - MS-SSIM of the 256-px preview render against the "
                "aligned crop")
        licence = LICENCE + ("; the student's weights were trained on UTKFace codes: non-commercial research use "
                             "only" if args.live else "") + "; the identity term's recogniser weights: as face_id"
        entry = {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                 "source": what + " plus a weighted identity term (1 - cosine of face_id.onnx's embeddings of the two, "
                 "its weights inside as float16), and its gradient w.r.t. W+ (forward + backward traced into one "
                 "graph); " + ("the student's weights: live_generator_fp16; " if args.live else "") + SOURCE,
                 "licence": licence, "regenerate": REGENERATE + (" --live" if args.live else ""), "shipped": True}
        if args.live:
            entry["data"] = "none of its own: no training (the student's data: see live_generator_fp16)"
        update_manifest({shipped.stem: entry})
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
