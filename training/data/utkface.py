"""UTKFace (aligned & cropped set, ../shared/data/real-faces/utkface): real photos for the inversion encoder.

23,707 colour photos, 200 x 200, named AGE_GENDER_RACE_DATE.jpg.chip.jpg (gender 0 male, 1 female; race 0 White,
1 Black, 2 Asian, 3 Indian, 4 other; three names lack the race field). Licence: non-commercial research use only;
every model trained on it says so in its manifest entry and in the README's model table.

Held-out rule (never trained on): the 1,000 file names with the lowest sha256 of the name (`held_out_names`).

The crops are tight (less context than the FFHQ framing the encoder takes). Each photo is padded by reflection
for MediaPipe (it finds more faces with context around them), the FFHQ quad is computed from its landmarks and the
crop is cut from the original photo by engine.align.warp_quad, which mirrors and blurs what lies outside it, as
the FFHQ alignment does. `valid` marks the crop pixels that come from the photo (the losses are masked to them),
`oval` the face oval (skin tone readings).

    python -m training.data.utkface --split heldout                # the 1,000 held-out photos
    python -m training.data.utkface --split train --limit 6000     # the first 6,000 training photos (name order)

Cache: runs/utkface/<split>[_<limit>]/ (crop.npy (N,256,256,3) uint8 RGB, valid.npy / oval.npy packed bits,
names.txt, labels.npy (N,3) age/gender/race (-1: missing), points.npy (N,478,3) float16 in crop units) —
never in the repository, and the photos are never copied into it.
"""
from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import cv2
import numpy as np

UTK_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-faces" / "utkface"
CACHE = Path("runs") / "utkface"
N_HELD_OUT = 1000
SIZE = 256
RACES = ("White", "Black", "Asian", "Indian", "other")
AGE_GROUPS = ((0, 12), (13, 19), (20, 39), (40, 59), (60, 200))
PAD = 0.5  # reflection padding for the detector, as a share of the photo side on each edge


def parse_name(name: str) -> tuple[int, int, int]:
    """(age, gender, race) from AGE_GENDER_RACE_DATE.jpg.chip.jpg; -1 for a missing or unreadable field."""
    parts = name.split("_")
    out = []
    for i in range(3):
        try:
            out.append(int(parts[i]) if i < len(parts) - 1 else -1)
        except ValueError:
            out.append(-1)
    return tuple(out)  # type: ignore[return-value]


def age_group(age: int) -> str:
    for lo, hi in AGE_GROUPS:
        if lo <= age <= hi:
            return f"{lo}+" if hi >= 200 else f"{lo}-{hi}"
    return "unknown"


def all_names(folder: Path = UTK_DIR) -> list[str]:
    return sorted(p.name for p in folder.glob("*.jpg"))


def _key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def held_out_names(names: list[str] | None = None, n: int = N_HELD_OUT) -> list[str]:
    """The held-out real-face validation set: the n names with the lowest sha256(name), in that order."""
    names = all_names() if names is None else names
    return sorted(names, key=_key)[:n]


def train_names(names: list[str] | None = None) -> list[str]:
    """Every other name, in name order (a training subset takes a prefix of a seeded shuffle: `split_names`)."""
    names = all_names() if names is None else names
    held = set(held_out_names(names))
    return [n for n in names if n not in held]


def split_names(split: str, limit: int | None = None) -> list[str]:
    if split == "heldout":
        names = held_out_names()
    else:
        names = train_names()
        names = [names[i] for i in np.random.default_rng(0).permutation(len(names))]  # a mixed prefix
    return names[:limit] if limit else names


def find_face(landmarker, bgr: np.ndarray):
    """The photo's own face (engine.landmarks.Face in photo coordinates) or None: MediaPipe misses faces that fill
    the frame, so it looks at the reflection-padded photo and takes the face nearest the centre (not a mirrored copy)."""
    from engine.landmarks import Face

    h, w = bgr.shape[:2]
    p = int(round(PAD * max(h, w)))
    faces = landmarker.detect(cv2.copyMakeBorder(bgr, p, p, p, p, cv2.BORDER_REFLECT))
    if not faces:
        return None
    c = np.array([p + w / 2, p + h / 2])
    face = min(faces, key=lambda f: np.hypot(*(f.xy.mean(0) - c)))
    return Face(points=face.points - np.array([p, p, 0], np.float32), image_size=(w, h))


def align_photo(landmarker, bgr: np.ndarray, size: int = SIZE):
    """(crop BGR (size, size, 3), valid mask (size, size) bool, oval mask bool, points (478, 3) in crop units) or
    None when MediaPipe finds no face on the reflection-padded photo."""
    from engine.align import Crop, face_quad, warp_quad, crop_points
    from engine.inversion.skin_tone import face_oval_mask

    face = find_face(landmarker, bgr)
    if face is None:
        return None
    h, w = bgr.shape[:2]
    crop = warp_quad(bgr, face_quad(face), size)
    valid = cv2.warpAffine(np.full((h, w), 255, np.uint8), crop.matrix, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 127
    return crop.image, valid, face_oval_mask(face, crop), crop_points(face, crop)


def _worker(args):
    names, folder, out_slot = args
    from engine.landmarks import FaceLandmarker
    res = []
    with FaceLandmarker() as lm:
        for name in names:
            img = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
            r = align_photo(lm, img) if img is not None else None
            res.append((name, r))
    return res


def cache_dir(split: str, limit: int | None = None) -> Path:
    return CACHE / (split + (f"_{limit}" if limit and split != "heldout" else ""))


def build(split: str, limit: int | None = None, workers: int = 2, folder: Path = UTK_DIR) -> Path:
    from multiprocessing import get_context

    names = split_names(split, limit)
    out = cache_dir(split, limit)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    chunks = [names[i::workers * 8] for i in range(workers * 8)]
    results = {}
    with get_context("spawn").Pool(workers) as pool:
        for part in pool.imap_unordered(_worker, [(c, folder, i) for i, c in enumerate(chunks)]):
            results.update(dict(part))
            print(f"{len(results)}/{len(names)} photos, {time.time() - t0:.0f} s", flush=True)
    kept = [n for n in names if results.get(n) is not None]
    crop = np.stack([cv2.cvtColor(results[n][0], cv2.COLOR_BGR2RGB) for n in kept])
    np.save(out / "crop.npy", crop)
    np.save(out / "valid.npy", np.packbits(np.stack([results[n][1] for n in kept]), axis=-1))
    np.save(out / "oval.npy", np.packbits(np.stack([results[n][2] for n in kept]), axis=-1))
    np.save(out / "points.npy", np.stack([results[n][3] for n in kept]).astype(np.float16))
    np.save(out / "labels.npy", np.array([parse_name(n) for n in kept], np.int16))
    (out / "names.txt").write_text("\n".join(kept) + "\n")
    (out / "missing.txt").write_text("\n".join(n for n in names if results.get(n) is None) + "\n")
    print(f"{split}: {len(kept)} of {len(names)} photos aligned ({time.time() - t0:.0f} s) -> {out}")
    return out


def load_cache(split: str = "train", limit: int | None = None, mmap: bool = True) -> dict:
    """The cached split: crop (N,256,256,3) uint8 RGB, valid / oval (N,256,256) bool, points, labels, names."""
    d = cache_dir(split, limit)
    if not (d / "crop.npy").is_file():
        hits = sorted(CACHE.glob(f"{split}*/crop.npy")) if CACHE.is_dir() else []
        if not hits:
            raise FileNotFoundError(f"no UTKFace cache for {split}: python -m training.data.utkface --split {split}")
        d = hits[-1].parent
    unpack = lambda a: np.unpackbits(a, axis=-1)[..., :SIZE].astype(bool)  # noqa: E731
    return {"crop": np.load(d / "crop.npy", mmap_mode="r" if mmap else None),
            "valid": unpack(np.load(d / "valid.npy")), "oval": unpack(np.load(d / "oval.npy")),
            "points": np.load(d / "points.npy"), "labels": np.load(d / "labels.npy"),
            "names": (d / "names.txt").read_text().split()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["heldout", "train"], default="heldout")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    build(args.split, args.limit, args.workers)


if __name__ == "__main__":
    main()
