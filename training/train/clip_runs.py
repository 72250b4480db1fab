"""Plumbing shared by the CLIP training loops (clip_distill, clip_mapper, strength_predictor).

Same conventions as training/train/encoder.py: a run folder with config.json, log.jsonl (one line every
`log_every` steps: step, lr, samples/s, mean losses) and last.pt (model, optimiser, step, config) written every
`ckpt_every` steps and at the end; a restarted run with the same --out resumes from last.pt. Under torchrun
each rank draws its own samples, DDP averages gradients, rank 0 logs and checkpoints.

Face sources (what a step trains on) are train_encoder's: "online" renders z -> w -> W+ -> G on the device
(the GPU recipe), "cache" reads a training.data.samples sample cache. Both give (aligned crops uint8 RGB
(B, S, S, 3), generator renders (B, 3, R, R) in [-1, 1], W+ (B, 23, 512)).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from training.train.encoder import CacheSource, OnlineSource, lr_at, setup_distributed  # noqa: F401 (re-export)


@dataclasses.dataclass
class ClipRunConfig:
    """Fields every CLIP training loop shares (each loop's config extends it)."""

    clip_model: str = "ViT-B-32"  # open_clip model name; "tiny": random tiny CLIP (tests only)
    clip_pretrained: str = "laion2b_s34b_b79k"
    clip_weights: str = ""  # local .safetensors / .bin instead of the HF cache
    clip_cache: str = ""  # Hugging Face cache dir (default: HF's)
    source: str = "online"  # "online" (render on the device) or "cache" (training.data.samples folder)
    data: str = ""
    online_align: str = "jitter"  # online crops: "jitter" (generator framing) or "mediapipe"
    batch: int = 64
    steps: int = 20_000
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 500
    log_every: int = 50
    ckpt_every: int = 1000
    seed: int = 0
    threads: int = 0
    max_minutes: float = 0.0


def common_args(ap) -> None:
    """argparse flags for ClipRunConfig fields (None = keep the preset's value)."""
    ap.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log); resumes from last.pt")
    for name in ("clip_model", "clip_pretrained", "clip_weights", "clip_cache", "data"):
        ap.add_argument(f"--{name.replace('_', '-')}")
    ap.add_argument("--source", choices=["online", "cache"])
    ap.add_argument("--online-align", choices=["jitter", "mediapipe"])
    for name in ("batch", "steps", "warmup", "log_every", "ckpt_every", "seed", "threads"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int)
    for name in ("lr", "max_minutes"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=float)


def build_config(cls, presets: dict, preset: str, **overrides):
    values = json.loads(json.dumps(presets[preset]))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def load_teacher(cfg, device):
    """The teacher named by a config (`clip_model`, `clip_pretrained`, `clip_weights`, `clip_cache`); the tiny
    random one when clip_model == "tiny" (tests only)."""
    from training.models.clip_teacher import load_clip, tiny_clip

    if cfg.clip_model == "tiny":
        return tiny_clip().to(device)
    return load_clip(cfg.clip_model, cfg.clip_pretrained, cfg.clip_cache or None, cfg.clip_weights or None,
                     device=device)


def make_source(cfg, generator, device, rank: int, world: int, limit: int | None = None):
    if cfg.source == "cache":
        return CacheSource(cfg.data, rank, world, cfg.seed, limit)
    return OnlineSource(generator, device, rank, cfg.seed, cfg.online_align)


def images_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Renders (B, 3, H, W) in [-1, 1] -> (B, 3, size, size) (area downsampling, bilinear up)."""
    import torch.nn.functional as F

    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="area" if x.shape[-1] > size else "bilinear")


def crops_to_images(crops: np.ndarray, device) -> torch.Tensor:
    """uint8 RGB crops (B, S, S, 3) -> float (B, 3, S, S) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(crops)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1


class Run:
    """Log / checkpoint / resume bookkeeping of one training run (rank 0 writes)."""

    def __init__(self, out: Path, cfg, modules: dict[str, torch.nn.Module], opt, rank: int, device):
        self.out, self.cfg, self.modules, self.opt, self.rank = Path(out), cfg, modules, opt, rank
        self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt = self.out / "last.pt"
        self.step, self.train_seconds = 0, 0.0
        if self.ckpt.is_file():
            state = torch.load(self.ckpt, map_location=device, weights_only=True)
            for name, m in modules.items():
                m.load_state_dict(state[name])
            opt.load_state_dict(state["optimizer"])
            self.step, self.train_seconds = state["step"], state.get("train_seconds", 0.0)
            if rank == 0:
                print(f"resumed from {self.ckpt} at step {self.step}", flush=True)
        if rank == 0:
            (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        self.log_file = open(self.out / "log.jsonl", "a") if rank == 0 else None
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.t0, self.seen, self.start = time.time(), 0, time.time()
        self.last: dict = {}

    def set_lr(self) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, self.cfg)

    def done(self) -> bool:
        return self.step >= self.cfg.steps

    def end_step(self, parts: dict[str, torch.Tensor | float], samples: int) -> bool:
        """Account one optimiser step; log / checkpoint when due. Returns True when the run must stop now."""
        self.step += 1
        self.seen += samples
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1
        out_of_time = bool(self.cfg.max_minutes) and time.time() - self.start > self.cfg.max_minutes * 60
        final = self.step >= self.cfg.steps or out_of_time
        if self.rank == 0 and (self.step % self.cfg.log_every == 0 or final):
            dt = time.time() - self.t0
            self.train_seconds += dt
            self.last = {"step": self.step, "lr": round(lr_at(self.step - 1, self.cfg), 7),
                         "samples_per_s": round(self.seen / max(dt, 1e-9), 2),
                         "train_seconds": round(self.train_seconds, 1),
                         **{k: float(f"{self.sums[k] / self.counts[k]:.7g}") for k in self.sums}}
            print("  ".join(f"{k} {v}" for k, v in self.last.items()), flush=True)
            self.log_file.write(json.dumps(self.last) + "\n")
            self.log_file.flush()
            self.t0, self.seen, self.sums, self.counts = time.time(), 0, {}, {}
        if self.rank == 0 and (self.step % self.cfg.ckpt_every == 0 or final):
            self.save()
        if out_of_time and self.rank == 0:
            print(f"stopping after {self.cfg.max_minutes} min at step {self.step}", flush=True)
        return out_of_time

    def save(self) -> None:
        tmp = self.ckpt.with_suffix(".tmp")
        state = {name: m.state_dict() for name, m in self.modules.items()}
        state.update(optimizer=self.opt.state_dict(), step=self.step, config=dataclasses.asdict(self.cfg),
                     train_seconds=self.train_seconds)
        torch.save(state, tmp)
        tmp.replace(self.ckpt)

    def optimise(self, loss: torch.Tensor, params, clip_norm: float | None = 5.0) -> None:
        """One optimiser step on `loss` (gradients clipped to `clip_norm` when given)."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
        self.opt.step()

    def finish(self, source=None) -> dict:
        """Close the run (final checkpoint, log) and the sample source; the last logged values."""
        self.close()
        if source is not None and hasattr(source, "close"):
            source.close()
        return self.last

    def close(self) -> None:
        if self.log_file:
            self.log_file.close()
            self.log_file = None


def read_checkpoint(path: str | Path) -> dict:
    """A run's checkpoint (our own file: tensors, dicts, numbers), loaded with weights_only=True on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines() if line.strip()]
