"""`celeblook generate`: render a random face from a seed, or a saved latent, to an image file."""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from engine.errors import BadInputError
from engine.generator import Generator
from engine.image_io import save_image
from engine.latents import load_latent, save_latent


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.size <= 4096:
        raise BadInputError(f"--size must be between 1 and 4096 px (0: the generator's 1024), got {args.size}")
    gen = Generator.load(threads=args.threads)
    if args.latent:
        latent = load_latent(args.latent)
    else:
        latent = gen.sample_w(args.seed, args.psi)
    rgb = gen.render(latent)
    if args.size and args.size != rgb.shape[0]:
        rgb = cv2.resize(rgb, (args.size, args.size), interpolation=cv2.INTER_AREA)
    save_image(args.out, rgb, order="rgb")
    if args.save_latent:
        save_latent(args.save_latent, latent)
    print(f"wrote {args.out} ({rgb.shape[1]}x{rgb.shape[0]})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="render a face from a seed or a saved latent (W or W+ .npy)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--seed", type=int, default=0, help="random seed for z (default 0)")
    src.add_argument("--latent", type=Path, help="a .npy W (512,)/(1,512) or W+ (23,512)/(1,23,512)")
    p.add_argument("--psi", type=float, default=0.7, help="truncation: w_avg + psi (w - w_avg) (default 0.7)")
    p.add_argument("--out", type=Path, required=True, help="output image (.png or .jpg)")
    p.add_argument("--size", type=int, default=0, help="resize the 1024-px output to this size")
    p.add_argument("--save-latent", type=Path, help="also save the W used as .npy")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: default)")
    p.set_defaults(func=run)
