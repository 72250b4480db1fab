"""The encoder's input augmentation: makes rendered training crops look like webcam and phone photos (jitter, blur,
JPEG, noise, colour), so what is learnt on generated faces holds on real ones."""
from __future__ import annotations

import cv2
import numpy as np
import torch


def augment(crops: np.ndarray, size: int, rng: np.random.Generator, strength: float = 1.0,
            colour: float | None = None) -> torch.Tensor:
    """uint8 RGB crops (B, 256, 256, 3) -> float (B, 3, size, size) in [0, 1], augmented so real photos are in
    distribution: small similarity jitter (alignment error), JPEG, blur, noise (`strength`) and
    contrast/brightness/white balance/saturation/grayscale/gamma (`colour`, default `strength`). The target W+
    stays the same, so colour augmentation teaches the encoder to ignore what it changes: exposure and skin tone."""
    colour = strength if colour is None else colour
    out = []
    for img in crops:
        s = strength
        if s > 0:
            n = img.shape[0]
            ang = rng.uniform(-3, 3) * s
            scale = 1.0 + rng.uniform(-0.04, 0.04) * s
            shift = rng.uniform(-0.025, 0.025, 2) * n * s
            m = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), ang, scale)
            m[:, 2] += shift
            img = cv2.warpAffine(img, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            if rng.random() < 0.3 * s:
                sigma = rng.uniform(0.3, 2.0)
                img = cv2.GaussianBlur(img, (0, 0), sigma)
            if rng.random() < 0.2 * s:  # low-resolution source (webcam, small face)
                k = rng.uniform(0.25, 0.6)
                small = cv2.resize(img, (int(n * k), int(n * k)), interpolation=cv2.INTER_AREA)
                img = cv2.resize(small, (n, n), interpolation=cv2.INTER_LINEAR)
            if rng.random() < 0.4 * s:
                ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
                img = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        s = colour
        if s > 0:
            img = img * rng.uniform(1 - 0.25 * s, 1 + 0.25 * s) + rng.uniform(-0.08, 0.08) * s  # contrast, brightness
            img = img * (1 + rng.uniform(-0.08, 0.08, 3) * s)  # white balance
            gray = img.mean(axis=2, keepdims=True)
            img = gray + (img - gray) * rng.uniform(1 - 0.4 * s, 1 + 0.3 * s)  # saturation
            if rng.random() < 0.05 * s:
                img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
            img = np.clip(img, 0, 1) ** rng.uniform(1 - 0.25 * s, 1 + 0.25 * s)  # gamma
        s = strength
        if s > 0:
            if rng.random() < 0.3 * s:
                img = img + rng.normal(0, rng.uniform(0.005, 0.03), img.shape)
        out.append(np.clip(img, 0, 1).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out).astype(np.float32))
