"""Latent edits in W+ (pure numpy): morph toward a target face, and calibrated attribute directions.

The desktop app calls these per frame; they cost microseconds. Slot groups follow the generator's layout
(training/models/mobilestylegan.py): coarse slots set head pose and face shape, middle ones features, fine ones
colour and texture. Which group carries what was measured (docs/EDITS.md, training/evaluate/edits.py).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import BadInputError, ModelMissingError
from engine.latents import N_SLOTS, STYLE_DIM, to_wplus
from engine.models import MODELS_DIR, check_shipped

DIRECTIONS_PATH = MODELS_DIR / "directions.npz"

# Resolution of the features each slot modulates (slot -> px); None: unused by the released weights.
SLOT_RESOLUTION: tuple[int | None, ...] = (
    4, 8, 8, None, 16, 16, None, 32, 32, None, 64, 64, None, 128, 128, None, 256, 256, None, 512, 512, 1024, None)

SLOT_GROUPS: dict[str, tuple[int, ...]] = {
    "coarse": (0, 1, 2),         # 4-8 px
    "middle": (4, 5, 7, 8),      # 16-32 px
    "fine": (10, 11, 13, 14),    # 64-128 px
    "colour": (16, 17, 19, 20, 21),  # 256-1024 px and the RGB head
}


def slot_weights(**groups: float) -> np.ndarray:
    """(23,) per-slot weights from group weights, e.g. slot_weights(coarse=0, middle=1, fine=1, colour=1).

    Unused slots follow their block (they change nothing in the image but keep W+ close to W)."""
    weights = np.zeros(N_SLOTS, np.float32)
    for name, value in groups.items():
        if name not in SLOT_GROUPS:
            raise BadInputError(f"unknown slot group {name!r}; choose from {', '.join(SLOT_GROUPS)}")
        weights[list(SLOT_GROUPS[name])] = value
    for slot, res in enumerate(SLOT_RESOLUTION):
        if res is None:
            weights[slot] = weights[slot - 1]
    return weights


# Morph presets: per-slot share of the target. "identity" keeps the user's head pose and expression
# (coarse slots) and takes the target's face; "full" takes everything.
MORPH_PRESETS: dict[str, np.ndarray] = {
    "identity": slot_weights(coarse=0.0, middle=1.0, fine=1.0, colour=1.0),
    "full": slot_weights(coarse=1.0, middle=1.0, fine=1.0, colour=1.0),
    "features": slot_weights(coarse=0.0, middle=1.0, fine=1.0, colour=0.0),
}


# The default morph: the target's face moving like the user (reenact); the per-slot presets mix the two faces.
MORPH_MODES: tuple[str, ...] = ("reenact", *MORPH_PRESETS)
# Direction names a still's reenactment copies from the user (a photo has no motion to take a mean of).
EXPRESSION_NAMES: tuple[str, ...] = ("yaw", "pitch", "smile", "jaw_open", "eye_blink", "brow_raise")
POSE_NAMES: tuple[str, ...] = ("yaw", "pitch")  # the head pose a reenactment keeps on the user's head


@dataclass(frozen=True)
class Reenactment:
    """How a reenactment carries the user's motion onto the target. The defaults were chosen on d18/d20 toward two
    photo targets by `python -m training.evaluate.probe_reenactment` (docs/MORPH.md)."""

    motion: np.ndarray = field(default_factory=lambda: slot_weights(coarse=1.0, middle=1.0))  # (23,) share of the
    #   user's latent change per slot: slots 0-9 (4-32 px) carry head pose and expression; the rest is the target's
    driven: tuple[str, ...] = ("jaw_open",)  # live, these directions also follow the user's measured blendshapes
    share: float = 0.5  # how far those directions go from the latent's change toward the measured one (0..1)
    pose_share: float = 1.0  # how far the head's yaw and pitch go from the encoder's toward the user's resting pose
    #   moved by MediaPipe's measured turn (0: the encoder's own, frame by frame; 1: rest + the measured change)
    rest: tuple[str, ...] = ("smile",)  # live, the target's resting expression along these directions is moved to
    #   the user's (rest_change), so a target photographed grinning does not grin through speech; the jaw too closed
    #   open-mouthed photos but cost likeness (docs/MORPH.md, "The user's resting mouth")
    rest_share: float = 1.0  # how much of that move is made (0: the photo's expression stays under the motion)


@dataclass(frozen=True)
class MotionReference:
    """The user at rest: the mean W+ (1, 23, 512) and expression scores (engine.landmarks.EXPRESSIONS, or None) of
    the frames seen so far, exponential after `count` reaches the window, so motion is measured from where this
    user's face usually is, not from any one frame."""

    mean: np.ndarray
    count: int
    expression: dict[str, float] | None = None

    def expression_change(self, scores: dict[str, float] | None) -> dict[str, float] | None:
        """How far `scores` are from this user's usual ones (blendshape units), or None without scores."""
        if scores is None or self.expression is None:
            return None
        return {k: scores[k] - self.expression[k] for k in self.expression}


def resting_mouth_change(user: dict[str, float] | None, target: dict[str, float] | None,
                         directions: "DirectionSet") -> dict[str, float] | None:
    """reenact's `rest_change`: the user's resting expression scores minus the target photo's, or None when either is
    unknown or the photo's mouth is open beyond the jaw direction's calibrated range (a photo caught mid-word: its
    mouth cannot be brought to rest, and taking its smile alone left a gaping, unrecognised mouth; docs/MORPH.md)."""
    if user is None or target is None or target.get("jaw_open", 0.0) > directions.directions["jaw_open"].max_units:
        return None
    return {k: user[k] - v for k, v in target.items() if k in user}


def motion_reference_step(ref: MotionReference | None, wplus: np.ndarray, window: int,
                          expression: dict[str, float] | None = None, frames: int = 1) -> MotionReference:
    """`ref` updated with one more W+ and its expression scores, standing for `frames` frames (a paced live loop
    inverts only some frames): a plain mean over the first `window` frames, then exponential."""
    w = to_wplus(wplus).astype(np.float64)
    if ref is None or (ref.expression is None) != (expression is None):
        return MotionReference(w, max(1, min(frames, window)), None if expression is None else dict(expression))
    count = min(ref.count + frames, window)
    a = min(1.0, frames / count)  # this sample's weight
    mean_expr = None if expression is None else \
        {k: ref.expression[k] + a * (expression[k] - ref.expression[k]) for k in ref.expression}
    return MotionReference(ref.mean + a * (w - ref.mean), count, mean_expr)


def reenact(source: np.ndarray, target: np.ndarray, strength: float, reference: np.ndarray | None = None,
            directions: "DirectionSet | None" = None, expression: dict[str, float] | None = None,
            how: Reenactment = Reenactment(), rest_change: dict[str, float] | None = None) -> np.ndarray:
    """The target's face with the source's head pose and expression, blended from the source (strength 0) to it (1).

    driven = target + how.motion[slot] * (source - reference): the target moved by how far the user is from their
    own resting latent (`reference`, a MotionReference's mean) on the slots that carry motion; the result is
    source + strength * (driven - source). Without a reference (a still photo) driven is the target, and with
    `directions` its pose and expression components (EXPRESSION_NAMES) are copied from the source. With `directions`
    the head pose (yaw, pitch) is always the source's, so the face stays on the user's head when pasted back.
    `expression` (with `directions`): the user's expression change from rest in blendshape units (e.g.
    {"jaw_open": 0.3}, MotionReference.expression_change): along the `how.driven` directions the driven face moves
    `how.share` of the way from the latent's change (the encoder sees a mouth open only in part) to the target at
    rest moved by exactly that much (up to each direction's calibrated range, max_units). With "yaw" and "pitch" in
    it too (degrees from rest), the head pose moves `how.pose_share` (x strength) of the way from the encoder's
    reading of this frame to the user's resting pose (the reference's) turned by the measured change.
    `rest_change` (with `directions` and a reference): the user's resting expression minus the target's, in blendshape
    units; along the `how.rest` directions the target at rest first moves `how.rest_share` of that way (within each
    direction's calibrated range), so the user's motion starts from their own resting mouth, not the photo's."""
    if not 0.0 <= strength <= 1.0:
        raise BadInputError(f"morph strength must be in [0, 1], got {strength}")
    src, tgt = to_wplus(source), to_wplus(target)
    pose_from = src  # the latent whose yaw and pitch the output keeps
    if reference is None:
        driven = directions.restore(tgt, src, EXPRESSION_NAMES) if directions is not None else tgt
    else:
        if directions is not None and rest_change:
            tgt = directions.apply(tgt, **directions.within_range(
                {k: how.rest_share * rest_change[k] for k in how.rest if k in rest_change}))
        if directions is not None and expression and how.pose_share > 0 and all(k in expression for k in POSE_NAMES):
            turn = directions.within_range({k: expression[k] for k in POSE_NAMES})
            measured = directions.apply(directions.restore(src, to_wplus(reference), POSE_NAMES), **turn)
            pose_from = src + strength * how.pose_share * (measured - src)  # strength 0: the user as encoded
        m = np.asarray(how.motion, np.float32).reshape(1, N_SLOTS, 1)
        driven = tgt + m * (src - to_wplus(reference))
        amounts = directions.within_range({k: expression[k] for k in how.driven if k in expression}) \
            if expression and directions is not None else {}
        if amounts:
            measured = directions.apply(directions.restore(driven, tgt, tuple(amounts)), **amounts)
            driven = driven + how.share * (measured - driven)
    out = (src + strength * (driven - src)).astype(np.float32)
    return directions.restore(out, pose_from, POSE_NAMES).astype(np.float32) if directions is not None else out


def morph(source: np.ndarray, target: np.ndarray, strength: float,
          weights: np.ndarray | str = "identity", pose_lock: "DirectionSet | None" = None) -> np.ndarray:
    """W+' = source + strength * w[slot] * (target - source); strength in [0, 1], weights (23,) or a preset.

    With `pose_lock` (the shipped DirectionSet), the result keeps the source's head pose: its components
    along the yaw and pitch directions are set back to the source's (docs/EDITS.md measures the effect)."""
    if not 0.0 <= strength <= 1.0:
        raise BadInputError(f"morph strength must be in [0, 1], got {strength}")
    if isinstance(weights, str):
        if weights not in MORPH_PRESETS:
            raise BadInputError(f"unknown morph preset {weights!r}; choose from {', '.join(MORPH_PRESETS)}")
        weights = MORPH_PRESETS[weights]
    src, tgt = to_wplus(source), to_wplus(target)
    w = np.asarray(weights, np.float32).reshape(1, N_SLOTS, 1)
    out = src + strength * w * (tgt - src)
    return pose_lock.restore(out, src, ("yaw", "pitch")) if pose_lock is not None else out


@dataclass(frozen=True)
class Direction:
    """A unit direction in W (512,), the W+ slots it is applied to (`slots`, (23,) weights: edits act on the
    layers that carry the attribute, which keeps identity) and its calibration: `units_per_step` attribute
    units per unit of latent distance (degrees for pose, blendshape score for expressions) on those slots,
    measured up to `max_units`; `units_per_step_negative`, when given, is the calibration for negative amounts
    (a direction whose two ends respond differently, e.g. age on real faces: older comes easier than younger)."""

    name: str
    vector: np.ndarray
    units_per_step: float
    unit: str
    max_units: float
    slots: np.ndarray = field(default_factory=lambda: np.ones(N_SLOTS, np.float32))
    units_per_step_negative: float | None = None

    def delta(self, amount: float) -> np.ndarray:
        """W+ offset (1, 23, 512) that changes the attribute by `amount` units."""
        slope = self.units_per_step_negative if amount < 0 and self.units_per_step_negative else self.units_per_step
        return (float(amount) / slope) * self.slots[None, :, None] * self.vector[None, None, :]


@dataclass
class DirectionSet:
    """The shipped attribute directions (resources/directions.npz) keyed by name."""

    directions: dict[str, Direction] = field(default_factory=dict)

    def within_range(self, amounts: dict[str, float]) -> dict[str, float]:
        """`amounts` (real units) clipped to each direction's calibrated range, max_units: beyond it, faces break."""
        return {k: float(np.clip(v, -self.directions[k].max_units, self.directions[k].max_units))
                for k, v in amounts.items()}

    @classmethod
    def load(cls, path: str | os.PathLike = DIRECTIONS_PATH) -> "DirectionSet":
        path = Path(path)
        if not path.is_file():
            raise ModelMissingError(f"direction file not found: {path} (regenerate: python -m training.fit.directions)")
        check_shipped(path)
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            out = {}
            for name, m in meta.items():
                vec = data[name].astype(np.float32)
                if vec.shape != (STYLE_DIM,):
                    raise BadInputError(f"{path}: direction {name} has shape {vec.shape}")
                slots = data[f"{name}_slots"].astype(np.float32) if f"{name}_slots" in data else np.ones(N_SLOTS, np.float32)
                neg = m.get("units_per_step_negative")
                out[name] = Direction(name, vec, float(m["units_per_step"]), m["unit"], float(m["max_units"]), slots,
                                      None if neg is None else float(neg))
        return cls(out)

    def restore(self, edited: np.ndarray, source: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        """`edited` with its components along the named directions (on their slots) set to `source`'s."""
        out = to_wplus(edited).copy()
        src = to_wplus(source)
        for name in names:
            d = self.directions[name]
            gap = ((src - out) @ d.vector)[..., None]  # (B, 23, 1) per-slot component difference
            out += d.slots[None, :, None] * gap * d.vector[None, None, :]
        return out

    def apply(self, latent: np.ndarray, **amounts: float) -> np.ndarray:
        """W+' = W+ + sum_k (amount_k / units_per_step_k) slots_k d_k; amounts in real units
        (e.g. yaw=20 degrees, smile=0.6). Unknown names raise BadInputError."""
        out = to_wplus(latent).copy()
        for name, amount in amounts.items():
            if not np.isfinite(amount):
                raise BadInputError(f"edit {name} must be a finite number, got {amount}")
            if not amount:
                continue
            if name not in self.directions:
                raise BadInputError(f"unknown edit {name!r}; available: {', '.join(sorted(self.directions))}")
            out += self.directions[name].delta(amount)
        return out


# What a still edit can re-aim: attributes engine.attributes.FaceReader measures on a linear scale (gender is a
# probability that saturates, so its calibration stands) and how close is close enough (their units).
AIM_TOLERANCE: dict[str, float] = {"yaw": 1.0, "pitch": 1.0, "age": 1.0}
# How far the recogniser's embedding (1 - cosine) may move before an aimed step bigger than the asked one is refused:
# beyond it, more than 1 edit in 20 leaves dlib's "same person" margin (< 0.55) on real photos (its distance follows
# dlib's at r = 0.91; python -m training.fit.identity_guard, docs/results/identity_guard.json)
AIM_MAX_DRIFT = 0.22


@dataclass(frozen=True)
class Aim:
    """The outcome of aim_amounts: `amounts` to apply, what their render `achieved` (None: not measured), how many
    edited renders were measured in all (`renders`), and how far the recogniser's embedding moved (`drift`, 1 -
    cosine to the unedited render; None when the measure gives no embedding)."""

    amounts: dict[str, float]
    achieved: dict[str, float] | None
    renders: int
    drift: float | None = None


def aim_amounts(directions: DirectionSet, wplus: np.ndarray, asked: dict[str, float],
                measure: Callable[[np.ndarray], dict | None], renders: int = 3,
                gain_limits: tuple[float, float] = (0.5, 2.0), max_drift: float = AIM_MAX_DRIFT) -> Aim:
    """Amounts that make this face change by `asked` as `measure` (a render's attributes, e.g. FaceReader.read
    of the edited crop) sees it, rather than by the calibration's average: a direction moves faces by different
    amounts (a 20° turn asked: 10-39° on held-out photos). Each aimed attribute (AIM_TOLERANCE) is rescaled by
    asked / achieved (that gain limited to `gain_limits` per step, the amount to 1.5x the calibrated range) until
    it lands within tolerance or `renders` edited renders were measured; the best measured amounts are returned.
    The person comes first: when the measure gives the recogniser's "embedding", a step beyond the asked amount
    whose embedding moved more than `max_drift` is not taken (the face answers less, but stays the same person).
    Other attributes pass as asked. Without a face in the unedited render, the asked amounts are returned."""
    aimed = [k for k, v in asked.items() if v and k in AIM_TOLERANCE]
    base = measure(wplus) if aimed else None
    if base is None or any(k not in base for k in aimed):
        return Aim(dict(asked), None, 0)
    amounts, best, best_err, done = dict(asked), None, np.inf, 0
    for _ in range(max(1, renders)):
        got = measure(directions.apply(wplus, **amounts))
        done += 1
        if got is None:
            break
        achieved = {k: got[k] - base[k] for k in aimed}
        drift = float(1.0 - got["embedding"] @ base["embedding"]) if "embedding" in got and "embedding" in base \
            else None
        beyond = any(abs(amounts[k]) > abs(asked[k]) + 1e-9 for k in aimed)
        if beyond and drift is not None and drift > max_drift:
            break  # a bigger step costs the person: keep the best so far (at worst the asked amounts)
        err = max(abs(achieved[k] - asked[k]) / AIM_TOLERANCE[k] for k in aimed)
        if err < best_err:
            best, best_err = Aim(dict(amounts), achieved, done, drift), err
        if err <= 1.0:
            break
        for k in aimed:
            if achieved[k] * asked[k] <= 0:  # moved the wrong way or not at all: no slope to follow
                continue
            gain = float(np.clip(asked[k] / achieved[k], *gain_limits))
            limit = 1.5 * directions.directions[k].max_units
            amounts[k] = float(np.clip(amounts[k] * gain, -limit, limit))
    return replace(best, renders=done) if best is not None else Aim(dict(asked), None, done)
