"""Real-face morph targets as the app makes them, and the codes the live view renders toward them.

    python -m training.data.morph_targets --split train --count 200     # resumable; ~10 s a photo on 2 cores

Why: a dropped photo becomes a target through the quality mode (one pass, 20 steps of latent optimisation with the
recogniser, skin match: engine/inversion/targets.py), and those codes sit off the distribution the encoder-like
draws cover (Biden's refined target: 18.3 dB from the 256-px preview head, 16.7 dB and dlib 0.38 from the first live
student; docs/BENCHMARKS.md, "Live generator"). A live student must render exactly these codes, moved by a user's
head pose and expression, so its training set holds them: UTKFace photos (non-commercial research terms) inverted
with the app's own options, each driven along the shipped pose and expression directions by random amounts within
their calibrated ranges (what `engine.edits.reenact` does to a target at full strength).

The inverted targets are cached under runs/morph_targets/<split>.npz (names and W+), saved every few photos.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import atomic_path

RUN_DIR = Path("runs/morph_targets")
# the share of each direction's calibrated range (max_units) a driven code moves: (low, high) of a uniform draw
MOTION_RANGE = {"yaw": (-0.7, 0.7), "pitch": (-0.5, 0.5), "smile": (-0.3, 1.0), "jaw_open": (-0.2, 1.0),
                "eye_blink": (-0.2, 1.0), "brow_raise": (-0.5, 0.8)}


def invert_targets(split: str, count: int, threads: int = 2, folder: Path = RUN_DIR) -> dict[str, np.ndarray]:
    """{"names", "wplus" (N, 23, 512), "user" (N, 23, 512)}: the first `count` photos of a UTKFace split
    (training/data/utkface.py) inverted like the app's dropped photos (TargetCache's options), and each one's
    live-loop code (the one pass with its corrections and the skin match: the person as a user at strength 0);
    photos without a face are skipped (and remembered). Resumes from (and backfills the user codes of) an earlier run's file."""
    from engine.generator import Generator
    from engine.inversion.encoder import Encoder
    from engine.inversion.inverter import InversionOptions, Inverter
    from engine.inversion.refine import STEPS, Refiner
    from engine.inversion.skin_tone import SkinToneModel
    from engine.landmarks import FaceLandmarker
    from training.data.utkface import UTK_DIR, find_face, split_names

    if not UTK_DIR.is_dir():
        raise SystemExit(f"UTKFace photos not found at {UTK_DIR} (the real-face targets are made from them)")
    path = folder / f"{split}.npz"
    names, codes, users, faceless = [], [], [], []
    if path.is_file():
        with np.load(path, allow_pickle=False) as d:
            names, codes = list(d["names"]), list(d["wplus"])
            users = list(d["user"]) if "user" in d else []
            faceless = list(d["faceless"]) if "faceless" in d else []
    wanted = split_names(split)[:count]
    todo = [n for n in wanted if n not in set(names) | set(faceless)]
    if todo or len(users) < len(names):
        gen = Generator.load(threads)
        enc = Encoder.load(threads)
        inverter = Inverter(enc, gen, SkinToneModel.load(), Refiner.load(threads, full=gen) if todo else None)
        target_options, live_options = InversionOptions(quality_steps=STEPS), InversionOptions()

        def user_code(crop, face) -> np.ndarray:
            embedding = enc.face_embedding(crop, face) if enc.correction is not None else None
            return inverter.match_skin(inverter.one_pass(crop, face, live_options, embedding), crop, face,
                                       live_options)[0]

        def save() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, suffix=".npz") as tmp:
                np.savez(tmp, names=np.array(names), wplus=np.stack(codes).astype(np.float32),
                         user=np.stack(users).astype(np.float32), faceless=np.array(faceless, dtype=str))

        t0 = time.time()
        with FaceLandmarker(max_faces=4) as lm:
            from engine.align import align_face

            for name in names[len(users):]:  # an older file without the user codes
                bgr = cv2.imread(str(UTK_DIR / name), cv2.IMREAD_COLOR)
                face = find_face(lm, bgr)
                users.append(user_code(align_face(bgr, face, 256), face))
            for i, name in enumerate(todo):
                bgr = cv2.imread(str(UTK_DIR / name), cv2.IMREAD_COLOR)
                face = find_face(lm, bgr) if bgr is not None else None
                if face is None:
                    faceless.append(name)
                    continue
                inv = inverter.invert_photo(bgr, lm, target_options, face=face)
                names.append(name)
                codes.append(inv.wplus[0])
                users.append(user_code(inv.crop, face))
                if i % 10 == 9:
                    save()
                    print(f"{split}: {len(names)} targets ({time.time() - t0:.0f} s)", flush=True)
        save()
    keep = [i for i, n in enumerate(names) if n in set(wanted)]
    return {"names": np.array([names[i] for i in keep]), "wplus": np.stack([codes[i] for i in keep]),
            "user": np.stack([users[i] for i in keep])}


def group_size(per_target: int, with_users: bool) -> int:
    """Codes per photo in driven_codes."""
    return 1 + per_target + (2 if with_users else 0)


def driven_codes(targets: np.ndarray, per_target: int, seed: int, first: int = 0,
                 users: np.ndarray | None = None) -> np.ndarray:
    """(N * group_size, 23, 512), per photo: the target at rest, then `per_target` copies driven along the shipped
    directions by amounts drawn from MOTION_RANGE (shares of each direction's max_units); with `users` (the
    photos' live-loop codes) also the user as themself (strength 0) and a blend from the user toward the last
    driven copy (a strength drawn from 0.3..0.9). `first`: the index of targets[0] in its list (each photo's draw
    is seeded by its index, so a longer list keeps the earlier codes)."""
    from engine.edits import DirectionSet

    directions = DirectionSet.load()
    out = []
    for j, w in enumerate(targets):
        rng = np.random.default_rng([seed, first + j])
        out.append(w[None])
        for _ in range(per_target):
            amounts = {k: float(rng.uniform(lo, hi) * directions.directions[k].max_units)
                       for k, (lo, hi) in MOTION_RANGE.items()}
            out.append(directions.apply(w[None], **amounts))
        if users is not None:
            out.append(users[j][None])
            out.append(users[j][None] + rng.uniform(0.3, 0.9) * (out[-2] - users[j][None]))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 23, 512), np.float32)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("train", "heldout"), default="train")
    ap.add_argument("--count", type=int, default=200, help="photos from the split (a resumed run extends)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    out = invert_targets(args.split, args.count, args.threads)
    print(f"{len(out['names'])} {args.split} targets in {RUN_DIR / (args.split + '.npz')}")


if __name__ == "__main__":
    main()
