"""`celeblook text PHOTO "man with glasses" [--strength C | --auto] --out out.png [--gif sweep.gif]`.

PHOTO "-" (or --from-average) starts from the average face: text -> face. The edit is W+' = W+ + C ΔW+ with
ΔW+ = f(t_prompt) - f(t_source) (engine/text_edit.py); C is --strength (default 0.5) or, with --auto, the
learned strength predictor's. The GIF sweeps C from 0 to --sweep-max (0.8, as the seed's GIFs). The CLIP models
are not shipped (they need real CLIP weights): without them the command says which file is missing and how to
build it (docs/TEXT.md).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from engine.commands.photo_args import add_photo_args, open_photo, photo_encoder
from engine.errors import BadInputError
from engine.generator import Generator
from engine.gif import write_gif
from engine.image_io import save_image
from engine.landmarks import FaceLandmarker
from engine.text_edit import SWEEP, TextEditor


def run(args: argparse.Namespace) -> int:
    from_average = args.from_average or str(args.photo) == "-"
    if args.strength is not None and not 0.0 <= args.strength <= 2.0:
        raise BadInputError(f"--strength must be in [0, 2], got {args.strength}")
    if not 0.0 < args.sweep_max <= 2.0:
        raise BadInputError(f"--sweep-max must be in (0, 2], got {args.sweep_max}")
    # the CLIP models first: a missing one fails before any slow step
    text = TextEditor.load(args.threads, args.clip_models, auto=args.auto, source=args.source)
    delta = text.delta(args.prompt)
    generator = Generator.load(args.threads)
    paste = not args.crop
    if from_average:
        wplus = generator.w_avg[None]
        size = args.size

        def render(w: np.ndarray) -> np.ndarray:
            rgb = cv2.resize(generator.render(w), (size, size), interpolation=cv2.INTER_AREA)
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)

        crop = render(wplus) if args.auto else None
    else:
        encoder = photo_encoder(args)
        with FaceLandmarker(args.model) as landmarker:
            editor = open_photo(args, landmarker, encoder, generator)
        wplus, crop = editor.wplus, editor.inversion.crop.image
        render = lambda w: editor.render(w, paste)  # noqa: E731
    if args.auto:
        c = text.auto_strength(wplus, crop, args.prompt)
        how = "predicted"
    else:
        c = 0.5 if args.strength is None else args.strength
        how = "given"
    save_image(args.out, render(text.apply(wplus, delta, c)))
    print(f"wrote {args.out} (C = {c:.3f}, {how})")
    if args.gif:
        values = np.linspace(SWEEP[0], args.sweep_max, max(2, args.frames))
        frames = [render(text.apply(wplus, delta, v)) for v in values]
        write_gif(args.gif, [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames], fps=10, boomerang=True)
        print(f"wrote {args.gif} ({len(frames)} frames, C {SWEEP[0]} -> {args.sweep_max})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("text", help="edit the face in a photo (or the average face) toward a text prompt")
    add_photo_args(p)
    p.add_argument("prompt", help='what the face should become, e.g. "man with glasses"')
    p.add_argument("--source", default="face", help='neutral prompt the edit starts from (default "face")')
    how = p.add_mutually_exclusive_group()
    how.add_argument("--strength", type=float, help="edit strength C (default 0.5; the seed used 0..0.8)")
    how.add_argument("--auto", action="store_true", help="C from the learned strength predictor")
    p.add_argument("--from-average", action="store_true", help="start from the average face (same as PHOTO -)")
    p.add_argument("--size", type=int, default=512, help="output size when starting from the average face")
    p.add_argument("--sweep-max", type=float, default=SWEEP[1], help="the GIF sweeps C from 0 to this (0.8)")
    p.add_argument("--clip-models", type=Path, help="folder with the exported CLIP models (default: resolved "
                                                    "as usual: resources/models, the user cache, ...)")
    p.set_defaults(func=run)
