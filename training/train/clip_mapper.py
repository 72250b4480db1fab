"""The CSLA-style mapper f: CLIP embedding -> W+ (23 x 512), trained data-free on generated faces.

    # GPU machine with internet
    torchrun --standalone --nproc_per_node=8 -m training.train.clip_mapper --out runs/clip_mapper
    python -m training.train.clip_mapper --preset gpu --out runs/clip_mapper                # one GPU

Training pairs come from the generator itself: z -> w -> W+ (near W) -> G(W+) -> CLIP image embedding e.
f learns e -> W+; text works at inference because CLIP puts text and image embeddings in one space, and a text
edit only uses a difference, ΔW+ = f(t_target) - f(t_source), which cancels most of the text/image offset.

Model (`ClipMapper`): the seed's design, 6 Linear layers with GELU between them, minus the seed's final GELU
(it clipped the residual at about -0.17: half of every latent direction was unreachable). CSLA's centring on
both sides: the input is e - e_mean (e_mean = mean CLIP embedding of generated faces, "feat_base", measured at
the start of training and stored in the model), scaled to unit RMS; the output is a residual around w_avg in
w_std units. As in the inversion encoder, the last layer predicts one W residual shared by every slot plus a
low-rank per-slot correction (zero on the slots the released generator ignores), so codes stay near W, where
the released student renders well (DESIGN.md §4).

Losses, all on the slots the generator uses:
    w_mse  MSE((pred - w) / w_std)      w_cos  1 - cos(pred - w_avg, w - w_avg)
    w_pair 1 - cos(f(e_i) - f(e_j), w_i - w_j) over in-batch pairs (DeltaEdit's paired differences: the
           quantity text edits use)
    w_style MSE in the generator's style space (every modulation's affine output A_l w_slot, each layer scaled
           by its variance under W's spread): CSLA's loss_s; errors weighted by how much the image uses them.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from training.train.clip_runs import (ClipRunConfig, Run, build_config, common_args, read_checkpoint, load_teacher, make_source,
                                      setup_distributed)
from training.models.encoder import N_SLOTS, STYLE_DIM, USED_SLOTS, count_parameters, latent_losses


@dataclass
class MapperConfig(ClipRunConfig):
    hidden: int = 768
    layers: int = 6  # Linear layers in all, the head included
    slot_rank: int = 32
    w_mse: float = 1.0
    w_cos: float = 0.5
    w_pair: float = 0.5
    w_spread: float = 0.05
    w_style: float = 0.5
    calib_batches: int = 8  # batches averaged for e_mean / input scale at step 0


PRESETS = {
    "gpu": {"steps": 30_000, "batch": 128, "lr": 5e-4},
    "cpu": {"source": "cache", "batch": 32, "steps": 500, "lr": 1e-3, "warmup": 20, "log_every": 10,
            "ckpt_every": 100, "threads": 2, "w_style": 0.0, "calib_batches": 4},
    "tiny": {"clip_model": "tiny", "source": "cache", "batch": 8, "steps": 30, "lr": 2e-3, "warmup": 0,
             "log_every": 1, "ckpt_every": 1000, "hidden": 64, "layers": 3, "slot_rank": 4, "threads": 2,
             "calib_batches": 1},
}


def make_config(preset: str = "gpu", **overrides) -> MapperConfig:
    return build_config(MapperConfig, PRESETS, preset, **overrides)


class ClipMapper(nn.Module):
    """f: unit CLIP embedding (B, D) -> W+ (B, 23, 512) = w_avg + w_std * residual. No final activation."""

    def __init__(self, embed_dim: int, hidden: int = 768, layers: int = 6, slot_rank: int = 32,
                 w_avg: torch.Tensor | None = None, w_std: torch.Tensor | None = None):
        super().__init__()
        self.embed_dim = embed_dim
        trunk: list[nn.Module] = []
        for i in range(layers - 1):
            trunk += [nn.Linear(embed_dim if i == 0 else hidden, hidden), nn.GELU()]
        self.trunk = nn.Sequential(*trunk)
        h = hidden if layers > 1 else embed_dim
        self.w_head = nn.Linear(h, STYLE_DIM)
        self.slot_code = nn.Linear(h, N_SLOTS * slot_rank)
        self.slot_basis = nn.Parameter(torch.randn(N_SLOTS, slot_rank, STYLE_DIM) / slot_rank ** 0.5)
        self.rank = slot_rank
        nn.init.normal_(self.w_head.weight, std=0.01)
        nn.init.zeros_(self.w_head.bias)
        nn.init.normal_(self.slot_code.weight, std=0.002)
        nn.init.zeros_(self.slot_code.bias)
        mask = torch.zeros(N_SLOTS, 1)
        mask[list(USED_SLOTS)] = 1.0
        self.register_buffer("slot_mask", mask)
        self.register_buffer("e_mean", torch.zeros(embed_dim))
        self.register_buffer("in_scale", torch.ones(()))
        self.register_buffer("w_avg", torch.zeros(STYLE_DIM) if w_avg is None else w_avg.float().clone())
        self.register_buffer("w_std", torch.ones(STYLE_DIM) if w_std is None else w_std.float().clone())

    @torch.no_grad()
    def calibrate(self, embeddings: torch.Tensor) -> None:
        """CSLA centre: e_mean = mean embedding of generated faces; in_scale = 1 / RMS of the centred inputs."""
        self.e_mean.copy_(embeddings.mean(0))
        self.in_scale.copy_(1.0 / (embeddings - self.e_mean).pow(2).mean().sqrt().clamp_min(1e-6))

    def residual(self, embedding: torch.Tensor) -> torch.Tensor:
        x = self.trunk((embedding - self.e_mean) * self.in_scale)
        base = self.w_head(x)
        code = self.slot_code(x).view(-1, N_SLOTS, self.rank)
        delta = torch.einsum("bsr,srd->bsd", code, self.slot_basis) * self.slot_mask
        return (base.unsqueeze(1) + delta) * self.w_std

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.w_avg + self.residual(embedding)


class StyleSpace(nn.Module):
    """The generator's style space: for every modulation, its affine output A_l w_slot (bias left out: it
    cancels in differences), each layer divided by its RMS under W's per-dimension spread w_std."""

    def __init__(self, synthesis, w_std: torch.Tensor):
        super().__init__()
        mods = [(0, synthesis.conv1.conv.modulation.affine)]
        for i, block in enumerate(synthesis.layers):
            mods += [(3 * i + 1, block.up.modulation.affine), (3 * i + 1, block.conv1.conv.modulation.affine),
                     (3 * i + 2, block.conv2.conv.modulation.affine)]
            if block.to_img is not None:
                mods.append((3 * i + 3, block.to_img.conv.modulation.affine))
        self.slots = [s for s, _ in mods]
        self.weights = [a.weight.detach() for _, a in mods]
        self.scales = [float((a.weight.detach().pow(2) @ w_std.pow(2).to(a.weight.device)).mean().sqrt())
                       for _, a in mods]

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d = pred - target
        terms = [F.linear(d[:, s], w).pow(2).mean() / (k * k) for s, w, k in zip(self.slots, self.weights, self.scales)]
        return torch.stack(terms).mean()


def pair_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cos of in-batch differences (each sample against the next one) on the used slots."""
    slots = list(USED_SLOTS)
    dp = (pred - pred.roll(1, 0))[:, slots].flatten(1)
    dt = (target - target.roll(1, 0))[:, slots].flatten(1)
    return 1 - F.cosine_similarity(dp, dt, dim=-1).mean()


def train(cfg: MapperConfig, out: Path, generator=None, teacher=None, limit: int | None = None) -> dict:
    rank, world, _, device = setup_distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    teacher = (teacher or load_teacher(cfg, device)).to(device)
    if generator is None and (cfg.source == "online" or cfg.w_style > 0):
        from training.convert.generator import load_weights
        generator = load_weights()
    if generator is not None:
        generator = generator.to(device).eval().requires_grad_(False)
    source = make_source(cfg, generator, device, rank, world, limit)
    mapper = ClipMapper(teacher.embed_dim, cfg.hidden, cfg.layers, cfg.slot_rank, source.w_avg, source.w_std)
    mapper = mapper.to(device)
    opt = torch.optim.AdamW(mapper.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = Run(out, cfg, {"model": mapper}, opt, rank, device)
    if run.step == 0:  # CSLA centre from the generator's own faces (rank 0's value is broadcast by DDP)
        with torch.no_grad():
            e = torch.cat([teacher.encode_images(source.batch(cfg.batch)[1].to(device))
                           for _ in range(cfg.calib_batches)])
        mapper.calibrate(e)
    style = StyleSpace(generator.synthesis, mapper.w_std) if cfg.w_style > 0 else None
    net = torch.nn.parallel.DistributedDataParallel(mapper) if world > 1 else mapper
    if rank == 0:
        print(f"mapper f {count_parameters(mapper) / 1e6:.2f} M parameters, {teacher.embed_dim}-d -> W+, teacher "
              f"{teacher.name}, {world} process(es) on {device}", flush=True)
    while not run.done():
        run.set_lr()
        _, renders, wplus = source.batch(cfg.batch)
        wplus = wplus.to(device)
        with torch.no_grad():
            e = teacher.encode_images(renders.to(device))
        pred = net(e)
        parts = latent_losses(pred, wplus, mapper.w_avg, mapper.w_std)
        parts["pair"] = pair_loss(pred, wplus)
        loss = cfg.w_mse * parts["mse"] + cfg.w_cos * parts["cos"] + cfg.w_pair * parts["pair"] + \
            cfg.w_spread * parts["spread"]
        if style is not None:
            parts["style"] = style.loss(pred, wplus)
            loss = loss + cfg.w_style * parts["style"]
        run.optimise(loss, mapper.parameters())
        if run.end_step({"loss": loss.detach(), **{k: v.detach() for k, v in parts.items()}}, cfg.batch * world):
            break
    return run.finish(source)


def load_mapper(path: str | Path) -> ClipMapper:
    """The trained f (eval) from a clip_mapper checkpoint."""
    state = read_checkpoint(path)
    cfg = MapperConfig(**state["config"])
    model = ClipMapper(int(state["model"]["e_mean"].shape[0]), cfg.hidden, cfg.layers, cfg.slot_rank)
    model.load_state_dict(state["model"])
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="gpu")
    common_args(ap)
    for name in ("hidden", "layers", "slot_rank", "calib_batches"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int)
    for name in ("w_mse", "w_cos", "w_pair", "w_spread", "w_style"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=float)
    args = vars(ap.parse_args(argv))
    out, preset = args.pop("out"), args.pop("preset")
    train(make_config(preset, **args), out)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
