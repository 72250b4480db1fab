"""Personal calibration: refine a few keyframes of one person once, and every later one-pass inversion of that
person looks more like them.

The encoder was trained on generated faces only; on a real person its one pass misses much of their identity, and
the quality mode (engine/inversion/refine.py, ≈ 7 s) recovers it. Most of what the quality mode adds is the same for every
frame of the same person (docs/ENCODER.md, "Personal calibration"): the offset refined W+ − one-pass W+ of a
keyframe, added to the one pass of another frame of the same person, takes it most of the way to that frame's own
refinement. So the live loop refines `KEYFRAMES` frames of the user in the background, once, averages their
offsets and adds the mean to every frame's one pass: no extra cost per frame. The offset belongs to one person
and one one pass (the encoder and the corrections it adds: Encoder.one_pass_id, stored with it in the field
`encoder_sha256`); frames of someone else get a wrong face.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from engine.align import align_face, face_warnings, usable_faces
from engine.atomic import atomic_path
from engine.errors import BadInputError, NoFaceError
from engine.models import load_npz_model
from engine.inversion.refine import STEPS, refine_latent

KEYFRAMES = 3
MIN_GAP_S = 1.0  # keyframes of a stream at least this far apart (different moments, poses, expressions)
CROP_SIZE = 256
FORMAT = 1
PHOTO_SPACING_S = 1e6  # photos as a stream: each its own moment
# The keyframes are refined without the colour anchor (engine/inversion/refine.py): the anchor serves the 1024-px generator,
# and the calibration is used most by the live loop's 256-px preview head (full renders measured alike, 0.521 vs 0.528).
ANCHOR = 0
# The live loop's preview head renders the offset's fine slots (10 and up: 64 px and finer) as blur; the coarse and
# middle slots carry the identity and stay sharp (docs/ENCODER.md, "Personal calibration").
LIVE_SLOTS = 10
MAX_MOUTH_OPEN = 0.3  # inner-lip gap / eye distance; talking stays under ~0.26 on the test clips, a yawn reaches 0.5


@dataclass(frozen=True)
class IdentityCalibration:
    """The mean of `keyframes` keyframe offsets (refined − one-pass W+, (23, 512)), made with the one pass
    `encoder_sha256` (engine.inversion.encoder.Encoder.one_pass_id) and `steps` quality-mode steps per keyframe."""

    offset: np.ndarray
    keyframes: int
    encoder_sha256: str
    steps: int = STEPS
    meta: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, encoder_sha256: str, steps: int = STEPS) -> "IdentityCalibration":
        return cls(np.zeros((23, 512), np.float32), 0, encoder_sha256, steps)

    def add(self, keyframe_offset: np.ndarray) -> "IdentityCalibration":
        """A new calibration with one more keyframe's offset (23, 512) in the running mean."""
        d = np.asarray(keyframe_offset, np.float32).reshape(23, 512)
        n = self.keyframes + 1
        return IdentityCalibration((self.offset + (d - self.offset) / n).astype(np.float32), n, self.encoder_sha256,
                                   self.steps, dict(self.meta))

    def apply(self, wplus: np.ndarray, slots: int | None = None) -> np.ndarray:
        """W+ (1, 23, 512) of this person's one pass, calibrated (only the first `slots` slots: LIVE_SLOTS for the
        preview head; None: all, for the 1024-px generator)."""
        offset = self.offset if slots is None else np.where(np.arange(23)[:, None] < slots, self.offset, 0.0)
        return (np.asarray(wplus, np.float32) + offset[None]).astype(np.float32)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the calibration as .npz (atomically; no pickle)."""
        path = Path(path)
        meta = {"format": FORMAT, "keyframes": self.keyframes, "encoder_sha256": self.encoder_sha256,
                "steps": self.steps, **self.meta}
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, offset=self.offset.astype(np.float32), meta=np.array(json.dumps(meta)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, encoder_sha256: str | None = None) -> "IdentityCalibration":
        """Read a saved calibration; with `encoder_sha256`, refuse one made for another encoder."""
        d, meta = load_npz_model(path, ("offset",), "calibration file", "make one with `celeblook calibrate`",
                                 missing_error=BadInputError, check=_check_calibration)
        offset = d["offset"].astype(np.float32)
        if encoder_sha256 is not None and meta["encoder_sha256"] != encoder_sha256:
            raise BadInputError(f"{path} was made for another inversion encoder or other corrections (id "
                                f"{meta['encoder_sha256'][:12]}…, this one is {encoder_sha256[:12]}…): calibrate again")
        extra = {k: v for k, v in meta.items() if k not in ("format", "keyframes", "encoder_sha256", "steps")}
        return cls(offset, int(meta["keyframes"]), meta["encoder_sha256"], int(meta["steps"]), extra)


def _check_calibration(arrays: dict, meta: dict) -> None:
    offset = arrays["offset"]
    if offset.shape != (23, 512) or not np.all(np.isfinite(offset)) or meta.get("format") != FORMAT:
        raise ValueError("unexpected contents")


def keyframe_offset(encoder, refiner, crop, face, steps: int = STEPS, anchor_every: int = ANCHOR) -> np.ndarray:
    """What the quality mode adds to the one pass (Encoder.invert_face) of one aligned face: (23, 512). Pixels only,
    without the quality mode's identity term: with it the live view's calibrated faces came out harsher (more
    contrast, redder lips through the preview head) for a small gain (docs/ENCODER.md, "Personal calibration")."""
    one_pass = encoder.invert_face(crop, face)
    return (refine_latent(refiner, crop.image, one_pass, steps, anchor_every=anchor_every)[0] - one_pass)[0]


def keyframe_problem(face, crop) -> str | None:
    """Why this face would make a poor keyframe (the offset would carry it to every later frame), or None: partly
    outside the picture or small and upscaled (engine.align.face_warnings), or the mouth wide open."""
    warnings = face_warnings(face, crop)
    if warnings:
        return warnings[0]
    p = face.points
    mouth = float(np.linalg.norm(p[13, :2] - p[14, :2]) / max(np.linalg.norm(p[33, :2] - p[263, :2]), 1e-6))
    return f"mouth wide open ({mouth:.2f} of the eye distance)" if mouth > MAX_MOUTH_OPEN else None


@dataclass
class KeyframePicker:
    """Decides which frames of a stream become keyframes: one with a usable face, at least `min_gap_s` after the
    previous keyframe, until `wanted` are taken."""

    wanted: int = KEYFRAMES
    min_gap_s: float = MIN_GAP_S
    taken: int = 0
    last_t: float | None = None

    def wants(self, t: float) -> bool:
        return self.taken < self.wanted and (self.last_t is None or t - self.last_t >= self.min_gap_s)

    def take(self, t: float) -> None:
        self.taken, self.last_t = self.taken + 1, t


def stream_keyframes(frames: Iterable[tuple[np.ndarray, float]], landmarker, picker: KeyframePicker,
                     size: int = CROP_SIZE, on_skip=None) -> Iterator[tuple[object, object, float]]:
    """(crop, face, t) of the keyframes `picker` takes from (BGR frame, time s) pairs: the largest usable face,
    when `keyframe_problem` finds nothing wrong with it; `on_skip(t, reason)` for a frame it would have taken
    otherwise."""
    for image, t in frames:
        if not picker.wants(t):
            if picker.taken >= picker.wanted:
                return
            continue
        faces = usable_faces(landmarker.detect(image))
        problem = "no usable face"
        if faces:
            crop = align_face(image, faces[0], size)
            problem = keyframe_problem(faces[0], crop)
            if problem is None:
                picker.take(t)
                yield crop, faces[0], t
        if problem is not None and on_skip is not None:
            on_skip(t, problem)


def calibrate(frames: Iterable[tuple[np.ndarray, float]], landmarker, encoder, refiner, encoder_sha256: str,
              keyframes: int = KEYFRAMES, min_gap_s: float = MIN_GAP_S, steps: int = STEPS,
              progress=None, on_skip=None) -> IdentityCalibration:
    """Calibrate on `keyframes` frames of one person from (BGR frame, time s) pairs (a video, or photos with
    any increasing times). NoFaceError when no frame has a usable face. `progress(n, t)` after each keyframe,
    `on_skip(t, reason)` for each frame passed over (stream_keyframes)."""
    if keyframes < 1:
        raise BadInputError(f"calibration needs at least one keyframe, got {keyframes}")
    cal = IdentityCalibration.empty(encoder_sha256, steps)
    times = []
    for crop, face, t in stream_keyframes(frames, landmarker, KeyframePicker(keyframes, min_gap_s), on_skip=on_skip):
        cal = cal.add(keyframe_offset(encoder, refiner, crop, face, steps))
        times.append(round(float(t), 3))
        if progress is not None:
            progress(cal.keyframes, t)
    if cal.keyframes == 0:
        raise NoFaceError("no usable face in any frame: the calibration needs the person's face, clearly visible, "
                          "whole, not tiny, mouth not wide open")
    return IdentityCalibration(cal.offset, cal.keyframes, encoder_sha256, steps, {"keyframe_times_s": times})


def photo_frames(images: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, float]]:
    """Photos as a stream for `calibrate`: photo i at i * PHOTO_SPACING_S seconds, each its own moment."""
    for i, image in enumerate(images):
        yield image, i * PHOTO_SPACING_S



@dataclass(frozen=True)
class Keyframe:
    """A frame the live schedule took as a keyframe: its aligned face, its stream and the picker that took it
    (KeyframeSchedule.refine keeps its offset only while both are still the schedule's)."""

    crop: object
    face: object
    stream: object
    picker: KeyframePicker


class KeyframeSchedule:
    """The live loop's personal calibration: says which processed frames become keyframes (`keyframe`: a face with
    nothing wrong with it, at least MIN_GAP_S after the last keyframe, one at a time, until `wanted` are taken) and
    refines them (`refine`, seconds: on a thread of its own), each finished keyframe updating `calibration`.
    `use` puts a saved calibration in its place (nothing more is collected); `restart` forgets it and collects
    again; a new stream (`new_stream`) starts again unless the calibration was saved (it may be someone else).
    `on`: calibrating (and using the calibration) at all; `applied`: what the frames get."""

    def __init__(self, wanted: int = KEYFRAMES, steps: int = STEPS, on: bool | None = None):
        self.wanted, self.steps = max(0, wanted), steps
        self.on = self.wanted > 0 if on is None else on
        self.calibration: IdentityCalibration | None = None
        self.picker = KeyframePicker(self.wanted)
        self.pending = False  # a keyframe is being refined
        self.stream = None
        self.saved = False

    @property
    def applied(self) -> IdentityCalibration | None:
        return self.calibration if self.on else None

    def use(self, calibration: IdentityCalibration) -> None:
        """A saved calibration, used as is: nothing is collected."""
        self.calibration, self.picker, self.on, self.saved = calibration, KeyframePicker(0), True, True

    def restart(self) -> None:
        """Forget the calibration and collect it again from the next frames."""
        self.calibration = None
        self.picker = KeyframePicker(self.wanted or KEYFRAMES)

    def new_stream(self, stream) -> None:
        """Frames from now on come from `stream`; another source than the last starts the collection again."""
        if self.stream is not None and not self.saved:
            self.restart()
        self.stream = stream

    def keyframe(self, face, crop, t: float) -> Keyframe | None:
        """The keyframe to refine when this processed frame (its face and crop, None without one; time `t` s)
        becomes one (it is then taken and `pending` until refined), else None."""
        if (self.on and crop is not None and not self.pending and self.picker.wants(t)
                and keyframe_problem(face, crop) is None):
            self.picker.take(t)
            self.pending = True
            return Keyframe(crop, face, self.stream, self.picker)
        return None

    def refine(self, keyframe: Keyframe, encoder, refiner, encoder_sha256: str) -> bool:
        """Refine `keyframe` (keyframe_offset, `steps` quality-mode steps) and add its offset to the calibration
        when it is still the same person's (same stream and collection); whether it was added."""
        try:
            offset = keyframe_offset(encoder, refiner, keyframe.crop, keyframe.face, self.steps)
            if keyframe.stream != self.stream or keyframe.picker is not self.picker:
                return False
            base = self.calibration or IdentityCalibration.empty(encoder_sha256, self.steps)
            self.calibration = base.add(offset)
            return True
        finally:
            self.pending = False
