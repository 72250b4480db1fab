"""Distil the CLIP image encoder into the small E_I backbone of the inversion encoder, on generated faces.

    # GPU machine with internet (weights fetched once: python -m training.models.clip_teacher --fetch)
    torchrun --standalone --nproc_per_node=8 -m training.train.clip_distill --out runs/clip_distill
    python -m training.train.clip_distill --preset gpu --out runs/clip_distill          # one GPU

E_I is training.models.encoder.ImageEncoder (the inversion encoder's backbone and head, same interface: aligned RGB
crop in [0, 1] (B, 3, S, S) -> unit embedding) with embed_dim set to the teacher's (512 for ViT-B/32, 768 for
ViT-L/14). Each step: a batch of faces rendered by MobileStyleGAN (z -> w -> W+ near W -> G, cropped as a photo
would be); the teacher embeds the clean crop, the student the augmented crop (colour, blur, JPEG, small
misalignment: training.data.augment), and
    loss = w_cos (1 - cos(s, t)) + w_mse |s - t|^2 + w_rel MSE(S S^T, T T^T)
on unit embeddings s, t. Generated faces all sit in a narrow cone of CLIP space (high pairwise cosine), so the
first two terms are satisfied early by the mean face; the relational term (in-batch similarity matrices) keeps
the differences between faces, which is what the mapper and the strength predictor read.
Logged: `cos` (mean student-teacher cosine) and `cos_centred` (after removing the batch's teacher mean).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from training.train.clip_runs import (ClipRunConfig, Run, build_config, common_args, read_checkpoint, crops_to_images, load_teacher,
                                      make_source, setup_distributed)
from training.models.encoder import EncoderConfig, ImageEncoder, count_parameters
from training.data.augment import augment


@dataclass
class DistillConfig(ClipRunConfig):
    backbone: str = "mobilenetv3_large_100"
    input_size: int = 160
    spatial_channels: int = 64
    w_cos: float = 1.0
    w_mse: float = 1.0
    w_rel: float = 4.0
    aug_strength: float = 1.0


PRESETS = {
    "gpu": {},  # ~20k steps x 64 per GPU
    "cpu": {"source": "cache", "batch": 16, "steps": 400, "lr": 1e-3, "warmup": 20, "log_every": 10,
            "ckpt_every": 100, "threads": 2},
    "tiny": {"clip_model": "tiny", "source": "cache", "batch": 4, "steps": 8, "lr": 2e-3, "warmup": 0,
             "log_every": 1, "ckpt_every": 1000, "backbone": "mobilenetv3_small_050", "input_size": 64,
             "spatial_channels": 8, "aug_strength": 0.0, "threads": 2},
}


def make_config(preset: str = "gpu", **overrides) -> DistillConfig:
    return build_config(DistillConfig, PRESETS, preset, **overrides)


def student_for(cfg: DistillConfig, embed_dim: int) -> ImageEncoder:
    return ImageEncoder(EncoderConfig(backbone=cfg.backbone, input_size=cfg.input_size, embed_dim=embed_dim,
                                      spatial_channels=cfg.spatial_channels))


def distill_losses(s: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Unit student / teacher embeddings (B, D) -> loss terms and the cosine metrics."""
    cos = (s * t).sum(-1)
    mean = t.mean(0, keepdim=True)
    centred = F.cosine_similarity(s - mean, t - mean, dim=-1)
    rel = F.mse_loss(s @ s.T, t @ t.T)
    return {"cos_loss": (1 - cos).mean(), "mse": (s - t).pow(2).sum(-1).mean(), "rel": rel,
            "cos": cos.mean().detach(), "cos_centred": centred.mean().detach()}


def train(cfg: DistillConfig, out: Path, generator=None, teacher=None, limit: int | None = None) -> dict:
    rank, world, _, device = setup_distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    teacher = (teacher or load_teacher(cfg, device)).to(device)
    if cfg.source == "online" and generator is None:
        from training.convert.generator import load_weights
        generator = load_weights().to(device).eval().requires_grad_(False)
    source = make_source(cfg, generator, device, rank, world, limit)
    student = student_for(cfg, teacher.embed_dim).to(device)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = Run(out, cfg, {"model": student}, opt, rank, device)
    net = torch.nn.parallel.DistributedDataParallel(student, find_unused_parameters=True) if world > 1 else student
    if rank == 0:
        print(f"E_I {cfg.backbone} {count_parameters(student) / 1e6:.2f} M parameters -> {teacher.embed_dim}-d, "
              f"teacher {teacher.name}, {world} process(es) on {device}", flush=True)
    aug_rng = np.random.default_rng([cfg.seed, rank, 11, run.step])
    while not run.done():
        run.set_lr()
        crops, _, _ = source.batch(cfg.batch)
        with torch.no_grad():
            t = teacher.encode_images(crops_to_images(crops, device))
        s = net(augment(crops, cfg.input_size, aug_rng, cfg.aug_strength).to(device))
        parts = distill_losses(s, t)
        loss = cfg.w_cos * parts["cos_loss"] + cfg.w_mse * parts["mse"] + cfg.w_rel * parts["rel"]
        run.optimise(loss, student.parameters())
        if run.end_step({"loss": loss.detach(), **parts}, cfg.batch * world):
            break
    return run.finish(source)


def load_student(path: str | Path) -> ImageEncoder:
    """The distilled E_I (eval) from a clip_distill checkpoint; its embed_dim is read from the weights."""
    state = read_checkpoint(path)
    cfg = DistillConfig(**state["config"])
    model = student_for(cfg, int(state["model"]["project.weight"].shape[0]))
    model.load_state_dict(state["model"])
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="gpu")
    common_args(ap)
    ap.add_argument("--backbone")
    ap.add_argument("--input-size", type=int)
    for name in ("w_cos", "w_mse", "w_rel", "aug_strength"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=float)
    args = vars(ap.parse_args(argv))
    out, preset = args.pop("out"), args.pop("preset")
    train(make_config(preset, **args), out)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

