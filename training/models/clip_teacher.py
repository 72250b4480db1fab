"""The CLIP teacher (OpenCLIP): loading, differentiable image embeddings of generator output, prompt-ensemble text
embeddings, and a tiny random-initialised config for tests.

    # on a machine with internet: put the weights into the Hugging Face cache (then training runs offline)
    python -m training.models.clip_teacher --fetch [--model ViT-B-32 --pretrained laion2b_s34b_b79k]
    # check what a run would load (never downloads)
    python -m training.models.clip_teacher [--model ... --pretrained ... | --local-path FILE]

Loading (`load_clip`): the architecture comes from open_clip's built-in config `model_name`; the weights from
  * `local_path`: a .safetensors file (safetensors) or a torch checkpoint read with torch.load(weights_only=True)
    only (open_clip.load_checkpoint), or
  * the pretrained tag's Hugging Face hub entry: first looked up in the local HF cache (no network); when absent
    and downloads are allowed (HF_HUB_OFFLINE unset and allow_download=True) through open_clip's own pretrained
    mechanism (hf_hub_download, which prefers the .safetensors file and honours HF_HUB_OFFLINE).
Any failure ends in one `ClipWeightsMissing` naming the model/tag and the command that fetches it.

No CLIP weights are reachable from the development machines: everything here is tested with `tiny_clip()`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.text_edit import SOURCE_PROMPT, TEMPLATES

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipWeightsMissing(RuntimeError):
    """CLIP weights could not be found locally nor fetched; the message says how to get them."""


def fetch_command(model_name: str, pretrained: str) -> str:
    return f"python -m training.models.clip_teacher --fetch --model {model_name} --pretrained {pretrained}"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_entry(model_name: str, pretrained: str) -> tuple[str, str, dict]:
    """(repo_id, weights filename, pretrained cfg) of an open_clip tag on the Hugging Face hub."""
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    cfg = get_pretrained_cfg(model_name, pretrained)
    if not cfg:
        raise ClipWeightsMissing(f"open_clip has no pretrained tag '{pretrained}' for {model_name} "
                                 f"(known: {', '.join(list_pretrained_tags_by_model(model_name)) or 'none'})")
    if not cfg.get("hf_hub"):
        raise ClipWeightsMissing(f"{model_name}/{pretrained} is not on the Hugging Face hub ({cfg.get('url')}); "
                                 "download the checkpoint and pass it with --clip-weights FILE")
    repo, filename = os.path.split(cfg["hf_hub"])
    return repo.rstrip("/"), filename or "open_clip_pytorch_model.bin", cfg


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _hub_reachable(timeout: float = 5.0) -> bool:
    """One TCP connection to the hub's host (honours HF_ENDPOINT): fail fast offline."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(_hub_endpoint())
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet():
    """Silence open_clip's logging warnings for one call."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def cached_weights(model_name: str, pretrained: str, cache_dir: str | None = None) -> Path | None:
    """The tag's weights file in the local Hugging Face cache (safetensors preferred), or None. No network."""
    from huggingface_hub import try_to_load_from_cache

    repo, filename, _ = _hub_entry(model_name, pretrained)
    names = [filename.replace(".bin", ".safetensors").replace("pytorch_model", "model"),
             filename.replace(".bin", ".safetensors"), filename]
    for name in dict.fromkeys(names):
        hit = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
        if isinstance(hit, str) and Path(hit).is_file():
            return Path(hit)
    return None


class ClipTeacher(nn.Module):
    """A frozen OpenCLIP model with the preprocessing of its pretrained tag.

    `encode_images` takes generator-style tensors (B, 3, H, W) RGB in [-1, 1], square faces, and is
    differentiable (the strength predictor's loss backpropagates through it): bicubic antialiased resize to the
    model's input size (CLIP's shortest-side resize + centre crop is the identity crop on a square image), then
    the tag's mean/std. `preprocess` is open_clip's PIL transform for photos."""

    def __init__(self, model: nn.Module, name: str, mean=OPENAI_MEAN, std=OPENAI_STD, preprocess=None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.name = name
        size = model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.context_length = int(getattr(model, "context_length", 77))
        self.embed_dim = int(model.text_projection.shape[1] if isinstance(model.text_projection, torch.Tensor)
                             else model.text_projection.out_features)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.preprocess = preprocess
        self._tokenizer = None

    def train(self, mode: bool = True):  # always frozen, always eval (dropout, patch dropout off)
        return super().train(False)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float().clamp(-1, 1) + 1) / 2
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", antialias=True,
                              align_corners=False)
        return (x - self.mean) / self.std

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> unit embeddings (B, D)."""
        return F.normalize(self.model.encode_image(self.prepare(images)).float(), dim=-1)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from open_clip.tokenizer import SimpleTokenizer
            self._tokenizer = SimpleTokenizer(context_length=self.context_length)
        return self._tokenizer

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.mean.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    @torch.no_grad()
    def prompt_embeddings(self, prompts: list[str], templates: tuple[str, ...] = TEMPLATES) -> torch.Tensor:
        """Prompt-template ensemble: for each prompt, the mean of its unit template embeddings, re-normalised
        (B, D). The engine computes the same from the ONNX text tower (engine/text_edit.py)."""
        out = []
        for p in prompts:
            out.append(F.normalize(self.encode_text([t.format(p) for t in templates]).mean(0), dim=-1))
        return torch.stack(out)

    @torch.no_grad()
    def text_direction(self, prompts: list[str], source: str = SOURCE_PROMPT) -> torch.Tensor:
        """Unit CLIP-space directions normalize(t_target - t_source) (B, D)."""
        t = self.prompt_embeddings(prompts)
        s = self.prompt_embeddings([source])
        return F.normalize(t - s, dim=-1)


def _load_file(model: nn.Module, path: Path) -> None:
    """Weights from a local file: safetensors, or torch.load(weights_only=True) (open_clip.load_checkpoint does
    both and converts third-party layouts); nothing else is ever unpickled."""
    from open_clip import load_checkpoint

    if path.suffix not in (".safetensors", ".bin", ".pt", ".pth"):
        raise ClipWeightsMissing(f"{path}: expected a .safetensors, .bin, .pt or .pth CLIP checkpoint")
    load_checkpoint(model, str(path), strict=True, weights_only=True)


def load_clip(model_name: str = DEFAULT_MODEL, pretrained: str = DEFAULT_PRETRAINED, cache_dir: str | None = None,
              local_path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
              allow_download: bool = True) -> ClipTeacher:
    """A frozen ClipTeacher with real weights (see the module docstring); ClipWeightsMissing when there are none."""
    import open_clip

    if open_clip.get_model_config(model_name) is None:
        raise ClipWeightsMissing(f"unknown open_clip model '{model_name}' (see open_clip.list_models())")
    mean, std = OPENAI_MEAN, OPENAI_STD
    try:
        _, _, cfg = _hub_entry(model_name, pretrained)
        mean, std = cfg.get("mean", mean), cfg.get("std", std)
    except ClipWeightsMissing:
        if local_path is None:
            raise
    path = Path(local_path).expanduser() if local_path else cached_weights(model_name, pretrained, cache_dir)
    if local_path and not path.is_file():
        raise ClipWeightsMissing(f"CLIP weights file not found: {path} ({model_name})")
    if path is None:
        how = (f"On a machine with internet run `{fetch_command(model_name, pretrained)}` (puts the weights in the "
               "Hugging Face cache, ~/.cache/huggingface; copy that folder or the weights file here and pass "
               "--clip-weights FILE)")
        if _offline() or not allow_download:
            raise ClipWeightsMissing(f"CLIP weights {model_name}/{pretrained} are not in the local Hugging Face cache "
                                     f"and downloads are off (HF_HUB_OFFLINE or no --fetch). {how}")
        if not _hub_reachable():  # huggingface_hub would retry for ~50 s before giving up
            raise ClipWeightsMissing(f"CLIP weights {model_name}/{pretrained} are not in the local Hugging Face cache "
                                     f"and the hub ({_hub_endpoint()}) is unreachable. {how}")
        try:
            with _quiet():
                model = open_clip.create_model(model_name, pretrained=pretrained, cache_dir=cache_dir, device="cpu",
                                               weights_only=True)
        except Exception as exc:  # network, hub or file errors: one message
            raise ClipWeightsMissing(f"could not download CLIP weights {model_name}/{pretrained} "
                                     f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). {how}") from exc
    else:
        with _quiet():  # open_clip warns that it created random weights: they are replaced right away
            model = open_clip.create_model(model_name, pretrained=None, pretrained_text=False, device="cpu")
        _load_file(model, path)
    preprocess = open_clip.image_transform(model.visual.image_size, is_train=False, mean=mean, std=std)
    return ClipTeacher(model, f"{model_name}/{pretrained}" if not local_path else f"{model_name}@{path.name}",
                       mean, std, preprocess).to(device)


TINY_NAME = "CelebLook-tiny"
TINY_CONFIG = {"embed_dim": 32,
               "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def register_tiny() -> str:
    """Register TINY_CONFIG as an open_clip model config (so create_model / load_clip know it); its name."""
    from open_clip.factory import _MODEL_CONFIGS

    _MODEL_CONFIGS.setdefault(TINY_NAME, json.loads(json.dumps(TINY_CONFIG)))
    return TINY_NAME


def tiny_clip(seed: int = 0) -> ClipTeacher:
    """A random-initialised, tiny OpenCLIP (ViT 1 layer x 32 wide on 8-px patches of 32-px images; text 1 layer
    x 32 wide with the real 49,408-token vocabulary and 77-token context): for tests of the code paths only."""
    import open_clip

    torch.manual_seed(seed)
    with _quiet():
        model = open_clip.create_model(register_tiny(), pretrained=None, pretrained_text=False)
    return ClipTeacher(model, f"{TINY_NAME}-random")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--pretrained", default=DEFAULT_PRETRAINED)
    ap.add_argument("--local-path", help="a .safetensors / torch checkpoint of the model")
    ap.add_argument("--cache-dir", help="Hugging Face cache folder (default: HF's own)")
    ap.add_argument("--fetch", action="store_true", help="download the weights into the HF cache (needs internet)")
    args = ap.parse_args(argv)
    try:
        teacher = load_clip(args.model, args.pretrained, args.cache_dir, args.local_path, allow_download=args.fetch)
    except ClipWeightsMissing as exc:
        raise SystemExit(f"error: {exc}")
    n = sum(p.numel() for p in teacher.parameters())
    print(f"loaded {teacher.name}: {n / 1e6:.1f} M parameters, image {teacher.image_size} px, "
          f"embedding {teacher.embed_dim}-d")


if __name__ == "__main__":
    main()
