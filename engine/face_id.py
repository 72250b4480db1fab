"""Face identity embedding from a recogniser trained on real faces (`face_id.onnx`: HSE FaceRes, a MobileNet
trained on VGGFace2 for face identification; training/convert/face_id.py).

The inversion encoder learned faces from the generator alone; a face-recognition network learned what tells real
people apart. Its embedding feeds the identity correction (engine/inversion/corrections/identity.py). The network takes a
224-px recognition crop: a similarity warp of five points (eye centres, nose tip, mouth corners, from the
MediaPipe landmarks) onto the standard ArcFace template, scaled to 224 px (measured on the test photos, this
framing told their people apart: docs/ENCODER.md). The embedding is the network's 1024-d pooled features, L2-normalised.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import BadInputError
from engine.landmarks import LEFT_EYE, MOUTH_LEFT, MOUTH_RIGHT, RIGHT_EYE
from engine.models import resolve_model
from engine.onnx_session import make_session

MODEL_NAME = "face_id"
NOSE_TIP = 4
# the five-point template of 112 x 112 recognition crops (insightface's arcface_dst): the person's right eye
# (the image's left), left eye, nose tip, right and left mouth corner
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


def five_points(points: np.ndarray) -> np.ndarray:
    """(5, 2) recognition points from 478 MediaPipe landmarks (x, y in any units, e.g. pixels or crop units)."""
    p = np.asarray(points, np.float32)[:, :2]
    return np.stack([p[list(RIGHT_EYE)].mean(0), p[list(LEFT_EYE)].mean(0), p[NOSE_TIP], p[MOUTH_RIGHT],
                     p[MOUTH_LEFT]])


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, shift) taking points `src` (N, 2) to `dst` (N, 2)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    sm, dm = src.mean(0), dst.mean(0)
    s, d = src - sm, dst - dm
    var = (s ** 2).sum()
    if var < 1e-12:
        raise BadInputError("the face's five points coincide: no recognition crop")
    a = (s * d).sum() / var  # scale * cos
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / var  # scale * sin
    rot = np.array([[a, -b], [b, a]])
    return np.c_[rot, dm - rot @ sm].astype(np.float32)


def recognition_crop(image_bgr: np.ndarray, points_px: np.ndarray, size: int = 224) -> np.ndarray:
    """The recognition crop (uint8 BGR, `size` px) of the face whose landmarks (pixels of `image_bgr`) are given."""
    matrix = similarity_fit(five_points(points_px), TEMPLATE_112 * (size / 112.0))
    interp = cv2.INTER_AREA if abs(np.linalg.det(matrix[:, :2])) < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image_bgr, matrix, (size, size), flags=interp, borderMode=cv2.BORDER_REFLECT)


def separable_warp(five: np.ndarray, size: int, out: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """The recognition crop of an upright `size`-px aligned crop as two bilinear matrices: `rows` (out, size) and
    `cols` (out, size), crop (C, size, size) -> rows @ crop @ cols.T. The `five` recognition points (five_points,
    in pixels of the crop) are fitted to the template by scale and shift alone (no rotation: the aligned crop is
    upright), so the warp, and its gradient, are matrix products (the quality mode's identity term,
    engine/inversion/refine.py)."""
    src, dst = np.asarray(five, np.float64), TEMPLATE_112.astype(np.float64) * (out / 112.0)
    s, d = src - src.mean(0), dst - dst.mean(0)
    if (s ** 2).sum() < 1e-12:
        raise BadInputError("the face's five points coincide: no recognition crop")
    scale = (s * d).sum() / (s ** 2).sum()
    shift = dst.mean(0) - scale * src.mean(0)

    def axis(t: float) -> np.ndarray:
        c = (np.arange(out) - t) / scale  # source coordinate of each output pixel (pixel centres)
        lo = np.floor(c)
        frac = c - lo
        m = np.zeros((out, size), np.float32)
        i = np.arange(out)
        np.add.at(m, (i, np.clip(lo, 0, size - 1).astype(int)), 1 - frac)
        np.add.at(m, (i, np.clip(lo + 1, 0, size - 1).astype(int)), frac)
        return m

    return axis(shift[1]), axis(shift[0])

@dataclass
class FaceId:
    """The recogniser. Build it with FaceId.load(); `threads` = onnxruntime intra-op threads."""

    session: object
    input_size: int = 224

    @classmethod
    def load(cls, threads: int = 0, path: str | os.PathLike | None = None) -> "FaceId":
        session = make_session(resolve_model(MODEL_NAME, path, verify=path is None), threads, spin=False)
        return cls(session, int(session.get_inputs()[0].shape[-1]))

    def embed_crops(self, crops_bgr: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """Recognition crop(s) uint8 BGR (S, S, 3) or (B, S, S, 3), S = input_size -> unit embeddings (B, D)."""
        crops = [crops_bgr] if isinstance(crops_bgr, np.ndarray) and crops_bgr.ndim == 3 else list(crops_bgr)
        s = self.input_size
        if any(c.dtype != np.uint8 or c.shape != (s, s, 3) for c in crops):
            raise BadInputError(f"the face recogniser takes uint8 BGR crops of shape ({s}, {s}, 3)")
        x = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops]).transpose(0, 3, 1, 2)
        e = self.session.run(None, {"image": x.astype(np.float32) / 255.0})[0]
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-8)

    def embed(self, image_bgr: np.ndarray, points_px: np.ndarray) -> np.ndarray:
        """Embedding (D,) of the face with these landmarks (pixels of `image_bgr`: a photo, frame or aligned crop)."""
        return self.embed_crops(recognition_crop(image_bgr, points_px, self.input_size))[0]
