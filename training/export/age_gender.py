"""Ship the age and gender labeller: float16 weights in resources/models/age_gender_labeller.npz and its manifest
entry. The engine reads it to aim still edits (engine/attributes.py, engine.edits.aim_amounts).

    python -m training.export.age_gender [--labeller runs/age_gender/labeller.npz]
    python -m training.export.age_gender --check     # score the shipped copy on the held-out UTKFace photos

`--check` needs the held-out features (python -m training.data.utkface_labels --split heldout) and prints age MAE
and gender accuracy of the shipped float16 heads, which the manifest entry quotes. Trained on UTKFace:
non-commercial research use only (the entry says so).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.attributes import HEADS_PATH, AgeGenderHeads
from engine.models import sha256_file
from training.export.manifest import update_manifest
from training.models.age_gender import LABELLER_PATH, save_heads


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labeller", type=Path, default=LABELLER_PATH, help="training/train/age_gender.py's output")
    ap.add_argument("--out", type=Path, default=HEADS_PATH)
    ap.add_argument("--check", action="store_true", help="score the shipped heads on the held-out photos, write nothing")
    args = ap.parse_args(argv)
    if args.check:
        from training.data.utkface_labels import cache_path
        from training.train.age_gender import load, score

        held = cache_path("heldout", None)
        if not held.is_file():
            raise SystemExit(f"no held-out features at {held}: python -m training.data.utkface_labels --split heldout")
        x, age, gender = load(held)
        print(f"shipped {args.out.name} on the held-out UTKFace photos: {score(AgeGenderHeads.load(args.out), x, age, gender)}")
        return
    if not args.labeller.is_file():
        raise SystemExit(f"no labeller at {args.labeller}: python -m training.train.age_gender")
    heads = AgeGenderHeads.load(args.labeller)  # training's output, with its meta (save_heads)
    save_heads(heads, args.out, dtype=np.float16, features="the shipped recogniser's 1024-d embedding (face_id)",
               outputs=["age in years", "gender logit (P(female) = sigmoid)"],
               licence="trained on UTKFace: non-commercial research use only")
    update_manifest({"age_gender_labeller": {
        "file": args.out.name, "sha256": sha256_file(args.out), "bytes": args.out.stat().st_size,
        "source": "two-layer MLP (1024 -> 256 -> 2) on the shipped recogniser's embedding (face_id), trained on "
                  "5,207 UTKFace photos (held out: the 1,000 names with the lowest sha256); age MAE 6.04 years, "
                  "gender 91.0 % on the held-out photos (docs/EDITS.md); float16 weights",
        "licence": "ours; trained on UTKFace: non-commercial research use only",
        "data": "../shared/data/real-faces/utkface/ (UTKFace aligned crops)",
        "regenerate": "python -m training.data.utkface_labels --split heldout && python -m training.data.utkface_labels "
                      "--split train --limit 5250 && python -m training.train.age_gender && "
                      "python -m training.export.age_gender",
        "shipped": True}})
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) and its manifest entry")


if __name__ == "__main__":
    main()
