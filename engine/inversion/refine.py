"""Quality mode for stills without torch: refine an inversion's W+ by latent optimisation over onnxruntime.

The objective (`refiner_256.onnx`, training/export/refiner.py) gives the loss L1 + (1 - MS-SSIM) of the 256-px
preview render against the aligned crop, plus, given the face's landmarks, ID_WEIGHT x (1 - cosine) of the face
recogniser's embeddings of the two (engine/face_id.py's network, read through engine.face_id.separable_warp), and
its gradient with respect to W+; Adam (numpy) moves the whole W+. The identity term is what makes the result look
like the person and not only match the pixels (docs/ENCODER.md, "Quality mode").
Every `anchor_every` steps the full 1024-px generator renders the current W+ once and the low-pass of
(full - preview), in ANCHOR_CELL-px cells, is added to the preview from then on: the colour anchor, which keeps
the optimisation from walking to codes where the preview head renders darker than the full network
(docs/ENCODER.md, "Quality mode"). The same recipe as training/fit/refine_inversion.py, which runs it in torch.

A refined latent lies off the encoder's manifold, where the distilled live student renders some people unlike the
preview head does (docs/BENCHMARKS.md, "Live generator"). `match_student` fits a second latent for the student
(`refiner_live_256.onnx`: the same objective through the student) to the preview head's renders of the target at
rest and driven along the pose and expression directions, and to the photo itself at rest, so the live view can
render photo targets at the student's rate and keep (or better) the likeness the preview head gave them
(docs/MORPH.md, "Photo targets at the student's rate", "The photo itself in the fit").
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import BadInputError
from engine.face_id import five_points, separable_warp
from engine.generator import Generator, to_uint8_rgb
from engine.latents import to_wplus
from engine.models import load_manifest, resolve_model
from engine.onnx_session import make_session

MODEL_NAME = "refiner_256"
LIVE_MODEL_NAME = "refiner_live_256"  # the same objective through the live student (match_student)
SIZE = 256
STEPS = 20
LR = 0.06  # Adam step on W+; 0.01 / 0.03 / 0.06 tried on the dev photos (20 steps): 0.655 / 0.547 / 0.497
ANCHOR_EVERY = 5  # full-generator colour anchor every 5 steps; 10 tried: less colour gain
ANCHOR_CELL = 16  # px at 256: the anchor corrects colour and light at this scale, the preview keeps the detail
ID_WEIGHT = 0.5  # identity term: 0.5, 1, 3 tried (docs/ENCODER.md, "The identity term"); 0.5 is as good as 1 on the video
# frames and much better on generated faces (1 pulls them off their own likeness by dlib)


@dataclass
class Refiner:
    """The exported objective, the 256-px preview generator it differentiates and the full 1024-px generator of
    the colour anchor. Build it with Refiner.load()."""

    objective: object
    preview: Generator
    full: Generator

    @classmethod
    def load(cls, threads: int = 0, path: str | os.PathLike | None = None,
             full: Generator | None = None) -> "Refiner":
        """`full`: a 1024-px Generator already loaded, to share (otherwise one is loaded)."""
        if full is None or full.resolution != 1024:
            full = Generator.load(threads)
        return cls(make_session(resolve_model(MODEL_NAME, path, verify=path is None), threads),
                   Generator.load(threads, resolution=SIZE), full)

    def loss_and_grad(self, wplus: np.ndarray, target: np.ndarray, offset: np.ndarray,
                      identity: IdentityTerm | None = None) -> tuple[float, np.ndarray]:
        """(loss, d loss / d W+ (1, 23, 512)) for W+ against `target` (1, 3, 256, 256) in [-1, 1], `offset` added
        to the render; with `identity`, its term added."""
        return objective_step(self.objective, wplus, target, offset, identity)


def objective_step(objective, wplus: np.ndarray, target: np.ndarray, offset: np.ndarray,
                   identity: IdentityTerm | None = None) -> tuple[float, np.ndarray]:
    """One run of an exported objective (training/export/refiner.py): (loss, d loss / d W+ (1, 23, 512))."""
    identity = identity or IdentityTerm.off()
    loss, grad = objective.run(None, {"wplus": np.ascontiguousarray(wplus, np.float32), "target": target,
                                      "offset": offset, "id_rows": identity.rows, "id_cols": identity.cols,
                                      "id_weight": np.array([identity.weight], np.float32)})
    return float(loss), grad


@dataclass
class IdentityTerm:
    """The objective's identity term: the separable warp of the 256-px crop into the recognition crop (`rows`,
    `cols` (224, 256)) and its `weight` (0: off)."""

    rows: np.ndarray
    cols: np.ndarray
    weight: float = ID_WEIGHT

    @classmethod
    def for_face(cls, points: np.ndarray, weight: float = ID_WEIGHT) -> "IdentityTerm":
        """From the face's landmarks in the aligned crop (engine.align.crop_points: crop units)."""
        rows, cols = separable_warp(five_points(np.asarray(points)[:, :2] * SIZE), SIZE)
        return cls(rows, cols, weight)

    @classmethod
    def off(cls) -> "IdentityTerm":
        return cls(np.zeros((224, SIZE), np.float32), np.zeros((224, SIZE), np.float32), 0.0)


def crop_target(crop_bgr: np.ndarray) -> np.ndarray:
    """uint8 BGR aligned crop -> (1, 3, 256, 256) RGB float32 in [-1, 1]."""
    if not isinstance(crop_bgr, np.ndarray) or crop_bgr.dtype != np.uint8 or crop_bgr.ndim != 3:
        raise BadInputError("the refinement takes a uint8 BGR face crop of shape (H, W, 3)")
    if crop_bgr.shape[:2] != (SIZE, SIZE):
        interp = cv2.INTER_AREA if crop_bgr.shape[0] > SIZE else cv2.INTER_LINEAR
        crop_bgr = cv2.resize(crop_bgr, (SIZE, SIZE), interpolation=interp)
    rgb = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


def colour_anchor(full: np.ndarray, preview: np.ndarray, cell: int = ANCHOR_CELL) -> np.ndarray:
    """Low-pass of (full render area-resized to the preview's size - preview), in `cell`-px cells, bilinearly
    upsampled back: (1, 3, S, S). `full` (1, 3, F, F) with F a multiple of S."""
    s, k = preview.shape[-1], full.shape[-1] // preview.shape[-1]
    diff = full.reshape(1, 3, s, k, s, k).mean((3, 5)) - preview
    n = s // cell
    cells = diff.reshape(3, n, cell, n, cell).mean((2, 4))  # (3, n, n)
    up = [cv2.resize(c, (s, s), interpolation=cv2.INTER_LINEAR) for c in cells]
    return np.stack(up)[None].astype(np.float32)


def refine_latent(refiner: Refiner, crop_bgr: np.ndarray, init: np.ndarray, steps: int = STEPS, lr: float = LR,
                  anchor_every: int = ANCHOR_EVERY, points: np.ndarray | None = None,
                  id_weight: float = ID_WEIGHT) -> tuple[np.ndarray, list]:
    """The quality mode: `steps` Adam steps on the whole W+ from `init` (the encoder's), so that the preview render
    (+ the colour anchor, renewed by the full network every `anchor_every` steps; 0: none) matches the aligned
    crop and, given the face's landmarks `points` in the crop (crop units), the recogniser sees the same person
    (weight `id_weight`). Returns (W+ (1, 23, 512), loss per step)."""
    target = crop_target(crop_bgr)
    identity = IdentityTerm.for_face(points, id_weight) if points is not None and id_weight > 0 else None
    adam = Adam(to_wplus(init), lr)
    offset = np.zeros_like(target)
    losses = []
    for step in range(steps):
        if anchor_every > 0 and step % anchor_every == 0:
            w32 = adam.w.astype(np.float32)
            offset = colour_anchor(refiner.full.synthesize(w32), refiner.preview.synthesize(w32))
        loss, grad = refiner.loss_and_grad(adam.w.astype(np.float32), target, offset, identity)
        losses.append(loss)
        adam.step(grad)
    return adam.w.astype(np.float32), losses


class Adam:
    """Adam on a W+ in float64, with torch.optim.Adam's defaults (as the torch quality mode uses)."""

    def __init__(self, w: np.ndarray, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.w, self.lr, self.beta1, self.beta2, self.eps = np.asarray(w, np.float64).copy(), lr, beta1, beta2, eps
        self.m, self.v, self.t = np.zeros_like(self.w), np.zeros_like(self.w), 0

    def step(self, grad: np.ndarray) -> None:
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad.astype(np.float64) ** 2
        m_hat, v_hat = self.m / (1 - self.beta1 ** self.t), self.v / (1 - self.beta2 ** self.t)
        self.w = self.w - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


MATCH_REACH = 0.5  # each drive moves up to this share of its direction's calibrated range (jaw: 0 to all of it)
MATCH_DRIVEN = ("yaw", "pitch", "smile", "eye_blink", "brow_raise")  # and jaw_open: what reenactment moves


@dataclass(frozen=True)
class StudentFit:
    """How match_student fits a photo target's latent to the live student; chosen on Biden's and Obama's photos
    against d18's motion, then on held-out photos (docs/MORPH.md, "Photo targets at the student's rate", "The photo
    itself in the fit")."""

    steps: int = 40  # Adam steps from the refined latent (30 without the photo lost a held-out target far from the
    # preview head; 60 steps of 3 copies gave the same faces, on renders and live, as these 40 of 2 at lr 0.03, in
    # twice the time)
    lr: float = 0.03  # Adam's step on W+
    copies: int = 2  # driven copies beside the target at rest in each step, drawn from the pool
    pool: int = 24  # copies the teacher renders once: the target at rest and pool - 1 drives
    photo: float = 1.0  # weight of the photo's own term (its aligned crop at rest, pixels and identity); 0: the
    # teacher's renders only, which are only as like the person as the preview head is

    @property
    def tag(self) -> str:
        """The recipe, for a cache entry's name: a fit made another way is never reused."""
        return f"x{self.steps}c{self.copies}of{self.pool}lr{self.lr:g}p{self.photo:g}"

    @classmethod
    def from_tag(cls, tag: str) -> "StudentFit":
        """The recipe a `tag` names (e.g. x40c2of24lr0.03p1, for a benchmark's command line)."""
        found = re.fullmatch(r"x(\d+)c(\d+)of(\d+)lr([0-9.e-]+)p([0-9.e-]+)", tag)
        if found is None:
            raise BadInputError(f"not a fit recipe: {tag!r} (like {cls().tag})")
        steps, copies, pool, lr, photo = found.groups()
        return cls(int(steps), float(lr), int(copies), int(pool), float(photo))


@dataclass
class StudentMatch:
    """What match_student needs: the live student's objective (`refiner_live_256.onnx`), the generator whose look
    it matches (`teacher`: the preview head, which renders refined targets the way users recognise them) and the
    attribute directions the target is driven along (engine.edits.DirectionSet)."""

    objective: object
    teacher: Generator
    directions: object

    @classmethod
    def load(cls, teacher: Generator, directions, threads: int = 0,
             path: str | os.PathLike | None = None) -> "StudentMatch":
        return cls(make_session(resolve_model(LIVE_MODEL_NAME, path, verify=path is None), threads), teacher,
                   directions)

    @property
    def model_sha(self) -> str:
        return load_manifest()[LIVE_MODEL_NAME].sha256


def drives(directions, count: int, seed: int = 0, reach: float = MATCH_REACH) -> np.ndarray:
    """`count` W+ offsets (count, 23, 512) like those reenactment adds: each of MATCH_DRIVEN, with probability 0.6,
    by a uniform amount within ±`reach` of its calibrated range, and the jaw opened by up to its whole range."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        amounts = {k: float(rng.uniform(-reach, reach) * directions.directions[k].max_units)
                   for k in MATCH_DRIVEN if rng.random() < 0.6}
        if rng.random() < 0.6:
            amounts["jaw_open"] = float(rng.uniform(0, 1) * directions.directions["jaw_open"].max_units)
        out.append(directions.apply(np.zeros((1, 23, 512), np.float32), **amounts))
    return np.concatenate(out).astype(np.float32)


def match_student(match: StudentMatch, wplus: np.ndarray, landmarker, fit: StudentFit = StudentFit(),
                  photo: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, list]:
    """A latent for the live student that renders like the teacher renders `wplus`, at rest and driven: `fit.steps`
    Adam steps from `wplus` on the sum of the objective over the target at rest and `fit.copies` driven copies
    drawn from a pool of `fit.pool` - 1 (`drives`), each against the teacher's render of the same drive; the
    identity term reads the five points of the teacher's render at rest (`landmarker`:
    engine.landmarks.FaceLandmarker; no face there: no identity term). `photo`: (the photo's aligned crop, uint8
    BGR; its landmarks in crop units), whose own term (pixels and identity, at rest) is added with weight
    `fit.photo` in every step. `progress(step, steps)` is called after each step (a caller's progress display).
    Returns (W+ (1, 23, 512), loss per step: the mean over the terms). Drives are offsets, so the live view adds its
    own motion to the result as it does to the target."""
    w0 = to_wplus(wplus).astype(np.float32)
    offsets = np.concatenate([np.zeros((1, 23, 512), np.float32), drives(match.directions, fit.pool - 1, seed)])
    targets = [match.teacher.synthesize(w0 + d).astype(np.float32) for d in offsets]
    rest = cv2.cvtColor(to_uint8_rgb(targets[0])[0], cv2.COLOR_RGB2BGR)  # the teacher's face at rest, not rendered again
    found = landmarker.detect(rest) if landmarker is not None else []
    identity = IdentityTerm.for_face(found[0].points[:, :2] / SIZE) if found else None
    own = (crop_target(photo[0]), IdentityTerm.for_face(photo[1])) if photo is not None and fit.photo > 0 else None
    zero = np.zeros_like(targets[0])
    rng = np.random.default_rng(seed)
    adam = Adam(w0, fit.lr)
    losses = []
    for step in range(fit.steps):
        picked = [0, *rng.choice(np.arange(1, fit.pool), size=fit.copies, replace=False)]
        total, grad = 0.0, np.zeros_like(adam.w)
        for i in picked:
            loss, g = objective_step(match.objective, (adam.w + offsets[i]).astype(np.float32), targets[i], zero,
                                     identity)
            total, grad = total + loss, grad + g
        if own is not None:
            loss, g = objective_step(match.objective, adam.w.astype(np.float32), own[0], zero, own[1])
            total, grad = total + fit.photo * loss, grad + fit.photo * g
        losses.append(total / (len(picked) + (fit.photo if own is not None else 0)))
        adam.step(grad)
        if progress is not None:
            progress(step + 1, fit.steps)
    return adam.w.astype(np.float32), losses
