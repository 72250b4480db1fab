"""Morph targets: a photo (a celebrity, a friend) inverted once and cached by file content.

Cache entries live in $XDG_CACHE_HOME/celeblook/targets/<sha256 of photo>-<one pass id prefix>[-idf<identity-feedback
sha prefix>x<passes>][-q<quality-mode model sha prefix>x<steps>][-skin<skin model sha prefix>x<passes>].npz
and hold the W+, a thumbnail of the reconstruction and the photo's skin colours; beside a refined one, <the
same>-live<student objective sha prefix><the fit's recipe, StudentFit.tag>.npz holds its latent fitted to the live
student. They are written atomically, so a crash never leaves a half-written entry, and a new model or setting never
reuses stale latents.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from engine.align import align_face, crop_points
from engine.atomic import atomic_path
from engine.inversion.encoder import Encoder, detect_face
from engine.errors import BadInputError
from engine.generator import Generator
from engine.inversion.inverter import InversionOptions, Inverter
from engine.inversion.refine import ID_WEIGHT, MODEL_NAME as REFINER_MODEL, SIZE, Refiner, StudentFit, StudentMatch, \
    match_student
from engine.image_io import load_image
from engine.landmarks import EXPRESSIONS
from engine.paste import lab_stats
from engine.models import load_manifest, sha256_file, user_cache_dir
from engine.inversion.skin_tone import SKIN_TONE_PATH, SkinToneModel, face_oval_mask, within_skin_range

THUMB_SIZE = 128
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Target:
    """A morph target: its name, W+ (1, 23, 512) and a thumbnail of its reconstruction (uint8 BGR). `refined`: the
    W+ comes from the quality mode (a photo's), which the live view renders with its refined-target generator
    (engine.live.LiveModels.refined_generator); `live`: that W+ fitted to the live student
    (engine.inversion.refine.match_student), which the student renders instead, at its rate; `skin`: the photo's
    colours inside its face oval (engine.paste.lab_stats), which the face shown takes as the morph's strength grows,
    kept within real photos' range (skin_tone.within_skin_range; None: a built-in face, whose render is the
    target's own colours); `expression`: the photo's (or a built-in face's render's) expression scores
    (engine.landmarks.EXPRESSIONS; None: not measured, the landmarker gave no blendshapes), from which a reenactment
    moves the target's resting smile to the user's (engine.edits.resting_mouth_change)."""

    name: str
    wplus: np.ndarray
    thumbnail: np.ndarray
    refined: bool = False
    live: np.ndarray | None = None
    skin: np.ndarray | None = None
    expression: dict[str, float] | None = None

    def live_settings(self, fitted: bool = True) -> dict:
        """engine.live.LiveSettings fields to morph toward this target: the latent fitted to the live student when
        there is one and `fitted` (the student renders it), else W+ as it is; the photo's colours and expression."""
        wplus, refined = (self.live, False) if fitted and self.live is not None else (self.wplus, self.refined)
        return {"target": wplus, "target_refined": refined, "target_skin": within_skin_range(self.skin),
                "target_expression": self.expression}


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
    # with refined targets: fit each one to the live student too (Target.live; about half a minute on 2 cores, once)
    student: StudentMatch | None = None
    student_fit: StudentFit | None = StudentFit()  # how (None or 0 steps: not fitted)

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

    @property
    def fits_student(self) -> bool:
        """Its refined targets are fitted to the live student too (Target.live)."""
        fit = self.student_fit
        return self.student is not None and self.refines and fit is not None and fit.steps > 0

    def _fit_entry(self, photo: Path) -> Path:
        return self.folder / f"{self.key(photo)}-live{self.student.model_sha[:8]}{self.student_fit.tag}.npz"

    def load(self, photo: str | os.PathLike, fit: bool = True) -> Target:
        """The target for `photo`: from the cache, or inverted now and cached (NoFaceError without a face); with
        `fit` (and `fits_student`) also fitted to the live student, else with that fit only when it is cached
        (the app shows the target first and fits it next: `fit_student`)."""
        photo = Path(photo)
        if not photo.is_file():
            raise BadInputError(f"target photo not found: {photo}")
        entry = self.folder / f"{self.key(photo)}.npz"
        target = _read(entry, lambda data: Target(photo.stem, data["wplus"], data["thumbnail"], self.refines,
                                                  skin=data["skin"] if "skin" in data else None,
                                                  expression=_expression(data)))
        reads_expressions = getattr(self.landmarker, "expressions", False)
        if target is None:
            inv = self.inverter.invert_photo(load_image(photo), self.landmarker, self.options, source=str(photo))
            target = Target(photo.stem, inv.wplus, _thumbnail(inv.reconstruction), self.refines,
                            skin=_skin(inv.crop, inv.face), expression=inv.face.expression)
            _write_target(entry, target)
        elif target.skin is None or (target.expression is None and reads_expressions):  # an entry from before the skin
            image = load_image(photo)  # colours or the expression were kept: measure them, no inversion
            face = detect_face(image, self.landmarker, str(photo))
            crop = align_face(image, face, SIZE)
            target = replace(target, skin=_skin(crop, face), expression=face.expression)
            _write_target(entry, target)
        if not self.fits_student:
            return target
        live = _read(self._fit_entry(photo), lambda data: _latent(data["live"]))
        if live is not None:
            return replace(target, live=live)
        return self.fit_student(photo, target) if fit else target

    def fit_student(self, photo: str | os.PathLike, target: Target, progress=None) -> Target:
        """`target` (this cache's target for `photo`) with its latent fitted to the live student, cached;
        `progress(step, steps)` after each step of the fit."""
        own = None
        if self.student_fit.photo > 0:  # the photo's face again, aligned as the inversion aligned it
            image = load_image(Path(photo))
            face = detect_face(image, self.landmarker, str(photo))
            crop = align_face(image, face, SIZE)
            own = (crop.image, crop_points(face, crop))
        live = match_student(self.student, target.wplus, self.landmarker, self.student_fit, own,
                             progress=progress)[0]
        _write(self._fit_entry(Path(photo)), live=live)
        return replace(target, live=live)


def _skin(crop, face) -> np.ndarray:
    """The photo's colours inside its face oval, as the paste-back reads colours (Target.skin)."""
    return lab_stats(crop.image, face_oval_mask(face, crop))


def _expression(data) -> dict[str, float] | None:
    """A cache entry's expression scores (EXPRESSIONS order), or None when it holds none."""
    return dict(zip(EXPRESSIONS, map(float, data["expression"]))) if "expression" in data else None


def _write_target(entry: Path, target: Target) -> None:
    extra = {} if target.expression is None else {"expression": [target.expression[k] for k in EXPRESSIONS]}
    _write(entry, wplus=target.wplus, thumbnail=target.thumbnail, skin=target.skin, **extra)


def _read(entry: Path, take):
    """take(the npz's arrays), or None when the entry is missing or damaged (a damaged one is removed)."""
    if not entry.is_file():
        return None
    try:
        with np.load(entry, allow_pickle=False) as data:
            return take(data)
    except (OSError, ValueError, KeyError):
        entry.unlink(missing_ok=True)  # damaged entry: rebuild it
        return None


def _latent(wplus: np.ndarray) -> np.ndarray:
    if wplus.shape != (1, 23, 512) or not np.all(np.isfinite(wplus)):
        raise ValueError("not a W+")
    return wplus


def _write(entry: Path, **arrays) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(entry, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def gallery_photos(folder: str | os.PathLike) -> list[Path]:
    """Image files in a gallery folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"gallery folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def builtin_targets(generator: Generator, seeds: tuple[int, ...] = (0, 3, 4, 7), psi: float = 0.7,
                    landmarker=None) -> list[Target]:
    """Targets made by our own generator (no rights issues): faces of fixed seeds; with `landmarker` (one that scores
    expressions) each with its render's expression (Target.expression: three of the four defaults grin)."""
    out = []
    for seed in seeds:
        w = generator.sample_w(seed, psi)
        face = cv2.cvtColor(generator.render(w), cv2.COLOR_RGB2BGR)
        found = landmarker.detect(cv2.resize(face, (384, 384), interpolation=cv2.INTER_AREA)) if landmarker else []
        out.append(Target(f"seed {seed}", np.repeat(w[None, None], 23, axis=1), _thumbnail(face),
                          expression=found[0].expression if found else None))
    return out
