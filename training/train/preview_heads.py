"""Distil wavelet heads on blocks 4 and 5 so the generator can stop at 256 or 512 px (live preview).

    python -m training.train.preview_heads [--samples 384] [--steps 1500] [--device cpu|cuda]

MobileStyleGAN's intermediate heads were training-only and are not in the release. We train new ones with
the released network frozen: sample W (psi ~ U(0.5, 1.0)) plus small per-slot noise (inversions are W+ near
W), run the frozen network once, keep block 4's (256 ch, 128 px) and block 5's (128 ch, 256 px) features and
the 1024-px image, and fit each head so that the inverse Haar transform of its 12 channels matches the
1024-px image area-downsampled to 256 / 512 px (L1 + MSE). Features are cached in memory (fp16) and the
heads trained for many epochs over them: a few minutes on a CPU, seconds on a GPU.

Writes resources/models/preview_heads.safetensors (the heads only; manifest entry) and a JSON report.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.atomic import write_json_atomic
from engine.models import MODELS_DIR, sha256_file
from training.convert.generator import load_weights
from training.models.mobilestylegan import N_SLOTS, MobileStyleGAN, slot_of, wavelets_to_image

HEAD_BLOCKS = (4, 5)  # -> 256 px, 512 px
HEADS_PATH = MODELS_DIR / "preview_heads.safetensors"


def sample_wplus(model: MobileStyleGAN, n: int, g: torch.Generator, slot_noise: float = 0.05) -> torch.Tensor:
    """n W+ codes near W: truncated W (psi ~ U(0.5, 1)) in every slot plus small per-slot noise."""
    z = torch.randn(n, 512, generator=g)
    psi = 0.5 + 0.5 * torch.rand(n, 1, generator=g)
    w = model.truncate(model.mapping(z), 1.0)
    w = model.w_avg + psi * (w - model.w_avg)
    return w[:, None].repeat(1, N_SLOTS, 1) + slot_noise * torch.randn(n, N_SLOTS, 512, generator=g)


@torch.no_grad()
def teacher_batch(model: MobileStyleGAN, wplus: torch.Tensor) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """{block: (features fp16, target image at the head's size)} from one frozen forward pass."""
    syn = model.synthesis
    x = syn.features(wplus, HEAD_BLOCKS[0])
    feats = {HEAD_BLOCKS[0]: x}
    for i in range(HEAD_BLOCKS[0] + 1, len(syn.layers)):
        x = syn.layers[i](x, wplus[:, slot_of(i, "up")], wplus[:, slot_of(i, "conv2")])
        feats[i] = x
    last = len(syn.layers) - 1
    image = wavelets_to_image(syn.layers[last].to_img(x, wplus[:, slot_of(last, "head")]))
    out = {}
    for k in HEAD_BLOCKS:
        size = 2 * feats[k].shape[-1]
        out[k] = (feats[k].half(), F.interpolate(image, size=(size, size), mode="area"))
    return out


def init_head(head: torch.nn.Module) -> None:
    """Style scale starts at 1 (modulation bias 1, small weights) and the output near 0."""
    with torch.no_grad():
        head.conv.modulation.affine.weight.normal_(0.0, 0.01)
        head.conv.modulation.affine.bias.fill_(1.0)
        head.conv.weight.normal_(0.0, 0.1)
        head.bias.zero_()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(4.0 / F.mse_loss(a.clamp(-1, 1), b.clamp(-1, 1))))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=384, help="training codes (features cached in memory)")
    ap.add_argument("--val", type=int, default=32, help="held-out codes for the report")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--crop", type=int, default=64, help="feature crop per step (px of the feature map)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=HEADS_PATH)
    ap.add_argument("--report", type=Path, default=Path("docs/results/preview_heads_train.json"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    model = load_weights().to(dev).eval().requires_grad_(False)
    heads = {k: model.synthesis.add_preview_head(k).to(dev) for k in HEAD_BLOCKS}
    for h in heads.values():
        init_head(h)
        h.requires_grad_(True)
    g = torch.Generator().manual_seed(args.seed)

    t0 = time.time()
    def cache(n: int) -> tuple[torch.Tensor, dict]:
        codes, data = [], {k: ([], []) for k in HEAD_BLOCKS}
        for i in range(0, n, 4):
            wplus = sample_wplus(model.cpu() if dev.type == "cpu" else model, min(4, n - i), g).to(dev)
            for k, (f, t) in teacher_batch(model, wplus).items():
                data[k][0].append(f)
                data[k][1].append(t)
            codes.append(wplus)
            if (i // 4) % 16 == 0:
                print(f"cached {i + len(wplus)}/{n} teacher samples ({time.time() - t0:.0f} s)", flush=True)
        return torch.cat(codes), {k: (torch.cat(f), torch.cat(t)) for k, (f, t) in data.items()}

    codes, data = cache(args.samples)
    val_codes, val = cache(args.val)
    params = [p for h in heads.values() for p in h.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    log = []
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(codes), (args.batch,), generator=g).to(dev)
        loss = 0.0
        for k, head in heads.items():
            feats, target = data[k]
            # a random crop: the head is a 1x1 conv and the inverse Haar transform acts on 2x2 blocks, so a
            # feature crop maps exactly onto the image crop at twice its offset and size
            cs = min(args.crop, feats.shape[-1])
            oy, ox = (int(v) for v in torch.randint(0, feats.shape[-1] - cs + 1, (2,), generator=g))
            f = feats[idx][..., oy : oy + cs, ox : ox + cs].float()
            t = target[idx][..., 2 * oy : 2 * (oy + cs), 2 * ox : 2 * (ox + cs)]
            pred = wavelets_to_image(head(f, codes[idx][:, slot_of(k, "head")]))
            loss = loss + F.l1_loss(pred, t) + F.mse_loss(pred, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps:
            with torch.no_grad():
                res = {f"val_psnr_{2 * val[k][0].shape[-1]}": round(psnr(
                    wavelets_to_image(h(val[k][0].float(), val_codes[:, slot_of(k, "head")])), val[k][1]), 2)
                    for k, h in heads.items()}
            entry = {"step": step, "loss": round(float(loss), 5), **res, "seconds": round(time.time() - t0)}
            log.append(entry)
            print(json.dumps(entry), flush=True)

    from safetensors.torch import save_file

    state = {f"{k}.{name}": p.detach().cpu().contiguous() for k, h in heads.items() for name, p in h.state_dict().items()}
    tmp = args.out.with_suffix(".tmp")
    save_file(state, str(tmp))
    tmp.replace(args.out)
    if args.out == HEADS_PATH:
        from training.export.manifest import update_manifest

        update_manifest({"preview_heads": {
            "file": args.out.name, "sha256": sha256_file(args.out), "bytes": args.out.stat().st_size,
            "source": f"wavelet heads for blocks {HEAD_BLOCKS} distilled from the 1024-px output on "
                      f"{args.samples} generated codes ({args.steps} steps, {args.device})",
            "licence": "Apache-2.0 (ours)", "regenerate": "python -m training.train.preview_heads", "shipped": True}})
    report = {"config": vars(args) | {"out": str(args.out), "report": str(args.report)}, "log": log,
              "minutes": round((time.time() - t0) / 60, 1)}
    write_json_atomic(args.report, report)
    print(f"wrote {args.out} ({report['minutes']} min)")


def load_preview_heads(model: MobileStyleGAN, path: Path = HEADS_PATH) -> MobileStyleGAN:
    """Add the trained preview heads to `model` (in place) from their safetensors file."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    for k in sorted({int(key.split(".")[0]) for key in state}):
        head = model.synthesis.add_preview_head(k)
        head.load_state_dict({key.split(".", 1)[1]: v for key, v in state.items() if key.startswith(f"{k}.")})
    return model


if __name__ == "__main__":
    main()
