"""`celeblook morph PHOTO --to TARGET --strength 0.8 --out out.png [--gif sweep.gif]`."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from engine.commands.photo_args import add_photo_args, open_photo, write_outputs, photo_encoder
from engine.edits import MORPH_MODES, DirectionSet, morph, reenact
from engine.errors import BadInputError
from engine.generator import Generator
from engine.landmarks import FaceLandmarker
from engine.inversion.inverter import InversionOptions
from engine.inversion.refine import STEPS
from engine.inversion.skin_tone import within_skin_range
from engine.inversion.targets import TargetCache


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.strength <= 1.0:
        raise BadInputError(f"--strength must be in [0, 1], got {args.strength}")
    if args.target_quality < 0:
        raise BadInputError(f"--target-quality takes a number of steps >= 0, got {args.target_quality}")
    generator = Generator.load(args.threads)
    encoder = photo_encoder(args)
    with FaceLandmarker(args.model) as landmarker:
        target = TargetCache(encoder, generator, landmarker, encoder.one_pass_id,
                             options=InversionOptions(quality_steps=args.target_quality)).load(args.to)
        editor = open_photo(args, landmarker, encoder, generator)
    editor.paste_options = replace(editor.paste_options, colours=within_skin_range(target.skin))  # the photo's
    lock = None if args.no_pose_lock else DirectionSet.load()
    colours = lambda t: 1.0 - t * args.strength  # noqa: E731  the share of the photo's own colours
    if args.preset == "reenact":  # a photo has no motion to average: its pose and expression go by the directions
        lock = lock or DirectionSet.load()
        write_outputs(args, editor, lambda t: reenact(editor.wplus, target.wplus, t * args.strength, directions=lock),
                      colours)
    else:
        write_outputs(args, editor, lambda t: morph(editor.wplus, target.wplus, t * args.strength, args.preset, lock),
                      colours)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("morph", help="morph the face in a photo toward a target photo's face")
    add_photo_args(p)
    p.add_argument("--to", type=Path, required=True, help="target photo (a celebrity, a friend)")
    p.add_argument("--strength", type=float, default=1.0, help="how far toward the target, 0..1 (default 1)")
    p.add_argument("--preset", choices=MORPH_MODES, default="reenact",
                   help="reenact (default): the target's face with your pose and expression; the others mix the two "
                        "faces per slot (identity keeps your face shape, pose and expression)")
    p.add_argument("--target-quality", type=int, default=STEPS, metavar="STEPS",
                   help=f"quality-mode steps for the target photo, once per photo and cached (default {STEPS}; 0: off)")
    p.add_argument("--no-pose-lock", action="store_true",
                   help="with a per-slot preset, let the target's head pose through (default: keep yours along the "
                        "yaw/pitch directions; reenact always keeps your pose)")
    p.set_defaults(func=run)
