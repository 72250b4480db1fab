"""`celeblook invert PHOTO --out recon.png`: invert the photo's largest face into W+ and render it back.

The reconstruction has the framing of `celeblook align`'s crop; --side-by-side writes aligned input |
reconstruction, --paste puts the reconstruction back into the photo instead, --latent saves the W+ (1, 23, 512).
The encoder's W+ gets the landmark correction (engine/inversion/corrections/landmark.py; --no-landmark-correction for the
network alone; --no-identity-correction leaves out the face recogniser's correction), then --identity-passes
closed-loop passes of the identity feedback (engine/inversion/corrections/feedback.py); --calibration adds the person's calibration (`celeblook calibrate`); --quality refines it by latent optimisation over onnxruntime (engine/inversion/refine.py, a few seconds).
The skin's colour is matched to the photo's (engine/inversion/skin_tone.py: chroma by the linear model, then
--skin-passes closed-loop passes on the rendered skin's CIELAB, one render each) unless --no-skin-match.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from engine.align import CROP_SIZES, face_warnings
from engine.commands.photo_args import add_inversion_args, photo_encoder, photo_inversion
from engine.generator import Generator
from engine.image_io import load_image, save_image
from engine.landmarks import FaceLandmarker
from engine.latents import save_latent
from engine.paste import paste_back


def run(args: argparse.Namespace) -> int:
    image = load_image(args.photo)
    encoder = photo_encoder(args)
    generator = Generator.load(args.threads)
    inverter, options = photo_inversion(args, encoder, generator)
    t0 = time.perf_counter()
    with FaceLandmarker(args.model) as landmarker:
        inv = inverter.invert_photo(image, landmarker, options, args.size, source=str(args.photo))
    ms = (time.perf_counter() - t0) * 1000
    if args.paste:
        out = paste_back(image, inv.reconstruction, inv.crop, inv.face)
    elif args.side_by_side:
        out = np.concatenate([inv.crop.image, inv.reconstruction], axis=1)
    else:
        out = inv.reconstruction
    save_image(args.out, out)
    if args.latent:
        save_latent(args.latent, inv.wplus)
    renders = 1 + max(options.skin_passes if inverter.skin_tone is not None else 0, inverter.feedback_passes(options))
    quality = f"{args.quality} quality steps, " if args.quality else ""
    print(f"wrote {args.out}" + (f" and {args.latent}" if args.latent else "") + f" ({ms:.0f} ms: landmarks, "
          f"encoder, {quality}{renders} x (1024-px render, re-alignment))")
    for warning in face_warnings(inv.face, inv.crop) + inv.warnings:
        print(f"celeblook invert: warning: {warning}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invert", help="invert a photo's face into W+ and render the reconstruction",
                       description=__doc__.splitlines()[0])
    p.add_argument("photo", help="input photo (JPEG, PNG, ...)")
    p.add_argument("--out", type=Path, required=True, help="output image (.png, .jpg)")
    p.add_argument("--latent", type=Path, help="also save the W+ (1, 23, 512) as .npy")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--side-by-side", action="store_true", help="write aligned input | reconstruction")
    mode.add_argument("--paste", action="store_true", help="paste the reconstruction back into the photo")
    add_inversion_args(p)
    p.add_argument("--size", type=int, default=256, choices=CROP_SIZES, help="crop/reconstruction side (default 256)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: default)")
    p.add_argument("--encoder", help="inversion_encoder.onnx to use (default: the shipped one)")
    p.add_argument("--model", help="face_landmarker.task to use (default: $CELEBLOOK_FACE_LANDMARKER, user cache)")
    p.set_defaults(func=run)
