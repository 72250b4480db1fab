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
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import BadInputError
from engine.face_id import five_points, separable_warp
from engine.generator import Generator
from engine.latents import to_wplus
from engine.models import resolve_model
from engine.onnx_session import make_session

MODEL_NAME = "refiner_256"
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
        identity = identity or IdentityTerm.off()
        loss, grad = self.objective.run(None, {"wplus": np.ascontiguousarray(wplus, np.float32), "target": target,
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
    w = to_wplus(init).astype(np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    beta1, beta2, eps = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, as the torch quality mode uses
    offset = np.zeros_like(target)
    losses = []
    for step in range(steps):
        if anchor_every > 0 and step % anchor_every == 0:
            w32 = w.astype(np.float32)
            offset = colour_anchor(refiner.full.synthesize(w32), refiner.preview.synthesize(w32))
        loss, grad = refiner.loss_and_grad(w.astype(np.float32), target, offset, identity)
        losses.append(loss)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad.astype(np.float64) ** 2
        m_hat, v_hat = m / (1 - beta1 ** (step + 1)), v / (1 - beta2 ** (step + 1))
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w.astype(np.float32), losses
