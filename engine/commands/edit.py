"""`celeblook edit PHOTO --yaw 20 --pitch -10 --smile 0.6 --out out.png [--gif sweep.gif]`."""
from __future__ import annotations

import argparse

from engine.commands.photo_args import add_photo_args, open_photo, write_outputs, photo_encoder
from engine.edits import DirectionSet
from engine.errors import BadInputError
from engine.generator import Generator
from engine.landmarks import FaceLandmarker

# CLI flag -> (direction name, help)
EDIT_FLAGS = {
    "yaw": "turn the head, degrees (+: toward the image's right)",
    "pitch": "tilt the head, degrees (+: look up)",
    "smile": "change of smile blendshape score (-1..1)",
    "jaw_open": "change of jaw-open blendshape score",
    "eye_blink": "change of eye-blink blendshape score",
    "brow_raise": "change of brow-raise blendshape score",
}


def run(args: argparse.Namespace) -> int:
    amounts = {name: getattr(args, name) for name in EDIT_FLAGS if getattr(args, name)}
    if not amounts:
        raise BadInputError("nothing to do: give at least one of " + ", ".join(f"--{n.replace('_', '-')}" for n in EDIT_FLAGS))
    directions = DirectionSet.load()
    for name, amount in amounts.items():
        limit = directions.directions[name].max_units * 1.5
        if abs(amount) > limit:
            raise BadInputError(f"--{name.replace('_', '-')} {amount} is beyond what the direction was "
                                f"calibrated for (|value| <= {limit:.2f} {directions.directions[name].unit})")
    generator = Generator.load(args.threads)
    encoder = photo_encoder(args)
    with FaceLandmarker(args.model) as landmarker:
        editor = open_photo(args, landmarker, encoder, generator)
    write_outputs(args, editor, lambda t: directions.apply(editor.wplus, **{k: t * v for k, v in amounts.items()}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("edit", help="turn the head or change the expression of the face in a photo")
    add_photo_args(p)
    for name, text in EDIT_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=0.0, help=text)
    p.set_defaults(func=run)
