"""Convert the official MobileStyleGAN OpenVINO IR (random-face package) into our torch modules.

    python -m training.convert.generator [--out PATH]

writes a safetensors file of the full MobileStyleGAN state (mapping, synthesis, w_avg) to the user cache by
default. Named IR constants keep their PyTorch names (m.layers.N.conv1.conv.modulation.weight, ...); the
folded ones (pointwise weight x demodulation, noise map x noise weight) are found by walking the graph from
the named bias of each styled conv: bias-Add <- noise-Add <- (Convolution <- weight, noise constant).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from training.models.mobilestylegan import MappingNetwork, MobileStyleGAN
from training.convert.openvino_ir import IRGraph, IRNode, read_ir
from training.convert.random_face_weights import cache_dir, ir_dir

N_W_AVG = 16384


def _const_input(graph: IRGraph, node: IRNode) -> np.ndarray:
    consts = [n.value for n in graph.input_nodes(node) if n.type == "Const"]
    if len(consts) != 1:
        raise ValueError(f"{node.name}: expected one constant input, found {len(consts)}")
    return consts[0]


def _adder_of(graph: IRGraph, const_name: str) -> IRNode:
    """The Add node that adds the constant `const_name`."""
    const = graph.by_name(const_name)
    adds = [n for n in graph.consumers(const.id) if n.type == "Add"]
    if len(adds) != 1:
        raise ValueError(f"{const_name}: expected one Add consumer, found {len(adds)}")
    return adds[0]


def _styled_conv(graph: IRGraph, prefix: str, depthwise: bool) -> dict[str, np.ndarray]:
    """State of a StyledConv whose IR names start with `prefix` (e.g. 'm.layers.3.conv2')."""
    bias_add = _adder_of(graph, f"{prefix}.bias")
    noise_add = next(n for n in graph.input_nodes(bias_add) if n.type == "Add")
    conv = next(n for n in graph.input_nodes(noise_add) if n.type == "Convolution")
    noise = _const_input(graph, noise_add)
    state = {
        "conv.modulation.affine.weight": graph.const(f"{prefix}.conv.modulation.weight"),
        "conv.modulation.affine.bias": graph.const(f"{prefix}.conv.modulation.bias").reshape(-1),
        "noise": noise.reshape(1, 1, *noise.shape[-2:]),
        "bias": graph.const(f"{prefix}.bias").reshape(1, -1, 1, 1),
    }
    folded = _const_input(graph, conv)
    if depthwise:
        dw = graph.const(f"{prefix}.conv.weight_dw")
        state["conv.weight_dw"] = dw.reshape(dw.shape[0], 1, *dw.shape[-2:])
        state["conv.weight_pw"] = folded
    else:
        state["conv.weight"] = folded
    return state


def synthesis_state(graph: IRGraph, n_blocks: int = 7) -> dict[str, torch.Tensor]:
    """SynthesisNetwork state dict from the SynthesisNetwork IR graph."""
    state: dict[str, np.ndarray] = {"input": graph.const("m.input.input")}
    state |= {f"conv1.{k}": v for k, v in _styled_conv(graph, "m.conv1", depthwise=False).items()}
    for i in range(n_blocks):
        p = f"m.layers.{i}"
        state[f"layers.{i}.up.modulation.affine.weight"] = graph.const(f"{p}.up.modulation.weight")
        state[f"layers.{i}.up.modulation.affine.bias"] = graph.const(f"{p}.up.modulation.bias").reshape(-1)
        for conv in ("conv1", "conv2"):
            state |= {f"layers.{i}.{conv}.{k}": v for k, v in _styled_conv(graph, f"{p}.{conv}", True).items()}
    last = f"m.layers.{n_blocks - 1}.to_img"
    head = f"layers.{n_blocks - 1}.to_img"
    state[f"{head}.conv.modulation.affine.weight"] = graph.const(f"{last}.conv.modulation.weight")
    state[f"{head}.conv.modulation.affine.bias"] = graph.const(f"{last}.conv.modulation.bias").reshape(-1)
    state[f"{head}.conv.weight"] = graph.const(f"{last}.conv.weight")
    state[f"{head}.bias"] = graph.const(f"{last}.bias").reshape(1, -1, 1, 1)
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}


def mapping_state(graph: IRGraph, model: MappingNetwork) -> dict[str, torch.Tensor]:
    """MappingNetwork state dict: the IR holds effective weights; undo the equalised-lr scaling."""
    state = {}
    matmuls = graph.of_type("MatMul")
    if len(matmuls) != len(model.layers):
        raise ValueError(f"mapping IR has {len(matmuls)} MatMul layers, expected {len(model.layers)}")
    for i, (mm, layer) in enumerate(zip(matmuls, model.layers)):
        w_eff = _const_input(graph, mm)
        add = next(n for n in graph.consumers(mm.id) if n.type == "Add")
        reshape = next(n for n in graph.input_nodes(add) if n.type == "Reshape")
        b_eff = next(n.value for n in graph.input_nodes(reshape) if n.type == "Const" and n.value.dtype == np.float32)
        state[f"layers.{i}.weight"] = torch.from_numpy(w_eff / layer.scale)
        state[f"layers.{i}.bias"] = torch.from_numpy(b_eff.reshape(-1) / layer.lr_mul)
    return state


@torch.no_grad()
def compute_w_avg(mapping: MappingNetwork, n: int = N_W_AVG, seed: int = 0) -> torch.Tensor:
    """Mean of `n` mapped standard-normal z (fixed seed)."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([mapping(torch.randn(4096, 512, generator=g)) for _ in range(n // 4096)]).mean(0)


def load_official(ir_folder: Path | None = None) -> MobileStyleGAN:
    """MobileStyleGAN with the official FFHQ-1024 weights, straight from the IR, w_avg computed."""
    folder = ir_folder or ir_dir()
    model = MobileStyleGAN().eval()
    model.synthesis.load_state_dict(synthesis_state(read_ir(folder / "SynthesisNetwork.xml")), strict=True)
    model.mapping.load_state_dict(mapping_state(read_ir(folder / "MappingNetwork.xml"), model.mapping), strict=True)
    model.w_avg.copy_(compute_w_avg(model.mapping))
    return model


def default_weights_path() -> Path:
    return cache_dir().parent / "mobilestylegan_ffhq1024.safetensors"


def load_weights(path: Path | None = None) -> MobileStyleGAN:
    """Load converted weights (safetensors), converting from the IR first if the file is absent."""
    from safetensors.torch import load_file

    path = path or default_weights_path()
    if not path.is_file():
        save_weights(load_official(), path)
    model = MobileStyleGAN().eval()
    model.load_state_dict(load_file(str(path)), strict=True)
    return model


def save_weights(model: MobileStyleGAN, path: Path) -> None:
    """Write the model state as safetensors (atomic rename)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=default_weights_path())
    args = ap.parse_args(argv)
    model = load_official()
    save_weights(model, args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out} ({n / 1e6:.2f} M parameters, w_avg from {N_W_AVG} z)")


if __name__ == "__main__":
    main()
