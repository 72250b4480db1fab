"""Image files in and out: any common photo becomes a uint8 3-channel array, or a clear BadInputError.

Loading handles what real photos bring: EXIF orientation (read with PIL, applied to the pixels),
grayscale, an alpha channel (composited over white), 16-bit and float samples (scaled to 8 bits).
Decoding is OpenCV's, which reads 16-bit PNG/TIFF without loss. Writing is atomic.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.atomic import atomic_path
from engine.errors import BadInputError

EXIF_ORIENTATION_TAG = 0x0112
WRITABLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def load_image(path: str | os.PathLike, order: str = "bgr") -> np.ndarray:
    """Read an image file as an upright uint8 (H, W, 3) array in `order` ('bgr' or 'rgb')."""
    if order not in ("bgr", "rgb"):
        raise ValueError(f"order must be 'bgr' or 'rgb', not {order!r}")
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"image not found: {path}")
    if not path.is_file():
        raise BadInputError(f"not a file: {path}")
    data = path.read_bytes()
    if not data:
        raise BadInputError(f"image file is empty: {path}")
    image = decode_image(data, source=str(path))
    return image if order == "bgr" else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """Decode encoded image bytes into an upright uint8 BGR (H, W, 3) array."""
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if raw is None or raw.size == 0:
        raise BadInputError(f"cannot decode {source}: corrupt or not an image file")
    image = to_bgr8(raw)
    return apply_exif_orientation(image, exif_orientation(data))


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1..8) stored in encoded image bytes; 1 when absent or unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return 1
    return int(value) if value in range(1, 9) else 1


def apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn/flip pixels so an image stored with EXIF `orientation` displays upright (as PIL's exif_transpose)."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: a.swapaxes(0, 1)[:, ::-1],
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: a.swapaxes(0, 1)[::-1],
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(image))


def to_bgr8(raw: np.ndarray) -> np.ndarray:
    """Convert a decoded array (gray, gray+alpha, BGR or BGRA; 8/16-bit or float) to uint8 BGR."""
    image = _to_uint8(raw)
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if channels == 2:  # gray + alpha
        gray, alpha = image[:, :, :1], image[:, :, 1:2]
        return cv2.cvtColor(_over_white(gray, alpha), cv2.COLOR_GRAY2BGR)
    if channels == 3:
        return np.ascontiguousarray(image)
    if channels == 4:
        return _over_white(image[:, :, :3], image[:, :, 3:4])
    raise BadInputError(f"unsupported image with {channels} channels")


def _to_uint8(raw: np.ndarray) -> np.ndarray:
    if raw.dtype == np.uint8:
        return raw
    if raw.dtype == np.uint16:
        return ((raw.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if raw.dtype.kind == "f":
        return (np.clip(np.nan_to_num(raw), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if raw.dtype == np.int8:
        return (raw.astype(np.int16) + 128).astype(np.uint8)
    raise BadInputError(f"unsupported image sample type {raw.dtype}")


def _over_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    if alpha.min() == 255:
        return np.ascontiguousarray(color)
    a = alpha.astype(np.float32) / 255.0
    out = color.astype(np.float32) * a + 255.0 * (1.0 - a)
    return (out + 0.5).astype(np.uint8)


def save_image(path: str | os.PathLike, image: np.ndarray, order: str = "bgr", jpeg_quality: int = 95) -> Path:
    """Write a uint8 image atomically; the format comes from the suffix (.png, .jpg, ...)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise BadInputError(f"cannot write {path}: use one of {', '.join(WRITABLE_SUFFIXES)}")
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise BadInputError(f"cannot write a {image.dtype} array of shape {image.shape} as an image")
    if order == "rgb" and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if suffix in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(suffix, image, params)
    if not ok:
        raise BadInputError(f"could not encode image for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return path
