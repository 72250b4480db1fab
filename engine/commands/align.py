"""`celeblook align PHOTO --out crop.png`: the FFHQ-style aligned crop of the largest face (or of all faces)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.align import CROP_SIZES, align_face, face_warnings, require_usable_faces
from engine.image_io import load_image, save_image
from engine.landmarks import FaceLandmarker

MAX_FACES = 8


def numbered(path: Path, i: int) -> Path:
    """crop.png -> crop_0.png, crop_1.png, ..."""
    return path.with_name(f"{path.stem}_{i}{path.suffix}")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    image = load_image(args.photo)
    with FaceLandmarker(args.model, max_faces=MAX_FACES if args.all else 4) as landmarker:
        faces = require_usable_faces(landmarker.detect(image), str(args.photo))
    chosen = faces if args.all else faces[:1]
    for i, face in enumerate(chosen):
        target = numbered(out, i) if args.all else out
        crop = align_face(image, face, args.size)
        save_image(target, crop.image)
        x0, y0, x1, y1 = face.bbox
        print(f"{target}: face {i + 1} of {len(faces)} (box {x1 - x0:.0f}x{y1 - y0:.0f} px at "
              f"{x0:.0f},{y0:.0f}) -> {args.size} px")
        for warning in face_warnings(face, crop):
            print(f"celeblook align: warning: face {i + 1}: {warning}", file=sys.stderr)
    if len(faces) > 1 and not args.all:
        print(f"celeblook align: note: {len(faces)} faces found, wrote the largest (use --all for every face)",
              file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("align", help="FFHQ-style aligned face crop of a photo",
                              description=__doc__.splitlines()[0])
    p.add_argument("photo", help="input photo (JPEG, PNG, ...; EXIF rotation, alpha, gray and 16-bit are handled)")
    p.add_argument("--out", required=True, help="output image (.png, .jpg); with --all, numbered NAME_0, NAME_1, ...")
    p.add_argument("--size", type=int, default=256, choices=CROP_SIZES, help="crop side in px (default 256)")
    p.add_argument("--all", action="store_true", help="write a crop for every face, largest first")
    p.add_argument("--model", help="face_landmarker.task to use (default: $CELEBLOOK_FACE_LANDMARKER, user cache)")
    p.set_defaults(func=run)
