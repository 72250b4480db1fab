"""Train the inversion encoder (E_I + f) data-free on MobileStyleGAN; single process, or several GPUs with torchrun.

    # full recipe (GPU defaults; samples are rendered on the fly by the torch generator on each GPU)
    # (--align-workers is per process: give each rank about cores / ranks - 1)
    torchrun --standalone --nproc_per_node=8 -m training.train.encoder --out runs/encoder_gpu --align-workers 7
    # the shipped model's last leg: one H100, warm start, 15 min of training (docs/ENCODER.md)
    python -m training.train.encoder --out runs/enc_gpu1 --init enc_ef2_slim.pt --thumb-size 32 --thumb-rank 128 \
        --align-workers 14 --align-res 512 --batch 64 --image-batch 16 --lr 4e-4 --warmup 300 --steps 200000 \
        --anneal-minutes 15 --aug-strength 0.5 --colour-strength 0
    # real photos mixed in, warm-started from the shipped model's float16 weights (docs/ENCODER.md, "Real faces")
    torchrun --standalone --nproc_per_node=2 -m training.train.encoder --preset cpu --data D/prev3k --val 100 \
        --init resources/models/inversion_encoder_fp16.safetensors --thumb-size 32 --thumb-rank 128 --out runs/x \
        --real train --real-batch 4 --w-real-id 0.5 --freeze-bn --image-every 0 --image-block 4 --threads 1
    # real photos with the quality mode's W+ as targets: latent losses only, no render (docs/ENCODER.md)
    torchrun --standalone --nproc_per_node=2 -m training.train.encoder --preset cpu --data D/prev3k --val 100 \
        --init resources/models/inversion_encoder_fp16.safetensors --thumb-size 32 --thumb-rank 128 --out runs/x \
        --pseudo runs/morph_targets/train.npz --pseudo-val runs/morph_targets/heldout.npz --anchor --image-every 0 \
        --freeze-bn --threads 1
    # CPU scale: from a sample cache built by training.data.samples
    python -m training.train.encoder --preset cpu --data ~/.cache/celeblook/encoder_data/cpu2k --out runs/enc_cpu

Each step: a batch of (aligned crop, W+ target, 256-px target render) either from the cache or rendered on the
fly (source "online": the training recipe of training.data.samples, z -> w (psi mix) -> W+ near W -> render on
the device -> MediaPipe crop, on `align_workers` CPU processes one batch ahead: training.data.align_pool), augmented on
the fly (colour, gamma, grayscale, blur, noise, JPEG, small similarity
jitter) and resized to the encoder's input. Loss =
    w_mse * MSE(residual / w_std) + w_cos * (1 - cos(residual)) + w_spread * slot spread   (every step)
  + w_l1 * L1(G(W+)_256, target_256) + w_msssim * (1 - MS-SSIM at 256 px)                (every `image_every`
  + w_id * (1 - cos of the face recogniser's embeddings of G(W+)_256 and target_256)         steps, on `image_batch` samples)
  + w_real_l1 * masked L1 + w_real_msssim * (1 - MS-SSIM) + w_real_id * (1 - cos)       (every `real_every`
    of G(E(photo)) against the aligned real photo itself (UTKFace, --real train; the      steps, on
    photo's own pixels only: training/data/utkface.py pads the tight crops)                `real_batch` photos)
  + w_pseudo * (w_mse * MSE + w_cos * (1 - cos)) of E(photo) against the quality mode's    (every step, on
    W+ of real photos (UTKFace, --pseudo runs/morph_targets/train.npz: pseudo-targets)     `pseudo_batch` photos)
(with --anchor the first term's target is the frozen warm start's own code for the crop, not the cache's W+)
where G is the frozen torch generator with the official weights (gradients reach W+ only) and the recogniser is the
engine's face_id.onnx run in torch (training/models/face_id.py, frozen; off by default, w_id 0), read through one
fixed recognition crop: the five points MediaPipe finds on the generator's render of w_avg (the generator's
framing is FFHQ's, so faces sit within a few pixels of it).

Progress: a log line every `log_every` steps (losses, samples/s, lr) to stdout and <out>/log.jsonl. Checkpoints:
<out>/last.pt every `ckpt_every` steps and at the end (model, optimiser, scheduler, step, config); a run restarted
with the same --out resumes from last.pt. --anneal-minutes fits the cosine schedule to a time budget (a lent GPU's
minutes); slim_checkpoint() drops the optimiser state to carry weights between machines. DDP: torchrun sets
RANK/WORLD_SIZE/LOCAL_RANK; gradients are averaged by torch's DistributedDataParallel, each rank draws its own
samples (distinct seeds / cache shards), rank 0 logs and checkpoints, every rank follows rank 0's clock.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from training.data.augment import augment
from training.models.encoder import (USED_SLOTS, EncoderConfig, InversionEncoder, count_parameters, image_losses,
                                     latent_losses)
from training.models.face_id import identity_loss


@dataclass
class TrainConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    source: str = "online"  # "online" (render on the device with the torch generator) or "cache"
    data: str = ""  # cache folder(s), comma-separated (source "cache")
    batch: int = 32  # per process
    steps: int = 200_000
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 2000
    w_mse: float = 1.0
    w_cos: float = 0.5
    w_spread: float = 0.1
    w_l1: float = 1.0
    w_msssim: float = 1.0
    w_id: float = 0.0  # recogniser identity loss on the image-loss samples (0: off)
    image_every: int = 1  # image loss every N steps (0: never)
    image_batch: int = 8  # samples of the batch that go through the generator for the image loss
    image_res: int = 256
    # generator output for the image loss: -1 the full 1024-px network; 4 (5) the distilled 256 (512)-px preview
    # head (training/train/preview_heads.py), ~4x (2x) cheaper, the CPU choice; its gradient reaches slots <= head's
    image_block: int = -1
    init: str = ""  # start from this checkpoint's model weights (fresh optimiser and schedule), e.g. a CPU run
    online_align: str = "mediapipe"  # online source: "mediapipe" (as for photos) or "jitter" (generator framing)
    align_workers: int = 0  # online source: CPU processes per rank for MediaPipe + augmentation (0: in the main one)
    align_res: int = 1024  # online source: renders are area-downsampled to this size before MediaPipe and the crop
    aug_strength: float = 1.0
    colour_strength: float = -1.0  # colour/exposure augmentation (negative: aug_strength); 0 keeps skin tone readable
    log_every: int = 50
    ckpt_every: int = 2000
    seed: int = 0
    threads: int = 0  # torch CPU threads (0: torch's default)
    max_minutes: float = 0.0  # stop (and checkpoint) after this wall time (0: no limit)
    anneal_minutes: float = 0.0  # the cosine reaches its floor after this much training time (resumes counted)
    # or at `steps`, whichever comes first, and training ends there: a fixed-time run that still anneals (0: off)
    stop_step: int = 0  # stop at this step, the schedule still planned for `steps` (0: at `steps`); replays a
    # run that --max-minutes cut short
    val: int = 0  # cache source: hold out the last N samples; their latent MSE (no augmentation) is logged
    # real photos (UTKFace, training/data/utkface.py; never its held-out 1,000): image-space losses through the
    # generator on `real_batch` aligned photos every `real_every` steps, masked to the photo's own pixels
    real: str = ""  # "" off; a cached UTKFace split ("train")
    real_every: int = 1
    real_batch: int = 4
    w_real_l1: float = 1.0
    w_real_msssim: float = 1.0
    w_real_id: float = 0.0  # the recogniser's 1 - cos against the photo itself
    w_real_spread: float = 0.1  # keep real-photo codes as close to W as generated ones
    # real photos with pseudo-targets: the quality mode's W+ of UTKFace training photos (training/data/morph_targets.py,
    # runs/morph_targets/train.npz; the app's still inversion, identity and skin matched through the full generator):
    # the latent loss on `pseudo_batch` of them every step; no render, so it is cheap on a CPU
    pseudo: str = ""  # "" off; the .npz of names and W+ targets
    pseudo_batch: int = 4
    w_pseudo: float = 1.0  # weight of their latent loss (w_mse * MSE + w_cos * (1 - cos))
    pseudo_val: str = ""  # held-out photos' pseudo-targets (runs/morph_targets/heldout.npz): their MSE is logged
    anchor: bool = False  # generated faces: the warm start's own codes as targets instead of the cache's W+, so a
    # short leg on real photos cannot drift on a small cache (the warm start stays where it was on generated faces)
    pseudo_slots: int = 23  # the pseudo loss reads W+ slots below this (10: coarse + middle, 4-32 px; finer
    # slots, colour included, then follow the generated supervision alone)
    device: str = ""  # "cpu" or "cuda" ("": cuda when available); the same recipe on either
    freeze_bn: bool = False  # BatchNorm in eval mode (its running statistics kept): small CPU batches, warm starts
    thumb_ridge: float = 1000.0  # ridge strength of the thumbnail path's closed-form initialisation


PRESETS = {
    # the full recipe, one GPU or several (torchrun); rendering on the fly
    "gpu": {"colour_strength": 0.0},  # colour jitter with an unchanged target erases exposure/skin tone (ENCODER.md)
    # what fits a shared 2-core CPU: cached samples, smaller input, image loss on a few steps
    "cpu": {"source": "cache", "batch": 16, "steps": 1400, "lr": 1e-3, "warmup": 50, "image_every": 10,
            "image_batch": 1, "log_every": 20, "ckpt_every": 100, "threads": 2},
    # unit tests
    "tiny": {"source": "cache", "batch": 4, "steps": 6, "lr": 1e-3, "warmup": 0, "image_every": 0, "log_every": 1,
             "ckpt_every": 1000, "encoder": {"backbone": "mobilenetv3_small_050", "input_size": 64,
                                              "mapper_hidden": 64, "mapper_layers": 1, "slot_rank": 4}},
}


def make_config(preset: str = "gpu", **overrides) -> TrainConfig:
    values = json.loads(json.dumps(PRESETS[preset]))
    enc = values.pop("encoder", {})
    enc.update(overrides.pop("encoder", {}) or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(encoder=EncoderConfig(**enc), **values)


# -------------------------------------------------------------------------------------------------- data
class CacheSource:
    """Random batches from training.data.samples caches (this rank's share of the samples); `folders` is one
    folder or several joined by commas (e.g. 1024-px and 256-px renders)."""

    def __init__(self, folders: str, rank: int, world: int, seed: int, limit: int | None = None, val: int = 0):
        from training.data.samples import load_shards

        d = load_shards([Path(f).expanduser() for f in folders.split(",") if f], limit)
        n = len(d["wplus"]) - val
        self.val_crop, self.val_wplus = d["crop"][n:], torch.from_numpy(d["wplus"][n:])
        share = slice(rank, n, world)  # a strided view: no copy of the (many GB of) images
        self.crop, self.target, self.wplus = d["crop"][share], d["target"][share], d["wplus"][share]
        self.w_avg, self.w_std = torch.from_numpy(d["w_avg"]), torch.from_numpy(d["w_std"])
        self.rng = np.random.default_rng([seed, rank])

    def __len__(self) -> int:
        return len(self.wplus)

    def train_batch(self, n: int, size: int, aug_rng: np.random.Generator, strength: float, colour: float | None):
        """(augmented encoder inputs (n, 3, size, size), 256-px targets in [-1, 1], W+ targets)."""
        crops, target, wplus = self.batch(n)
        return augment(crops, size, aug_rng, strength, colour), target, wplus

    def batch(self, n: int):
        i = self.rng.choice(len(self.wplus), n, replace=False) if n <= len(self.wplus) else \
            self.rng.integers(0, len(self.wplus), n)
        return self.crop[i], torch.from_numpy(self.target[i]).permute(0, 3, 1, 2).float() / 127.5 - 1, \
            torch.from_numpy(self.wplus[i])


class OnlineSource:
    """Samples rendered on the fly by the torch generator (the GPU recipe); crops by MediaPipe or jitter.
    With `workers` > 0, MediaPipe and the augmentation run on that many CPU processes (training.data.align_pool),
    one batch ahead of the training step."""

    def __init__(self, generator, device, rank: int, seed: int, align: str = "mediapipe", workers: int = 0,
                 batch: int = 32, input_size: int = 160, strength: float = 1.0, colour: float | None = None,
                 align_res: int = 1024):
        from training.data.samples import SampleRecipe, w_stats

        self.g, self.device, self.align, self.align_res = generator, device, align, align_res
        self.recipe = SampleRecipe()
        self.rng = np.random.default_rng([seed, rank, 1])
        self.map = lambda z: generator.mapping(torch.from_numpy(z).to(device)).detach().cpu().numpy()
        self.w_avg_np = generator.w_avg.detach().cpu().numpy()
        _, w_std = w_stats(self.map)
        self.w_avg, self.w_std = torch.from_numpy(self.w_avg_np), torch.from_numpy(w_std)
        self.landmarker, self.pool, self.ahead = None, None, None
        if align == "mediapipe" and workers > 0:
            from training.data.align_pool import AlignPool
            self.pool = AlignPool(workers, batch, input_size, res=align_res, seed=seed * 1000 + rank,
                                  strength=strength, colour=colour)
        elif align == "mediapipe":
            from engine.landmarks import FaceLandmarker
            self.landmarker = FaceLandmarker()

    def close(self) -> None:
        if self.landmarker is not None:
            self.landmarker.close()
            self.landmarker = None
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    @torch.no_grad()
    def _render(self, n: int) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
        """n samples of the recipe: (W+ (n, 23, 512), 256-px targets on the device, uint8 RGB renders at
        align_res)."""
        from training.data.samples import CROP, sample_wplus

        wplus, _ = sample_wplus(self.rng, self.map, self.w_avg_np, self.w_std.numpy(), n, self.recipe)
        img = self.g.synthesis(torch.from_numpy(wplus).to(self.device)).clamp(-1, 1)
        target = F.interpolate(img, size=(CROP, CROP), mode="area")
        if img.shape[-1] != self.align_res:
            img = F.interpolate(img, size=(self.align_res, self.align_res), mode="area")
        u8 = ((img + 1) * 127.5 + 0.5).clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
        return wplus, target, u8

    def batch(self, n: int):
        """(un-augmented aligned crops (n, 256, 256, 3) uint8, 256-px targets, W+): used for the thumbnail fit."""
        from training.data.samples import aligned_crop

        wplus, target, u8 = self._render(n)
        if self.pool is not None:
            step = self.pool.layout.batch
            crops = []
            for i in range(0, n, step):
                self.pool.submit(u8[i:i + step])
                crops.append(self.pool.collect()[1])
            crops = np.concatenate(crops)
        elif self.landmarker is not None:
            crops = np.stack([aligned_crop(self.landmarker, im)[0] for im in u8])
        else:
            crops = ((target + 1) * 127.5 + 0.5).clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
        return crops, target.cpu(), torch.from_numpy(wplus)

    def train_batch(self, n: int, size: int, aug_rng: np.random.Generator, strength: float, colour: float | None):
        """(augmented encoder inputs, 256-px targets, W+). With workers: returns the batch prepared during the
        previous step and starts the next one (the workers' own augmentation settings apply)."""
        if self.pool is None:
            crops, target, wplus = self.batch(n)
            return augment(crops, size, aug_rng, strength, colour), target, wplus
        if self.ahead is None:
            self.ahead = self._submit(n)
        wplus, target = self.ahead
        t0 = time.perf_counter()
        x, _, aligned = self.pool.collect()
        self.align_wait_ms = 1000 * (time.perf_counter() - t0)  # logged: > 0 means the CPU workers hold the step back
        self.aligned_share = float(aligned.mean())  # logged: MediaPipe found the face in this share of renders
        self.ahead = self._submit(n)
        return torch.from_numpy(x), target, torch.from_numpy(wplus)

    def _submit(self, n: int) -> tuple[np.ndarray, torch.Tensor]:
        wplus, target, u8 = self._render(n)
        self.pool.submit(u8)
        return wplus, target


# -------------------------------------------------------------------------------------------------- train
def progress(step: int, seconds: float, cfg) -> float:
    """Fraction of the schedule done: by steps, or by training time when `anneal_minutes` runs out first (any
    config with steps / warmup / lr; the CLIP runs share this schedule and have no time budget)."""
    t = step / max(1, cfg.steps)
    minutes = getattr(cfg, "anneal_minutes", 0.0)
    return max(t, seconds / (minutes * 60)) if minutes else t


def lr_at(step: int, cfg, seconds: float = 0.0) -> float:
    """Linear warm-up over `warmup` steps, then cosine from lr to 0.05 lr over the rest of the schedule."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t0 = cfg.warmup / max(1, cfg.steps)
    t = (progress(step, seconds, cfg) - t0) / max(1e-9, 1 - t0)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, t)))))


def setup_distributed(prefer: str = "") -> tuple[int, int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if prefer == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    if torch.cuda.is_available() and prefer != "cpu":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device.index or 0, device


class RealSource:
    """Random batches of cached aligned UTKFace photos with their real-pixel masks (training/data/utkface.py)."""

    def __init__(self, split: str, rank: int, seed: int):
        from training.data.utkface import held_out_names, load_cache

        d = load_cache(split)
        held = set(held_out_names())
        keep = np.array([n not in held for n in d["names"]])
        if not keep.all():
            raise SystemExit(f"the UTKFace cache {split} holds {int((~keep).sum())} held-out photos")
        self.crop, self.valid = d["crop"], d["valid"]
        self.rng = np.random.default_rng([seed, rank, 3])

    def __len__(self) -> int:
        return len(self.crop)

    def batch(self, n: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """(uint8 RGB crops (n, 256, 256, 3), targets (n, 3, 256, 256) in [-1, 1], masks (n, 1, 256, 256))."""
        i = np.sort(self.rng.choice(len(self.crop), n, replace=False))
        crops = np.ascontiguousarray(self.crop[i])
        target = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
        return crops, target, torch.from_numpy(self.valid[i]).unsqueeze(1).float()


class PseudoTargetSource:
    """Aligned UTKFace training photos with the quality mode's W+ as targets (training/data/morph_targets.py); this
    rank's share of them, aligned once at start (the app's alignment: training/data/utkface.py, align_photo)."""

    def __init__(self, path: str, rank: int, world: int, seed: int, held_out: bool = False):
        from engine.landmarks import FaceLandmarker
        from training.data.utkface import UTK_DIR, align_photo, held_out_names

        with np.load(path, allow_pickle=False) as d:
            names, wplus = list(d["names"]), d["wplus"].astype(np.float32)
        wrong = set(names) - set(held_out_names()) if held_out else set(held_out_names()) & set(names)
        if wrong:  # training photos must never be held out, validation photos always
            raise SystemExit(f"{path} holds {len(wrong)} {'training' if held_out else 'held-out'} UTKFace photos")
        crops, targets = [], []
        with FaceLandmarker() as lm:
            for i in range(rank, len(names), world):
                bgr = cv2.imread(str(UTK_DIR / names[i]), cv2.IMREAD_COLOR)
                aligned = align_photo(lm, bgr) if bgr is not None else None
                if aligned is not None:
                    crops.append(cv2.cvtColor(aligned[0], cv2.COLOR_BGR2RGB))
                    targets.append(wplus[i])
        if not crops:
            raise SystemExit(f"no photo of {path} could be aligned (UTKFace at {UTK_DIR}?)")
        self.crop, self.wplus = np.stack(crops), torch.from_numpy(np.stack(targets))
        self.rng = np.random.default_rng([seed, rank, 5])

    def __len__(self) -> int:
        return len(self.crop)

    def batch(self, n: int) -> tuple[np.ndarray, torch.Tensor]:
        """(uint8 RGB crops (n, 256, 256, 3), W+ targets (n, 23, 512))."""
        i = self.rng.choice(len(self.crop), n, replace=n > len(self.crop))
        return np.ascontiguousarray(self.crop[i]), self.wplus[i]


def real_image_losses(render: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1 and 1 - MS-SSIM of a render against a real photo's aligned crop (both [-1, 1], (B, 3, S, S)) on the
    photo's own pixels only: L1 averaged over the mask; outside it the target is the render itself (detached), so
    the padding adds no error to MS-SSIM. Returns the composite target too (for the identity term)."""
    from training.models.encoder import ms_ssim

    render = render.clamp(-1, 1)
    composite = mask * target + (1 - mask) * render.detach()
    l1 = ((render - target).abs() * mask).sum() / (2 * 3 * mask.sum().clamp_min(1))
    msssim = 1.0 - ms_ssim((render + 1) / 2, (composite + 1) / 2).mean()
    return {"real_l1": l1, "real_msssim": msssim, "composite": composite}


def set_train_mode(model: torch.nn.Module, freeze_bn: bool) -> None:
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


def load_init_state(path: str, device) -> dict:
    """Model weights to start from: a training checkpoint (--init runs/x/last.pt) or the float16 safetensors of
    the shipped encoder (resources/models/inversion_encoder_fp16.safetensors), as float32."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file
        return {k: v.float().to(device) for k, v in load_file(str(path)).items()}
    return torch.load(path, map_location=device, weights_only=True)["model"]


def train(cfg: TrainConfig, out: Path, generator=None, limit: int | None = None) -> dict:
    """Run (or resume) training; returns the last logged metrics. `generator`: an already loaded MobileStyleGAN."""
    if cfg.w_id > 0 and not cfg.image_every:
        raise SystemExit("--w-id needs the image loss (--image-every > 0): the identity loss reads its renders")
    if cfg.anchor and not cfg.init:
        raise SystemExit("--anchor needs --init: it holds generated faces to the warm start's own codes")
    rank, world, _, device = setup_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    need_g = cfg.source == "online" or cfg.image_every > 0 or bool(cfg.real)
    if need_g and generator is None:
        from training.convert.generator import load_weights
        generator = load_weights()
    if generator is not None and cfg.image_block >= 0 and str(cfg.image_block) not in generator.synthesis.preview_heads:
        from training.train.preview_heads import load_preview_heads
        generator = load_preview_heads(generator)
    if generator is not None:
        generator = generator.to(device).eval().requires_grad_(False)
    colour = cfg.colour_strength if cfg.colour_strength >= 0 else None
    source = CacheSource(cfg.data, rank, world, cfg.seed, limit, cfg.val) if cfg.source == "cache" else \
        OnlineSource(generator, device, rank, cfg.seed, cfg.online_align, cfg.align_workers, cfg.batch,
                     cfg.encoder.input_size, cfg.aug_strength, colour, cfg.align_res)
    model = InversionEncoder(cfg.encoder, source.w_avg, source.w_std).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    step, t_train = 0, 0.0
    ckpt = out / "last.pt"
    fit_thumb = model.thumb is not None and not ckpt.is_file()
    if cfg.init and not ckpt.is_file():
        init_state = load_init_state(cfg.init, device)
        fit_thumb = fit_thumb and not any(k.startswith("thumb.") for k in init_state)
        other_rank = model.thumb is not None and "thumb.down.weight" in init_state and \
            init_state["thumb.down.weight"].shape != model.thumb.down.weight.shape
        if other_rank:  # --thumb-rank differs from the init's: start from its map (truncated SVD when lower)
            down, up = init_state.pop("thumb.down.weight"), init_state.pop("thumb.up.weight")
        model.load_state_dict(init_state, strict=not (fit_thumb or other_rank or cfg.init.endswith(".safetensors")))
        if other_rank:
            model.thumb.set_truncated(down, up)
        if rank == 0:
            print(f"initialised from {cfg.init}", flush=True)
    if fit_thumb and rank == 0:  # DDP copies rank 0's parameters and buffers to every rank when it wraps the model
        init_thumbnail_path(model, source, cfg, device, blend=0.5 if cfg.init else 1.0)
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, t_train = state["step"], state.get("train_seconds", 0.0)
        source.rng = np.random.default_rng([cfg.seed, rank, step])
        if rank == 0:
            print(f"resumed from {ckpt} at step {step}", flush=True)
    teacher = None
    if cfg.anchor:  # a frozen copy of the warm start (or of the resumed run's start: its init, reloaded)
        import copy
        teacher = copy.deepcopy(model).eval().requires_grad_(False)
        if ckpt.is_file():
            teacher.load_state_dict(load_init_state(cfg.init, device), strict=False)
    # find_unused_parameters: timm keeps its classifier-side head (e.g. MobileNetV3 conv_head), unused here
    net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model
    if rank == 0:
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        print(f"encoder {count_parameters(model) / 1e6:.2f} M parameters, {world} process(es) on {device}, "
              f"source {cfg.source}" + (f" ({len(source)} cached samples per rank)" if cfg.source == "cache" else ""),
              flush=True)
    w_avg, w_std = model.w_avg, model.mapper.w_std
    identity = identity_term(generator, cfg.image_block, cfg.image_res, device) if (cfg.w_id > 0 and cfg.image_every) or \
        (cfg.w_real_id > 0 and cfg.real) else None
    real = RealSource(cfg.real, rank, cfg.seed) if cfg.real else None
    if real is not None:
        real.rng = np.random.default_rng([cfg.seed, rank, 3, step])
        if rank == 0:
            print(f"real photos: {len(real)} aligned UTKFace crops ({cfg.real}), {cfg.real_batch} every "
                  f"{cfg.real_every} step(s)", flush=True)
    pseudo = PseudoTargetSource(cfg.pseudo, rank, world, cfg.seed) if cfg.pseudo else None
    if pseudo is not None:
        pseudo.rng = np.random.default_rng([cfg.seed, rank, 5, step])
        if rank == 0:
            print(f"pseudo-targets: {len(pseudo)} real photos per rank with quality-mode W+ ({cfg.pseudo}), "
                  f"{cfg.pseudo_batch} per step", flush=True)
    pseudo_val = PseudoTargetSource(cfg.pseudo_val, 0, 1, cfg.seed, held_out=True) if cfg.pseudo_val and rank == 0 \
        else None
    set_train_mode(model, cfg.freeze_bn)
    aug_rng = np.random.default_rng([cfg.seed, rank, 7, step])
    t0, seen, last = time.time(), 0, {}
    start_wall = time.time()
    log_file = open(out / "log.jsonl", "a") if rank == 0 else None
    sums: dict[str, float] = {}
    last_step = min(cfg.stop_step or cfg.steps, cfg.steps)

    def clock() -> tuple[float, float]:
        """(training seconds, resumes counted; this run's wall seconds): rank 0's values on every rank, so that
        all ranks use the same learning rate and stop at the same step."""
        now = torch.tensor([t_train + time.time() - t0, time.time() - start_wall], dtype=torch.float64, device=device)
        if world > 1:
            dist.broadcast(now, 0)
        return tuple(now.tolist())

    train_s = t_train
    while step < last_step and progress(step, train_s, cfg) < 1:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg, train_s)
        x, target_img, target_w = source.train_batch(cfg.batch, cfg.encoder.input_size, aug_rng, cfg.aug_strength,
                                                     colour)
        x, target_w = x.to(device), target_w.to(device)
        use_real = real is not None and step % cfg.real_every == 0
        if use_real:  # one forward for both (DDP allows one per backward)
            crops, tgt_r, mask_r = real.batch(cfg.real_batch)
            x = torch.cat([x, augment(crops, cfg.encoder.input_size, aug_rng, cfg.aug_strength, colour).to(device)])
        if pseudo is not None:
            crops_p, target_p = pseudo.batch(cfg.pseudo_batch)
            x = torch.cat([x, augment(crops_p, cfg.encoder.input_size, aug_rng, cfg.aug_strength, colour).to(device)])
        pred_all, _ = net(x)
        n_gen, n_real = len(target_w), cfg.real_batch if use_real else 0
        pred, pred_r, pred_p = pred_all[:n_gen], pred_all[n_gen:n_gen + n_real], pred_all[n_gen + n_real:]
        if teacher is not None:
            with torch.no_grad():
                target_w = teacher(x[:n_gen])[0]
        parts = latent_losses(pred, target_w, w_avg, w_std)
        if getattr(source, "aligned_share", None) is not None:
            parts["aligned"] = torch.tensor(source.aligned_share)
            parts["align_wait_ms"] = torch.tensor(source.align_wait_ms)
        loss = cfg.w_mse * parts["mse"] + cfg.w_cos * parts["cos"] + cfg.w_spread * parts["spread"]
        if cfg.image_every and step % cfg.image_every == 0:
            k = min(cfg.image_batch, cfg.batch)
            render = generator.synthesis(pred[:k], None if cfg.image_block < 0 else cfg.image_block)
            render = F.interpolate(render, size=(cfg.image_res, cfg.image_res), mode="area")
            tgt = target_img[:k].to(device)
            if tgt.shape[-1] != cfg.image_res:
                tgt = F.interpolate(tgt, size=(cfg.image_res, cfg.image_res), mode="area")
            parts.update(image_losses(render, tgt))
            loss = loss + cfg.w_l1 * parts["l1"] + cfg.w_msssim * parts["msssim"]
            if identity is not None and cfg.w_id > 0:
                parts["id"] = identity_loss(identity[0], render, tgt, *identity[1:])
                loss = loss + cfg.w_id * parts["id"]
        if use_real:
            tgt, mask = tgt_r, mask_r
            render = generator.synthesis(pred_r, None if cfg.image_block < 0 else cfg.image_block)
            render = F.interpolate(render, size=(cfg.image_res, cfg.image_res), mode="area")
            tgt, mask = tgt.to(device), mask.to(device)
            if tgt.shape[-1] != cfg.image_res:
                tgt = F.interpolate(tgt, size=(cfg.image_res, cfg.image_res), mode="area")
                mask = F.interpolate(mask, size=(cfg.image_res, cfg.image_res), mode="area")
            rl = real_image_losses(render, tgt, mask)
            composite = rl.pop("composite")
            parts.update(rl)
            parts["real_spread"] = latent_losses(pred_r, pred_r, w_avg, w_std)["spread"]
            loss = loss + cfg.w_real_l1 * rl["real_l1"] + cfg.w_real_msssim * rl["real_msssim"] + \
                cfg.w_real_spread * parts["real_spread"]
            if identity is not None and cfg.w_real_id > 0:
                parts["real_id"] = identity_loss(identity[0], render, composite, *identity[1:])
                loss = loss + cfg.w_real_id * parts["real_id"]
        if pseudo is not None:
            target_p = target_p.to(device)
            if cfg.pseudo_slots < target_p.shape[1]:  # no loss on the finer slots: target = the prediction there
                target_p = torch.cat([target_p[:, :cfg.pseudo_slots], pred_p[:, cfg.pseudo_slots:].detach()], 1)
            lp = latent_losses(pred_p, target_p, w_avg, w_std)
            parts["pseudo_mse"], parts["pseudo_cos"] = lp["mse"], lp["cos"]
            loss = loss + cfg.w_pseudo * (cfg.w_mse * lp["mse"] + cfg.w_cos * lp["cos"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        seen += cfg.batch * world
        for k_, v in parts.items():
            sums[k_] = sums.get(k_, 0.0) + float(v.detach())
            sums["n_" + k_] = sums.get("n_" + k_, 0.0) + 1
        sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
        sums["n_loss"] = sums.get("n_loss", 0.0) + 1
        train_s, wall_s = clock()
        annealed = bool(cfg.anneal_minutes) and progress(step, train_s, cfg) >= 1
        out_of_time = annealed or bool(cfg.max_minutes) and wall_s > cfg.max_minutes * 60
        if rank == 0 and (step % cfg.log_every == 0 or step == last_step or out_of_time):
            dt = time.time() - t0
            t_train += dt
            last = {"step": step, "lr": round(lr_at(step - 1, cfg, t_train), 6), "samples_per_s": round(seen / dt, 2),
                    "train_seconds": round(t_train, 1),
                    **{k_: round(sums[k_] / sums["n_" + k_], 5) for k_ in sums if not k_.startswith("n_")}}
            if getattr(source, "val_crop", None) is not None and len(source.val_crop):
                last["val_mse"] = round(validate(model, source.val_crop, source.val_wplus, cfg, device), 5)
            if pseudo_val is not None:
                last["val_pseudo_mse"] = round(validate(model, pseudo_val.crop, pseudo_val.wplus, cfg, device), 5)
            print("  ".join(f"{k_} {v}" for k_, v in last.items()), flush=True)
            log_file.write(json.dumps(last) + "\n")
            log_file.flush()
            t0, seen, sums = time.time(), 0, {}
        if rank == 0 and (step % cfg.ckpt_every == 0 or step == last_step or out_of_time):
            save_checkpoint(ckpt, model, opt, step, cfg, t_train)
        if out_of_time:
            if rank == 0:
                why = "schedule done (--anneal-minutes)" if annealed else f"--max-minutes {cfg.max_minutes} reached"
                print(f"stopping at step {step}: {why}", flush=True)
            break
    if log_file:
        log_file.close()
    if hasattr(source, "close"):
        source.close()
    if world > 1:
        dist.barrier()
    return last


@torch.no_grad()
def identity_term(generator, image_block: int, image_res: int,
                  device) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The identity loss's frozen recogniser and its fixed recognition crop (separable warp rows, cols) for renders
    of `image_block` (< 0: the full network) at `image_res` px: the five points MediaPipe finds on the generator's
    render of w_avg so framed."""
    from engine.face_id import five_points, separable_warp
    from engine.landmarks import FaceLandmarker
    from training.models.face_id import FaceIdNet

    w = generator.w_avg.detach().reshape(1, 1, -1).expand(1, 23, -1).to(device)
    render = generator.synthesis(w, None if image_block < 0 else image_block)
    render = F.interpolate(render, size=(image_res, image_res), mode="area")
    rgb = ((render[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()
    with FaceLandmarker() as lm:
        faces = lm.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not faces:
        raise SystemExit("the identity loss needs a face in the render of w_avg; MediaPipe found none")
    rows, cols = (torch.from_numpy(m).to(device) for m in separable_warp(five_points(faces[0].xy),
                                                                         image_res))
    return FaceIdNet().to(device).eval().requires_grad_(False), rows, cols


@torch.no_grad()
def init_thumbnail_path(model: InversionEncoder, source, cfg: TrainConfig, device, blend: float = 1.0,
                        online_samples: int = 8192) -> None:
    """Set the thumbnail path to the closed-form ridge regression on un-augmented training samples (all cached
    ones, or `online_samples` rendered). blend < 1 starts from an even mix with an already trained CNN path:
    both outputs are scaled by `blend` (0.5: their average, better than either alone)."""
    t0 = time.time()
    chunks = [(source.crop[i:i + 256], source.wplus[i:i + 256]) for i in range(0, len(source.crop), 256)] \
        if isinstance(source, CacheSource) else \
        [(c, w) for c, _, w in (source.batch(256) for _ in range(online_samples // 256))]
    thumbs, resid = [], []
    slots = list(USED_SLOTS)
    for crops, wplus in chunks:
        x = augment(crops, cfg.encoder.input_size, np.random.default_rng(0), 0.0)
        thumbs.append(model.thumb.thumbnail(x))
        resid.append(((torch.as_tensor(wplus)[:, slots] - source.w_avg) / source.w_std).float())
    mse = model.thumb.fit_ridge(torch.cat(thumbs), torch.cat(resid), cfg.thumb_ridge)
    for layer in (model.thumb.up, model.mapper.w_head, model.mapper.slot_code):
        layer.weight.mul_(blend)
        layer.bias.mul_(blend)
    model.to(device)
    print(f"thumbnail path: ridge on {sum(len(c) for c, _ in chunks)} samples, training MSE {mse:.4f}, "
          f"blend {blend}, {time.time() - t0:.0f} s", flush=True)


@torch.no_grad()
def validate(model: InversionEncoder, crops: np.ndarray, wplus: torch.Tensor, cfg: TrainConfig, device) -> float:
    """Latent MSE (w_std units, used slots) of held-out crops against their W+, without augmentation."""
    model.eval()
    total = 0.0
    for i in range(0, len(crops), 64):
        x = augment(crops[i:i + 64], cfg.encoder.input_size, np.random.default_rng(0), 0.0).to(device)
        target = wplus[i:i + 64].to(device)
        total += float(latent_losses(model(x)[0], target, model.w_avg, model.mapper.w_std)["mse"]) * len(target)
    set_train_mode(model, cfg.freeze_bn)
    return total / len(crops)


def save_checkpoint(path: Path, model: InversionEncoder, opt, step: int, cfg: TrainConfig, t_train: float) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "config": dataclasses.asdict(cfg), "train_seconds": t_train}, tmp)
    tmp.replace(path)


def slim_checkpoint(src: str | Path, dst: str | Path, half: bool = False) -> Path:
    """Copy a checkpoint without its optimiser state (model, config, step): what --init, load_encoder and
    export_encoder need, at a third of the size; `half` stores float16 weights (to carry a warm start)."""
    state = torch.load(src, map_location="cpu", weights_only=True)
    model = {k: v.half() if half and v.is_floating_point() else v for k, v in state["model"].items()}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    torch.save({"model": model, "config": state["config"], "step": state["step"],
                "train_seconds": state.get("train_seconds", 0.0)}, tmp)
    tmp.replace(dst)
    return dst


def load_encoder(path: str | Path) -> InversionEncoder:
    """An InversionEncoder (eval mode) from a training checkpoint."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = InversionEncoder(EncoderConfig(**state["config"]["encoder"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()})
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="gpu")
    ap.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log); resumes from last.pt")
    ap.add_argument("--data", help="sample cache folder (source cache)")
    ap.add_argument("--source", choices=["online", "cache"])
    for name in ("batch", "steps", "warmup", "image_every", "image_batch", "image_block", "log_every", "ckpt_every",
                 "threads", "seed", "val", "stop_step", "align_workers", "align_res", "real_every", "real_batch",
                 "pseudo_batch", "pseudo_slots"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int)
    for name in ("lr", "w_mse", "w_cos", "w_spread", "w_l1", "w_msssim", "w_id", "aug_strength", "colour_strength", "max_minutes",
                 "anneal_minutes", "thumb_ridge", "w_real_l1", "w_real_msssim", "w_real_id", "w_real_spread",
                 "w_pseudo"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=float)
    ap.add_argument("--online-align", choices=["mediapipe", "jitter"])
    ap.add_argument("--real", help="mix in real photos: a cached UTKFace split (training/data/utkface.py), e.g. train")
    ap.add_argument("--pseudo", help="real photos with quality-mode W+ targets: runs/morph_targets/train.npz")
    ap.add_argument("--anchor", action="store_true", default=None,
                    help="generated faces: the warm start's own codes as targets (no drift on a small cache)")
    ap.add_argument("--pseudo-val", help="held-out photos' pseudo-targets, logged: runs/morph_targets/heldout.npz")
    ap.add_argument("--freeze-bn", action="store_true", default=None,
                    help="BatchNorm layers in eval mode (keep the warm start's statistics)")
    ap.add_argument("--device", help="cpu or cuda (default: cuda when available); torchrun picks its local GPU")
    ap.add_argument("--init", help="start from this checkpoint's weights (fresh optimiser and schedule)")
    ap.add_argument("--backbone")
    ap.add_argument("--input-size", type=int)
    ap.add_argument("--thumb-size", type=int, help="add the linear thumbnail path (e.g. 32; 0: off)")
    ap.add_argument("--thumb-rank", type=int)
    args = vars(ap.parse_args(argv))
    out, preset = args.pop("out"), args.pop("preset")
    enc_keys = ("backbone", "input_size", "thumb_size", "thumb_rank")
    enc = {k: args.pop(k) for k in enc_keys if args.get(k) is not None}
    for k in enc_keys:
        args.pop(k, None)
    cfg = make_config(preset, encoder=enc, **args)
    train(cfg, out)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
