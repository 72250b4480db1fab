"""Text-driven faces over onnxruntime: prompt -> ΔW+ through CLIP's text tower and the mapper f; W+' = W+ + C ΔW+.

Models (training/export/clip.py writes them; none ships: they need real CLIP weights, docs/TEXT.md):
  clip_text_encoder.onnx   `tokens` (B, 77) int64 -> `embedding` (B, D) unit   (OpenCLIP text tower)
  clip_bpe_vocab.txt.gz    CLIP's BPE vocabulary (engine/clip_tokenizer.py tokenises without torch)
  clip_wplus_mapper.onnx   `embedding` (B, D) -> `wplus` (B, 23, 512)         (f, CSLA-style, around w_avg)
  clip_strength.onnx       `wplus`, `image_embedding`, `direction` -> `strength` (B,)   (learned C; --auto)
  clip_image_encoder.onnx  `image` (B, 3, S, S) RGB [0, 1] -> `embedding` (B, D)  (distilled E_I; --auto)

A prompt's embedding is the prompt-template ensemble: the mean of the unit embeddings of TEMPLATES filled with
the prompt, re-normalised (the templates are stored in the text encoder's metadata; these are the defaults).
ΔW+ = f(t_target) - f(t_source), t_source = "face" by default; text -> face starts from the average face w_avg.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.clip_tokenizer import ClipTokenizer
from engine.errors import BadInputError
from engine.latents import to_wplus
from engine.models import candidate_paths, load_manifest, resolve_model
from engine.onnx_session import make_session

TEMPLATES = ("{}", "a photo of a {}.", "a close-up photo of a {}.", "a portrait photo of a {}.",
             "a photo of the face of a {}.", "a cropped photo of a {}.")
SOURCE_PROMPT = "face"
SWEEP = (0.0, 0.8)  # the seed's GIF sweeps: C from 0 to 0.8
MODEL_FILES = {
    "clip_text_encoder": "clip_text_encoder.onnx",
    "clip_bpe_vocab": "clip_bpe_vocab.txt.gz",
    "clip_wplus_mapper": "clip_wplus_mapper.onnx",
    "clip_strength": "clip_strength.onnx",
    "clip_image_encoder": "clip_image_encoder.onnx",
}


PROMPT_MODELS = ("clip_text_encoder", "clip_bpe_vocab", "clip_wplus_mapper")  # what TextEditor.load needs


def missing_text_models() -> list[str]:
    """The files a text prompt needs (TextEditor.load, without --auto) that are found nowhere resolve_model
    looks ($CELEBLOOK_MODEL_DIR, resources/models, the user cache...): an empty list when prompts can work.
    Only looks for the files (no checksum: the load checks them)."""
    manifest = load_manifest()
    return [MODEL_FILES[name] for name in PROMPT_MODELS
            if not any(path.is_file() for path in candidate_paths(manifest[name]))]


def _resolve(name: str, model_dir: str | os.PathLike | None) -> Path:
    """A CLIP model file: from `model_dir` when given (a development export, not checked against the manifest),
    else resolved as usual (ModelMissingError says how to get it). Entries without a pinned sha256 (not yet
    exported into resources/models) are not checksum-verified."""
    if model_dir is not None:
        return resolve_model(name, Path(model_dir) / MODEL_FILES[name], verify=False)
    entry = load_manifest().get(name)
    return resolve_model(name, verify=bool(entry and entry.sha256))


def _meta(session) -> dict[str, str]:
    return dict(session.get_modelmeta().custom_metadata_map)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass
class TextEditor:
    """Prompt -> ΔW+ and the strength C. Build it with TextEditor.load(); `auto=True` also loads the strength
    predictor and the distilled image encoder."""

    text: object
    tokenizer: ClipTokenizer
    mapper: object
    strength: object | None = None
    image: object | None = None
    templates: tuple[str, ...] = TEMPLATES
    source: str = SOURCE_PROMPT
    _cache: dict = field(default_factory=dict)

    @classmethod
    def load(cls, threads: int = 0, model_dir: str | os.PathLike | None = None, auto: bool = False,
             source: str = SOURCE_PROMPT) -> "TextEditor":
        text = make_session(_resolve("clip_text_encoder", model_dir), threads)
        meta = _meta(text)
        tokenizer = ClipTokenizer(_resolve("clip_bpe_vocab", model_dir), int(meta.get("context_length", 77)))
        mapper = make_session(_resolve("clip_wplus_mapper", model_dir), threads)
        strength = image = None
        if auto:
            strength = make_session(_resolve("clip_strength", model_dir), threads)
            image = make_session(_resolve("clip_image_encoder", model_dir), threads)
        templates = tuple(json.loads(meta["templates"])) if "templates" in meta else TEMPLATES
        return cls(text, tokenizer, mapper, strength, image, templates, source)

    def embed_prompt(self, prompt: str) -> np.ndarray:
        """Unit template-ensemble embedding (D,) of a prompt."""
        prompt = " ".join(str(prompt).split())
        if not prompt:
            raise BadInputError("the prompt is empty")
        key = ("embed", prompt)
        if key not in self._cache:
            tokens = self.tokenizer([t.format(prompt) for t in self.templates])
            e = _unit(self.text.run(None, {"tokens": tokens})[0].astype(np.float32))
            self._cache[key] = _unit(e.mean(0))
        return self._cache[key]

    def map(self, embedding: np.ndarray) -> np.ndarray:
        """CLIP embedding(s) (D,) or (B, D) -> W+ (B, 23, 512)."""
        e = np.asarray(embedding, np.float32).reshape(-1, embedding.shape[-1])
        return self.mapper.run(None, {"embedding": e})[0]

    def direction(self, prompt: str, source: str | None = None) -> np.ndarray:
        """Unit CLIP-space direction normalize(t_target - t_source) (D,)."""
        return _unit(self.embed_prompt(prompt) - self.embed_prompt(source or self.source))

    def delta(self, prompt: str, source: str | None = None) -> np.ndarray:
        """ΔW+ (1, 23, 512) = f(t_target) - f(t_source)."""
        key = ("delta", prompt, source or self.source)
        if key not in self._cache:
            w = self.map(np.stack([self.embed_prompt(prompt), self.embed_prompt(source or self.source)]))
            self._cache[key] = w[:1] - w[1:]
        return self._cache[key]

    @property
    def image_size(self) -> int:
        meta = _meta(self.image)
        return int(meta.get("input_size", self.image.get_inputs()[0].shape[-1]))

    def embed_image(self, crop_bgr: np.ndarray) -> np.ndarray:
        """Distilled E_I: an aligned uint8 BGR face crop -> unit CLIP-space embedding (D,)."""
        if self.image is None:
            raise BadInputError("automatic strength needs TextEditor.load(auto=True)")
        s = self.image_size
        interp = cv2.INTER_AREA if crop_bgr.shape[0] > s else cv2.INTER_LINEAR
        rgb = cv2.cvtColor(cv2.resize(crop_bgr, (s, s), interpolation=interp), cv2.COLOR_BGR2RGB)
        x = (rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
        return _unit(self.image.run(None, {"image": x})[0][0])

    def auto_strength(self, wplus: np.ndarray, crop_bgr: np.ndarray, prompt: str, source: str | None = None) -> float:
        """The learned C for this face and prompt (the seed's projection layer)."""
        if self.strength is None:
            raise BadInputError("automatic strength needs TextEditor.load(auto=True)")
        feeds = {"wplus": to_wplus(wplus)[:1], "image_embedding": self.embed_image(crop_bgr)[None],
                 "direction": self.direction(prompt, source)[None].astype(np.float32)}
        return float(self.strength.run(None, feeds)[0].reshape(-1)[0])

    @staticmethod
    def apply(wplus: np.ndarray, delta: np.ndarray, strength: float) -> np.ndarray:
        """W+' = W+ + C ΔW+."""
        return to_wplus(wplus) + float(strength) * delta
