"""Recover the shipped inversion encoder's torch weights from its ONNX file (the repository shipped only the ONNX).

    python -m training.convert.encoder_from_onnx            # -> resources/models/inversion_encoder_fp16.safetensors

The exporter (torch.onnx, constant folding) folded every Conv + BatchNorm pair of the backbone into one Conv with a
bias, reshaped the layer scales and transposed the thumbnail path's first matrix; named parameters kept their
state_dict names. To map every ONNX initializer back, a probe copy of the same architecture is exported with the
same exporter after setting each folded BatchNorm to the identity plus a unique random shift (weight 1, mean 0,
var 1 - eps) and each conv bias to 0: then the folded conv weight is the probe's conv weight and the folded bias is
the probe's BN shift, so the probe's ONNX initializers are identified by value; the two graphs are matched node by
node (same architecture, same exporter), which carries the identification over to the shipped file.

Unfolding: conv.weight = folded W, conv.bias = 0; the BatchNorm gets the statistics its input really has (one
forward pass in eval mode over `--calib` inputs; the eval function does not depend on the BN settings chosen
below, so one pass sees every BN's true input) as running mean / var, weight = sqrt(var + eps) and bias = folded
b + mean. Eval output is then exactly the folded function, and train-mode batches (batch statistics close to the
running ones) start where the shipped model is. Parity: resources/models/inversion_encoder_parity.npy.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from engine.models import MODELS_DIR
from training.models.encoder import EncoderConfig, InversionEncoder

ONNX_FILE = MODELS_DIR / "inversion_encoder.onnx"
FP16_FILE = MODELS_DIR / "inversion_encoder_fp16.safetensors"
NAME = "inversion_encoder_fp16"


def _bn_pairs(model: torch.nn.Module) -> list[tuple[str, str]]:
    """(conv module name, BatchNorm module name) of every Conv2d directly followed by a BatchNorm2d."""
    mods = dict(model.named_modules())
    pairs = []
    for name, m in mods.items():
        if not isinstance(m, torch.nn.BatchNorm2d):
            continue
        parent, _, last = name.rpartition(".")
        if last == "bn" and isinstance(mods.get(f"{parent}.conv"), torch.nn.Conv2d):
            pairs.append((f"{parent}.conv", name))
        elif last.isdigit() and isinstance(mods.get(f"{parent}.{int(last) - 1}"), torch.nn.Conv2d):
            pairs.append((f"{parent}.{int(last) - 1}", name))
    return pairs


def _export(model: InversionEncoder, path: Path) -> None:
    from training.export.encoder import export_encoder
    export_encoder(model, path)


def recover(onnx_path: Path = ONNX_FILE, work: Path = Path("runs/recover"), calib: torch.Tensor | None = None,
            ) -> tuple[InversionEncoder, dict]:
    import onnx
    from onnx import numpy_helper

    work.mkdir(parents=True, exist_ok=True)
    shipped = onnx.load(str(onnx_path))
    meta = {p.key: p.value for p in shipped.metadata_props}
    cfg = EncoderConfig(**json.loads(meta["encoder_config"]))
    torch.manual_seed(0)
    probe = InversionEncoder(cfg).eval()
    pairs = _bn_pairs(probe)
    mods = dict(probe.named_modules())
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in probe.parameters():  # unique values everywhere (zero-initialised heads too)
            p.copy_(torch.randn(p.shape, generator=g) * 0.05 + p)
        for conv, bn in pairs:
            c, b = mods[conv], mods[bn]
            c.bias.zero_()
            b.weight.fill_(1.0)
            b.running_mean.zero_()
            b.running_var.fill_(1.0 - b.eps)
            b.bias.copy_(torch.randn(b.bias.shape, generator=g))
    probe_path = work / "probe.onnx"
    _export(probe, probe_path)
    fresh = onnx.load(str(probe_path))
    f_init = {i.name: numpy_helper.to_array(i) for i in fresh.graph.initializer}
    s_init = {i.name: numpy_helper.to_array(i) for i in shipped.graph.initializer}
    # fresh initializer name -> shipped initializer name, node by node
    f_nodes, s_nodes = list(fresh.graph.node), list(shipped.graph.node)
    if [n.op_type for n in f_nodes] != [n.op_type for n in s_nodes]:
        raise SystemExit("the probe's graph differs from the shipped one (exporter version?)")
    name_map = {}
    for fn, sn in zip(f_nodes, s_nodes):
        for a, b in zip(fn.input, sn.input):
            if a in f_init:
                name_map[a] = b
    # probe state: identify each fresh initializer as (state key, transform)
    sd = probe.state_dict()
    bn_of_conv = dict(pairs)
    by_value = {}
    for k, v in sd.items():
        if v.is_floating_point() and v.numel() > 1:
            by_value.setdefault(tuple(v.flatten()[:4].tolist()), []).append(k)
    new = {k: v.clone() for k, v in sd.items()}
    found = set()
    for fname, arr in f_init.items():
        if fname not in name_map:
            continue
        target = torch.from_numpy(s_init[name_map[fname]].copy())
        if fname in sd:
            new[fname] = target.reshape(sd[fname].shape).to(sd[fname].dtype)
            found.add(fname)
            continue
        t = torch.from_numpy(arr.copy())
        hit = None
        for cand, tr in ((t, None), (t.T if t.dim() == 2 else None, "T")):
            if cand is None:
                continue
            for k in by_value.get(tuple(cand.flatten()[:4].tolist()), []):
                if sd[k].numel() == cand.numel() and torch.allclose(sd[k].flatten(), cand.flatten(), atol=1e-6):
                    hit = (k, tr)
        if hit is None:  # a folded BN shift
            for conv, bn in pairs:
                if torch.allclose(sd[f"{bn}.bias"], t.flatten(), atol=1e-6) and t.numel() == sd[f"{bn}.bias"].numel():
                    hit = (f"{bn}.bias", "shift")
        if hit is None:
            raise SystemExit(f"cannot identify ONNX initializer {fname} {arr.shape}")
        k, tr = hit
        new[k] = (target.T if tr == "T" else target).reshape(sd[k].shape).float()
        found.add(k)
    # unfold: conv bias 0, BN shift = folded bias for now (identity BN), then calibrate
    model = InversionEncoder(cfg).eval()
    with torch.no_grad():
        for conv, bn in pairs:
            new[f"{conv}.bias"] = torch.zeros_like(new[f"{conv}.bias"])
            new[f"{bn}.weight"] = torch.ones_like(new[f"{bn}.weight"])
            new[f"{bn}.running_mean"] = torch.zeros_like(new[f"{bn}.running_mean"])
            new[f"{bn}.running_var"] = torch.full_like(new[f"{bn}.running_var"], 1.0 - mods[bn].eps)
            found |= {f"{conv}.bias", f"{bn}.weight", f"{bn}.running_mean", f"{bn}.running_var"}
        model.load_state_dict(new)
        if "thumb.w_std" not in found and model.thumb is not None:  # deduplicated by the exporter: the same buffer
            model.thumb.w_std.copy_(model.mapper.w_std)
            found.add("thumb.w_std")
    missing = [k for k, v in sd.items() if k not in found and v.is_floating_point() and
               not k.endswith("num_batches_tracked")]
    stats = {"bn_pairs": len(pairs), "initializers": len(s_init), "not_in_onnx": missing}
    if calib is not None:
        calibrate_bn(model, pairs, calib)
    return model, stats


@torch.no_grad()
def calibrate_bn(model: InversionEncoder, pairs: list[tuple[str, str]], x: torch.Tensor) -> None:
    """Give every unfolded BN its input's real statistics without changing the eval-mode function."""
    mods = dict(model.named_modules())
    acc: dict[str, list] = {}
    hooks = [mods[bn].register_forward_pre_hook(
        lambda m, inp, bn=bn: acc.setdefault(bn, []).append(inp[0].transpose(0, 1).flatten(1).double()))
        for _, bn in pairs]
    model.eval()
    for i in range(0, len(x), 32):
        model(x[i:i + 32])
    for h in hooks:
        h.remove()
    for _, bn in pairs:
        z = torch.cat(acc[bn], 1)
        mean, var = z.mean(1).float(), z.var(1).float()
        m = mods[bn]
        shift = m.bias.clone()  # the folded bias (BN is the identity plus this shift now)
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
        m.weight.copy_((var + m.eps).sqrt())
        m.bias.copy_(shift + mean)


def save_fp16(model: InversionEncoder, path: Path = FP16_FILE) -> Path:
    """float16 safetensors of the state dict (buffers and BN statistics included; num_batches_tracked dropped), the
    encoder config in the metadata."""
    from safetensors.torch import save_file
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked")}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"encoder_config": json.dumps(model.cfg.__dict__)})
    tmp.replace(path)
    return path


def load_fp16(path: Path = FP16_FILE) -> InversionEncoder:
    """An InversionEncoder (eval mode, float32) from the float16 safetensors."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    with safe_open(str(path), "pt") as f:
        cfg = EncoderConfig(**json.loads(f.metadata()["encoder_config"]))
    model = InversionEncoder(cfg)
    model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()}, strict=False)
    return model.eval()


def fp16_to_checkpoint(path: Path, dst: Path) -> Path:
    """The float16 weights as a slim training checkpoint (what training.train.encoder --init reads)."""
    model = load_fp16(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "config": {"encoder": model.cfg.__dict__}, "step": 0}, dst)
    return dst


def calibration_inputs(n: int, size: int) -> torch.Tensor:
    """Un-augmented encoder inputs for the BN statistics: half generated crops (the first sample cache under
    ~/.cache/celeblook/encoder_data), half aligned UTKFace training photos (runs/utkface), whichever exist;
    uniform noise only when neither does."""
    from training.data.augment import augment
    from training.data.samples import data_root, load_shards
    from training.data.utkface import load_cache

    parts = []
    caches = sorted(p.parent for p in data_root().glob("*/shard_00000.npz")) if data_root().is_dir() else []
    if caches:
        parts.append(load_shards([caches[0]], n // 2, keys=("crop",))["crop"])
    try:
        crops = load_cache("train")["crop"]
        parts.append(np.asarray(crops[np.sort(np.random.default_rng(0).choice(len(crops), n // 2, replace=False))]))
    except FileNotFoundError:
        pass
    if not parts:
        return torch.rand(n, 3, size, size)
    return augment(np.concatenate(parts), size, np.random.default_rng(0), 0.0)


def parity_against_reference(model: InversionEncoder) -> float:
    """Max abs difference, W+ and embedding, against resources/models/inversion_encoder_parity.npy."""
    from training.export.encoder import PARITY_FILE, parity_input
    ref = np.load(MODELS_DIR / PARITY_FILE)
    with torch.no_grad():
        w, e = model.eval()(torch.from_numpy(parity_input(model.cfg.input_size)))
    return float(np.abs(torch.cat([w.flatten(1), e], 1).numpy() - ref).max())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, default=ONNX_FILE)
    ap.add_argument("--out", type=Path, default=FP16_FILE)
    ap.add_argument("--calib", type=int, default=512, help="aligned faces for the unfolded BN statistics")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    cfg = EncoderConfig(**json.loads({p.key: p.value for p in __import__("onnx").load(str(args.onnx)).metadata_props}
                                     ["encoder_config"]))
    model, stats = recover(args.onnx, calib=calibration_inputs(args.calib, cfg.input_size))
    print(f"recovered: {stats}; parity float32 vs reference: {parity_against_reference(model):.2e}")
    save_fp16(model, args.out)
    back = load_fp16(args.out)
    err = parity_against_reference(back)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB); parity float16 vs reference: {err:.2e}")
    if args.out == FP16_FILE and args.onnx == ONNX_FILE:
        write_manifest_entry(args.out, args.calib, err)


def write_manifest_entry(path: Path, calib: int, err: float, origin: str = "") -> None:
    """The fp16 weights' manifest entry: tied to the shipped ONNX by its sha256 (replace both together)."""
    from engine.models import load_manifest, sha256_file
    from training.export.manifest import update_manifest

    enc = load_manifest()["inversion_encoder"]
    update_manifest({NAME: {
        "file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
        "source": f"float16 torch weights (safetensors, state_dict of training.models.encoder.InversionEncoder, config "
                  f"in the metadata) of the shipped inversion_encoder.onnx (sha256 {enc.sha256}), for warm starts "
                  f"(training.train.encoder --init); "
                  + (origin or f"recovered from that ONNX by training/convert/encoder_from_onnx.py (BatchNorm "
                                f"unfolded, statistics from {calib} aligned faces)")
                  + f", max abs difference to the parity reference {err:.1e}; not loaded by the engine. The "
                  f"encoder's own source: {enc.source}",
        "licence": enc.licence, **({"data": enc.data} if getattr(enc, "data", "") else {}),
        "regenerate": "python -m training.convert.encoder_from_onnx (from the shipped ONNX); a newly trained model: "
                      "python -m training.export.encoder --checkpoint <run>/last.pt writes both",
        "shipped": True}})


if __name__ == "__main__":
    main()
