"""Arguments and steps shared by the commands that edit a photo's face (morph, edit)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from engine.commands.calibrate import load_calibration
from engine.inversion.encoder import Encoder
from engine.errors import BadInputError
from engine.generator import Generator
from engine.gif import write_gif
from engine.image_io import load_image, save_image
from engine.inversion.inverter import InversionOptions, Inverter
from engine.landmarks import FaceLandmarker
from engine.photo_edit import PhotoEditor
from engine.inversion.refine import STEPS, Refiner
from engine.inversion.skin_tone import SkinToneModel


def add_inversion_args(p: argparse.ArgumentParser) -> None:
    """--quality, --calibration, --no-landmark-correction, --no-identity-correction, --identity-passes,
    --no-skin-match, --skin-passes: how a still photo's face is inverted (photo_inversion)."""
    p.add_argument("--quality", type=int, nargs="?", const=STEPS, default=0, metavar="STEPS",
                   help=f"refine the one pass by latent optimisation (engine/inversion/refine.py; {STEPS} steps unless given, "
                        "a few seconds): closer to the photo, same person more often")
    p.add_argument("--calibration", type=Path, metavar="FILE",
                   help="the person's calibration from `celeblook calibrate` (other photos or a video of them), "
                        "added to the one pass: closer to them without the quality mode's seconds")
    p.add_argument("--no-landmark-correction", action="store_true",
                   help="the encoder network alone (default: add its landmark and identity corrections)")
    p.add_argument("--no-identity-correction", action="store_true",
                   help="leave out the identity correction (a face recogniser's embedding; default: add it)")
    p.add_argument("--identity-passes", type=int, default=1, choices=range(0, 4), metavar="{0..3}",
                   help="closed-loop passes of the identity feedback: the recogniser compares the reconstruction with "
                        "the photo and the W+ moves by the difference, one render each (default 1; 0: off; not "
                        "with --quality or --calibration)")
    p.add_argument("--no-skin-match", action="store_true",
                   help="keep the encoder's skin colour (default: match the photo's, engine/inversion/skin_tone.py)")
    p.add_argument("--skin-passes", type=int, default=1, choices=range(0, 4), metavar="{0..3}",
                   help="closed-loop skin passes after the predicted match, one render each (default 1)")


def photo_encoder(args: argparse.Namespace) -> Encoder:
    """The inversion encoder with the corrections the flags of add_inversion_args leave on."""
    return Encoder.load(args.threads, args.encoder, landmark_correction=not args.no_landmark_correction,
                        identity_correction=not args.no_identity_correction)


def quality_refiner(args: argparse.Namespace, generator: Generator | None = None) -> Refiner | None:
    """The quality mode's objective when --quality asks for steps (else None); shares `generator` if 1024 px."""
    if args.quality < 0:
        raise BadInputError(f"--quality takes a number of steps >= 0, got {args.quality}")
    return Refiner.load(args.threads, full=generator) if args.quality > 0 else None


def add_photo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("photo", type=Path, help="photo with a face")
    p.add_argument("--out", type=Path, required=True, help="output image (.png/.jpg): the photo, face replaced")
    p.add_argument("--gif", type=Path, help="also write a sweep GIF from no edit to the full edit")
    p.add_argument("--frames", type=int, default=12, help="frames in the sweep GIF (default 12)")
    p.add_argument("--crop", action="store_true", help="write the aligned face crop instead of the whole photo")
    p.add_argument("--model", type=Path, help="face_landmarker.task (default: resolved as usual)")
    p.add_argument("--encoder", type=Path, help="inversion encoder ONNX (default: the shipped one)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: default)")
    add_inversion_args(p)


def photo_inversion(args: argparse.Namespace, encoder: Encoder,
                    generator: Generator) -> tuple[Inverter, InversionOptions]:
    """The Inverter and the options the flags of add_inversion_args ask for (the skin model and the quality mode's
    objective loaded when asked for; --calibration checked against the encoder)."""
    skin_tone = None if args.no_skin_match else SkinToneModel.load()
    options = InversionOptions(identity_passes=args.identity_passes, match_skin=not args.no_skin_match,
                               skin_passes=args.skin_passes, quality_steps=args.quality,
                               calibration=load_calibration(args.calibration, encoder))
    return Inverter(encoder, generator, skin_tone, quality_refiner(args, generator)), options


def open_photo(args: argparse.Namespace, landmarker: FaceLandmarker, encoder: Encoder,
               generator: Generator) -> PhotoEditor:
    """Load --photo and invert its largest face as the flags ask (photo_inversion)."""
    inverter, options = photo_inversion(args, encoder, generator)
    return PhotoEditor.open(load_image(args.photo), landmarker, inverter, options, source=str(args.photo))


def write_outputs(args: argparse.Namespace, editor: PhotoEditor, edit: Callable[[float], np.ndarray],
                  colours: Callable[[float], float] | None = None) -> None:
    """Write edit(1.0) to --out and, with --gif, the sweep edit(0) -> edit(1) as a boomerang GIF; `colours(t)`: how
    far the face pasted at t takes the photo's colours (PhotoEditor.render; None: all the way)."""
    if args.gif and not 2 <= args.frames <= 100:
        raise BadInputError(f"--frames must be in 2..100 for a sweep GIF, got {args.frames}")
    save_image(args.out, editor.render(edit(1.0), not args.crop, None if colours is None else colours(1.0)))
    print(f"wrote {args.out}")
    if args.gif:
        frames = editor.sweep(edit, np.linspace(0.0, 1.0, max(2, args.frames)), not args.crop, colours)
        write_gif(args.gif, [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames], fps=10, boomerang=True)
        print(f"wrote {args.gif} ({len(frames)} frames)")
