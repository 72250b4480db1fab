"""How close a reconstruction is to its input inside the face: PSNR and SSIM in a mask, and the skin-tone shift."""
from __future__ import annotations

import cv2
import numpy as np

from engine.inversion.skin_tone import skin_lab


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (mean over colour channels) of two uint8 images, gaussian window sigma 1.5."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    ma, mb = blur(a), blur(b)
    saa, sbb, sab = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    s = (2 * ma * mb + c1) * (2 * sab + c2) / ((ma * ma + mb * mb + c1) * (saa + sbb + c2))
    return s.mean(axis=2)


def region_metrics(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of uint8 images inside a boolean mask."""
    diff = (a.astype(np.float64) - b.astype(np.float64))[mask]
    mse = float(np.mean(diff ** 2))
    psnr = 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))
    return psnr, float(ssim_map(a, b)[mask].mean())


def skin_shift(input_bgr: np.ndarray, recon_bgr: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(delta L*, delta E76) of the reconstruction's skin against the input's; delta L* > 0: came back lighter."""
    diff = skin_lab(recon_bgr, mask) - skin_lab(input_bgr, mask)
    return float(diff[0]), float(np.linalg.norm(diff))
