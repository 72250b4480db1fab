"""`celeblook edit PHOTO --yaw 20 --pitch -10 --smile 0.6 --age 20 --gender 1 --out out.png [--gif sweep.gif]`."""
from __future__ import annotations

import argparse
import sys

from engine.commands.photo_args import add_photo_args, open_photo, write_outputs, photo_encoder
from engine.edits import AIM_TOLERANCE, DirectionSet, aim_amounts
from engine.errors import BadInputError
from engine.generator import Generator
from engine.landmarks import FaceLandmarker
from engine.paste import PasteOptions

# Head turns paste the photo's face oval and the turned render's own, both grown by this: with the photo's outline
# alone a 20-degree turn shows as 10-12 degrees on the photo, and a blanket 1.3x oval left the old cheek showing
# through beside the turned one (docs/EDITS.md, training/evaluate/age_gender_edits.py)
POSE_PASTE_GROW = 1.1
# CLI flag -> (direction name, help)
EDIT_FLAGS = {
    "yaw": "turn the head, degrees (+: toward the image's right)",
    "pitch": "tilt the head, degrees (+: look up)",
    "smile": "change of smile blendshape score (-1..1)",
    "jaw_open": "change of jaw-open blendshape score",
    "eye_blink": "change of eye-blink blendshape score",
    "brow_raise": "change of brow-raise blendshape score",
    "age": "change of apparent age, years (+: older, -: younger)",
    "gender": "change of P(female) on a 0..1 scale (+1: a male face made female, -1: a female face made male)",
}


def run(args: argparse.Namespace) -> int:
    amounts = {name: getattr(args, name) for name in EDIT_FLAGS if getattr(args, name)}
    if not amounts:
        raise BadInputError("nothing to do: give at least one of " + ", ".join(f"--{n.replace('_', '-')}" for n in EDIT_FLAGS))
    directions = DirectionSet.load()
    for name, amount in amounts.items():
        if name not in directions.directions:
            raise BadInputError(f"--{name.replace('_', '-')}: the shipped directions have no {name} direction "
                                f"(regenerate: python -m training.fit.age_gender)")
        limit = directions.directions[name].max_units * 1.5
        if abs(amount) > limit:
            raise BadInputError(f"--{name.replace('_', '-')} {amount} is beyond what the direction was "
                                f"calibrated for (|value| <= {limit:.2f} {directions.directions[name].unit})")
    generator = Generator.load(args.threads)
    encoder = photo_encoder(args)
    with FaceLandmarker(args.model, pose=True) as landmarker:
        editor = open_photo(args, landmarker, encoder, generator)
        if args.aim and any(k in AIM_TOLERANCE for k in amounts):
            amounts = aimed(args, amounts, directions, editor, landmarker)
        if amounts.get("yaw") or amounts.get("pitch"):  # the turned head's outline must replace the photo's
            editor.paste_options, editor.outline = PasteOptions(grow=POSE_PASTE_GROW), landmarker
        write_outputs(args, editor, lambda t: directions.apply(editor.wplus, **{k: t * v for k, v in amounts.items()}))
    return 0


def aimed(args: argparse.Namespace, amounts: dict[str, float], directions: DirectionSet, editor,
          landmarker) -> dict[str, float]:
    """The amounts re-aimed on this face's own renders (engine.edits.aim_amounts): yaw and pitch as MediaPipe
    reads them, age as the shipped labeller does, never at the cost of the person (the recogniser's guard); says
    what it did on stderr."""
    from engine.attributes import AgeGenderHeads, FaceReader
    from engine.face_id import FaceId

    heads = AgeGenderHeads.load() if "age" in amounts else None
    reader = FaceReader(landmarker, FaceId.load(args.threads), heads)  # the recogniser guards the person
    aim = aim_amounts(directions, editor.wplus, amounts, lambda w: reader.read(editor.face_crop(w)))
    if aim.achieved is None:
        print("edit: could not measure the face's render; the edit is applied as calibrated", file=sys.stderr)
    else:
        said = ", ".join(f"{k} {amounts[k]:+g} -> {aim.achieved[k]:+.1f} (step {aim.amounts[k]:+.1f})"
                         for k in aim.achieved)
        short = [k for k in aim.achieved if abs(aim.achieved[k] - amounts[k]) > AIM_TOLERANCE[k]]
        note = f"; this face answers {', '.join(short)} less than asked without becoming someone else" if short else ""
        print(f"edit: aimed on {aim.renders} render(s) of this face: {said}{note}", file=sys.stderr)
    return aim.amounts


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("edit", help="turn the head, change the expression, age or gender of the face in a photo")
    add_photo_args(p)
    for name, text in EDIT_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=0.0, help=text)
    p.add_argument("--no-aim", dest="aim", action="store_false",
                   help="apply yaw, pitch and age as calibrated on average (default: measure this face's renders "
                        "and re-aim, a few renders more)")
    p.set_defaults(func=run)
