"""Locate the official MobileStyleGAN FFHQ-1024 OpenVINO IR shipped in the PyPI package `random-face`.

The package's own code is never imported (it needs gdown and a removed OpenVINO API) and the package is not
installed by our extras (its requirements pull opencv-python, which clashes with mediapipe's
opencv-contrib-python, and jupyter). We read its data files from, in order:
  1. an installed `random_face` package (importlib.util.find_spec);
  2. $CELEBLOOK_RANDOM_FACE_DIR (a folder holding the four IR files);
  3. the pinned wheel in the user cache, fetched once with an explicit `pip download --no-deps` and checked
     against its sha256 (fetch_wheel()).
Every IR file is checked against a pinned sha256.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_VERSION = "2021.7.21.1"
WHEEL_NAME = f"random_face-{WHEEL_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "e5d10e2be7df63f06123855ec591ca35dcb1d059eba47ddcb175d7d26b4019b5"
IR_SHA256 = {
    "MappingNetwork.xml": "73e2096cad6e696e4af47df2477e048ab4c42c0e0dec83c7c66604822689e55b",
    "MappingNetwork.bin": "212dd716bdb556e18db603ea97300d4fa3c872b878c726b2402fea80820e7305",
    "SynthesisNetwork.xml": "7918fce515243954d3e06628cb39a23902d6b1d5d02932cc0c2faee7a2aeeedd",
    "SynthesisNetwork.bin": "c7da15fa22d508c82e1c30dd6b4cdf67fe3ccdddaf85b310ee764dbf0c289645",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "celeblook" / "random_face"


def _verified(folder: Path) -> Path | None:
    if all((folder / f).is_file() for f in IR_SHA256):
        bad = [f for f, h in IR_SHA256.items() if _sha256(folder / f) != h]
        if bad:
            raise RuntimeError(f"random-face IR files in {folder} do not match the pinned sha256: {bad}")
        return folder
    return None


def fetch_wheel(dest: Path | None = None) -> Path:
    """Download the pinned random-face wheel (no dependencies) with pip, verify it, unpack its data files."""
    dest = dest or cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "-d", tmp, f"random-face=={WHEEL_VERSION}"], check=True,
                       stdout=subprocess.DEVNULL)
        wheel = Path(tmp) / WHEEL_NAME
        if _sha256(wheel) != WHEEL_SHA256:
            raise RuntimeError(f"{WHEEL_NAME} sha256 mismatch (expected {WHEEL_SHA256})")
        with zipfile.ZipFile(wheel) as zf:
            for f in IR_SHA256:
                part = dest / (f + ".part")
                part.write_bytes(zf.read(f"random_face/data/{f}"))
                os.replace(part, dest / f)
    return dest


def ir_dir(allow_fetch: bool = True) -> Path:
    """Folder holding the verified MappingNetwork/SynthesisNetwork .xml/.bin files."""
    spec = importlib.util.find_spec("random_face")
    if spec and spec.submodule_search_locations:
        found = _verified(Path(list(spec.submodule_search_locations)[0]) / "data")
        if found:
            return found
    if os.environ.get("CELEBLOOK_RANDOM_FACE_DIR"):
        found = _verified(Path(os.environ["CELEBLOOK_RANDOM_FACE_DIR"]))
        if found:
            return found
    found = _verified(cache_dir())
    if found:
        return found
    if not allow_fetch:
        raise FileNotFoundError("MobileStyleGAN IR files not found: run `python -m training.convert.generator` "
                                "(fetches the random-face wheel) or set CELEBLOOK_RANDOM_FACE_DIR")
    return fetch_wheel()
