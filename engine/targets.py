"""Morph targets: a photo (a celebrity, a friend) inverted once and cached by file content.

Cache entries live in $XDG_CACHE_HOME/celeblook/targets/<sha256 of photo>-<one pass id prefix>[-idf<identity-feedback
sha prefix>x<passes>][-q<quality-mode model sha prefix>x<steps>][-skin<skin model sha prefix>x<passes>].npz
and hold the W+ and a thumbnail of the reconstruction; they are written atomically, so a crash never leaves a half-written entry, and
a new model or setting never reuses stale latents.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import atomic_path
from engine.encoder import Encoder, feedback_passes, invert_photo
from engine.errors import BadInputError
from engine.generator import Generator
from engine.refine import ID_WEIGHT, MODEL_NAME as REFINER_MODEL, Refiner
from engine.image_io import load_image
from engine.models import load_manifest, sha256_file, user_cache_dir
from engine.skin_tone import SKIN_TONE_PATH, SkinToneModel

THUMB_SIZE = 128
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Target:
    """A morph target: its name, W+ (1, 23, 512) and a thumbnail of its reconstruction (uint8 BGR)."""

    name: str
    wplus: np.ndarray
    thumbnail: np.ndarray


def _thumbnail(face_bgr: np.ndarray) -> np.ndarray:
    return cv2.resize(face_bgr, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)


@dataclass
class TargetCache:
    """Inverts target photos and caches the result on disk, keyed by photo content and encoder model."""

    encoder: Encoder
    generator: Generator
    landmarker: object
    encoder_sha: str
    folder: Path | None = None  # default: <user cache>/targets, resolved when the cache is made
    match_skin: bool = True  # match the target's skin colour (engine/skin_tone.py, the shipped model)
    skin_passes: int = 1  # closed-loop passes of that match (one render each, engine.encoder.invert_photo)
    quality_steps: int = 0  # quality-mode steps (engine/refine.py): a better target for a few seconds, once
    identity_passes: int = 1  # closed-loop passes of the encoder's identity feedback (without the quality mode)

    def __post_init__(self):
        self.folder = Path(self.folder) if self.folder else user_cache_dir() / "targets"
        self.skin_tone = SkinToneModel.load() if self.match_skin else None
        self.refiner = Refiner.load(full=self.generator) if self.quality_steps > 0 else None

    def key(self, photo: Path) -> str:
        skin = f"-skin{sha256_file(SKIN_TONE_PATH)[:8]}x{self.skin_passes}" if self.match_skin else ""
        quality = f"-q{load_manifest()[REFINER_MODEL].sha256[:8]}x{self.quality_steps}id{ID_WEIGHT:g}" \
            if self.quality_steps else ""
        passes = feedback_passes(self.encoder, self.identity_passes, refining=self.quality_steps > 0)
        identity = f"-idf{self.encoder.feedback.sha256[:8]}x{passes}" if passes else ""
        return f"{sha256_file(photo)}-{self.encoder_sha[:12]}{identity}{quality}{skin}"

    def load(self, photo: str | os.PathLike) -> Target:
        """The target for `photo`: from the cache, or inverted now and cached (NoFaceError without a face)."""
        photo = Path(photo)
        if not photo.is_file():
            raise BadInputError(f"target photo not found: {photo}")
        entry = self.folder / f"{self.key(photo)}.npz"
        if entry.is_file():
            try:
                with np.load(entry, allow_pickle=False) as data:
                    return Target(photo.stem, data["wplus"], data["thumbnail"])
            except (OSError, ValueError, KeyError):
                entry.unlink(missing_ok=True)  # damaged entry: rebuild it
        inv = invert_photo(load_image(photo), self.landmarker, self.encoder, self.generator, source=str(photo),
                           skin_tone=self.skin_tone, skin_passes=self.skin_passes,
                           refiner=self.refiner, refine_steps=self.quality_steps,
                           identity_passes=self.identity_passes)
        target = Target(photo.stem, inv.wplus, _thumbnail(inv.reconstruction))
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(entry, suffix=".npz") as tmp:
            np.savez(tmp, wplus=target.wplus, thumbnail=target.thumbnail)
        return target


def gallery_photos(folder: str | os.PathLike) -> list[Path]:
    """Image files in a gallery folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"gallery folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def builtin_targets(generator: Generator, seeds: tuple[int, ...] = (0, 3, 4, 7), psi: float = 0.7) -> list[Target]:
    """Targets made by our own generator (no rights issues): faces of fixed seeds."""
    out = []
    for seed in seeds:
        w = generator.sample_w(seed, psi)
        face = cv2.cvtColor(generator.render(w), cv2.COLOR_RGB2BGR)
        out.append(Target(f"seed {seed}", np.repeat(w[None, None], 23, axis=1), _thumbnail(face)))
    return out
