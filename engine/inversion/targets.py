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
from engine.inversion.encoder import Encoder
from engine.errors import BadInputError
from engine.generator import Generator
from engine.inversion.inverter import InversionOptions, Inverter
from engine.inversion.refine import ID_WEIGHT, MODEL_NAME as REFINER_MODEL, Refiner
from engine.image_io import load_image
from engine.models import load_manifest, sha256_file, user_cache_dir
from engine.inversion.skin_tone import SKIN_TONE_PATH, SkinToneModel

THUMB_SIZE = 128
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Target:
    """A morph target: its name, W+ (1, 23, 512) and a thumbnail of its reconstruction (uint8 BGR). `refined`: the
    W+ comes from the quality mode (a photo's), which the live view renders with its refined-target generator
    (engine.live.LiveModels.refined_generator)."""

    name: str
    wplus: np.ndarray
    thumbnail: np.ndarray
    refined: bool = False


def _thumbnail(face_bgr: np.ndarray) -> np.ndarray:
    return cv2.resize(face_bgr, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)


@dataclass
class TargetCache:
    """Inverts target photos (Inverter.invert_photo, the still order) and caches the result on disk, keyed by photo
    content, the one pass and the `options` that change the result. A target is someone else: no calibration."""

    encoder: Encoder
    generator: Generator
    landmarker: object
    encoder_sha: str
    folder: Path | None = None  # default: <user cache>/targets, resolved when the cache is made
    # the skin match (the shipped skin model), its passes, the quality mode (a better target for a few seconds,
    # once) and the identity feedback's passes, as for any still
    options: InversionOptions = InversionOptions()

    def __post_init__(self):
        if self.options.calibration is not None:
            raise BadInputError("a calibration belongs to the user's own face, not to a morph target")
        self.folder = Path(self.folder) if self.folder else user_cache_dir() / "targets"
        o = self.options
        self.inverter = Inverter(self.encoder, self.generator, SkinToneModel.load() if o.match_skin else None,
                                 Refiner.load(full=self.generator) if o.quality_steps > 0 else None)

    @property
    def refines(self) -> bool:
        """Its targets come from the quality mode (Target.refined)."""
        return self.options.quality_steps > 0

    def key(self, photo: Path) -> str:
        o = self.options
        skin = f"-skin{sha256_file(SKIN_TONE_PATH)[:8]}x{o.skin_passes}" if o.match_skin else ""
        quality = f"-q{load_manifest()[REFINER_MODEL].sha256[:8]}x{o.quality_steps}id{ID_WEIGHT:g}" \
            if o.quality_steps else ""
        passes = self.inverter.feedback_passes(o)
        identity = f"-idf{self.encoder.feedback.sha256[:8]}x{passes}" if passes else ""
        # the closed loop's skin match renders through the generator, so its latent is that generator's
        return f"{sha256_file(photo)}-{self.encoder_sha[:12]}-{self.generator.name}{identity}{quality}{skin}"

    def load(self, photo: str | os.PathLike) -> Target:
        """The target for `photo`: from the cache, or inverted now and cached (NoFaceError without a face)."""
        photo = Path(photo)
        if not photo.is_file():
            raise BadInputError(f"target photo not found: {photo}")
        entry = self.folder / f"{self.key(photo)}.npz"
        if entry.is_file():
            try:
                with np.load(entry, allow_pickle=False) as data:
                    return Target(photo.stem, data["wplus"], data["thumbnail"], self.refines)
            except (OSError, ValueError, KeyError):
                entry.unlink(missing_ok=True)  # damaged entry: rebuild it
        inv = self.inverter.invert_photo(load_image(photo), self.landmarker, self.options, source=str(photo))
        target = Target(photo.stem, inv.wplus, _thumbnail(inv.reconstruction), self.refines)
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
