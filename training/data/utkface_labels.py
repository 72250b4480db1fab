"""UTKFace age and gender labels, and the features the age/gender labellers learn from.

The photos (../shared/data/real-faces/utkface: 23,707 aligned and cropped 200 x 200 faces named
AGE_GENDER_RACE_DATE.jpg.chip.jpg, gender 0 male 1 female) are for non-commercial research use only; anything
fitted with them says so where it is listed.

Held-out rule (the same as the encoder's, training/data/utkface.py on the encoder branch): the 1,000 file names
with the lowest sha256 of the name are never trained on.

Features of a face: MediaPipe landmarks -> the shipped recogniser's 224-px recognition crop (engine/face_id.py) ->
its 1024-d unit embedding, plus a 32 x 32 RGB thumbnail of that crop (skin texture, hair colour). A generated or
edited face is featurised the same way (`face_features`), so the labellers see every face framed alike.

    python -m training.data.utkface_labels --split heldout
    python -m training.data.utkface_labels --split train --limit 5250

Cache: runs/utk_features/<split>[_<limit>].npz (names, age, gender, emb (N,1024) float16, thumb (N,32,32,3) uint8);
photos without a detected face are dropped (their count is printed); rewritten every 250 photos, so a
running job's cache is already a random subset.
"""
from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import cv2
import numpy as np

UTK_DIR = Path("/work/shared/data/real-faces/utkface")
CACHE = Path("runs") / "utk_features"
N_HELD_OUT = 1000
PAD = 100  # px of replicated border around a 200-px chip: MediaPipe finds more faces with context
THUMB = 32


def parse_name(name: str) -> tuple[int, int]:
    """(age, gender) from AGE_GENDER_RACE_DATE.jpg.chip.jpg."""
    parts = name.split("_")
    return int(parts[0]), int(parts[1])


def all_names(folder: Path = UTK_DIR) -> list[str]:
    return sorted(p.name for p in folder.glob("*.jpg"))


def held_out_names(names: list[str] | None = None, n: int = N_HELD_OUT) -> list[str]:
    """The n names with the lowest sha256(name): never trained on."""
    names = all_names() if names is None else names
    return sorted(names, key=lambda s: hashlib.sha256(s.encode()).hexdigest())[:n]


def train_names(names: list[str] | None = None, limit: int | None = None, seed: int = 0) -> list[str]:
    """The other names in a seeded random order (so any prefix, e.g. a partial cache, is a random subset);
    `limit`: the first `limit` of them."""
    names = all_names() if names is None else names
    held = set(held_out_names(names))
    rest = [n for n in names if n not in held]
    rest = [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))]
    return rest[:limit]


def face_features(image_bgr: np.ndarray, landmarker, face_id, points: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """(embedding (1024,), thumbnail (32, 32, 3) uint8 BGR) of the largest face, or None when none is found.
    `points`: its MediaPipe landmarks in pixels of the image, when already known."""
    from engine.face_id import recognition_crop

    if points is None:
        faces = landmarker.detect(image_bgr)
        if not faces:
            return None
        points = faces[0].xy
    crop = recognition_crop(image_bgr, points, face_id.input_size)
    emb = face_id.embed_crops(crop)[0]
    return emb, cv2.resize(crop, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def utk_features(path: Path, landmarker, face_id) -> tuple[np.ndarray, np.ndarray] | None:
    image = cv2.imread(str(path))
    padded = cv2.copyMakeBorder(image, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
    return face_features(padded, landmarker, face_id)


def cache_path(split: str, limit: int | None) -> Path:
    return CACHE / (f"{split}_{limit}.npz" if limit else f"{split}.npz")


def save(out: Path, kept: list[str], embs: list[np.ndarray], thumbs: list[np.ndarray]) -> None:
    labels = np.array([parse_name(n) for n in kept])
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, names=np.array(kept), age=labels[:, 0], gender=labels[:, 1], emb=np.stack(embs),
             thumb=np.stack(thumbs))
    tmp.replace(out)


def main(argv: list[str] | None = None) -> None:
    from engine.face_id import FaceId
    from engine.landmarks import FaceLandmarker

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("heldout", "train"), required=True)
    ap.add_argument("--limit", type=int, help="train: a seeded random subset of this many photos")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    names = held_out_names() if args.split == "heldout" else train_names(limit=args.limit)
    out = cache_path(args.split, args.limit if args.split == "train" else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    face_id = FaceId.load(threads=args.threads)
    kept, embs, thumbs = [], [], []
    t0 = time.time()
    with FaceLandmarker(max_faces=1) as landmarker:
        for i, name in enumerate(names):
            f = utk_features(UTK_DIR / name, landmarker, face_id)
            if f is not None:
                kept.append(name)
                embs.append(f[0].astype(np.float16))
                thumbs.append(f[1])
            if (i + 1) % 250 == 0:
                print(f"{i + 1}/{len(names)} photos, {len(kept)} faces, {(i + 1) / (time.time() - t0):.1f}/s", flush=True)
                save(out, kept, embs, thumbs)  # partial results usable while it runs
    save(out, kept, embs, thumbs)
    print(f"wrote {out}: {len(kept)} of {len(names)} photos had a face ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
