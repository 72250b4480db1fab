"""Quality mode for stills: refine an inversion by latent optimisation with the torch generator (needs `train`).

    python -m training.fit.refine_inversion photo.jpg --out recon.png [--steps 20] [--latent me.npy]
        [--side-by-side | --paste]

The one-pass encoder's W+ (engine.inversion.encoder.invert_photo) is the start; Adam then moves the whole W+ so that the
render through the distilled 256-px preview head, colour-anchored to the full generator every few steps, matches
the aligned 256-px crop (L1 + 1 - MS-SSIM) and the face recogniser sees the same person (`--id-weight`, the
engine's identity term; training/models/face_id.py); the result is rendered at 1024 px by the engine's generator,
re-aligned like `celeblook invert`'s output, after `--skin-passes` closed-loop skin-colour passes
(engine.inversion.encoder.render_closed_loop). Measured (docs/BENCHMARKS.md, "Inversion encoder", from the network's W+,
first 6 of each set): 20 steps take the mean dlib identity distance on the dev photos from 0.67 to 0.39 (all 6
under dlib's 0.6) and on video frames from 0.67 to 0.42.
Lives in training/ because it needs torch; the engine has none.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from engine.latents import to_wplus
# the recipe's constants live with its engine version (engine/inversion/refine.py), so the two cannot drift apart
from engine.inversion.refine import ANCHOR_CELL, ANCHOR_EVERY as REFINE_ANCHOR_EVERY, ID_WEIGHT, LR as REFINE_LR, SIZE, IdentityTerm


def optimise_latent(model, target_bgr: np.ndarray, steps: int, lr: float = 0.03, threads: int = 2,
                    init: np.ndarray | None = None, out_block: int | None = None, anchor_every: int = 0,
                    face_id=None, points: np.ndarray | None = None, id_weight: float = ID_WEIGHT) -> np.ndarray:
    """Latent optimisation so that G at 256 px matches the aligned crop (L1 + 1 - MS-SSIM, Adam). From w_avg
    (`init` None, the baseline): one W shared by every slot. From an encoder's W+ (`init` (1, 23, 512), the
    refinement): the whole W+. `out_block` 4: render through the distilled 256-px preview head (~4x cheaper per
    step on a CPU; the result is still shown at 1024 px). Returns W+ (1, 23, 512).

    `anchor_every` k > 0 (with `out_block`): every k steps the full generator renders the current W+ (no
    gradient) and the low-pass of (full - preview), in ANCHOR_CELL-px cells, is added to the preview from then
    on. Without it the optimisation drifts to codes where the preview head, distilled on ordinary codes, is
    darker than the full render: the preview matches the photo and the shown 1024-px face comes out lighter
    (docs/ENCODER.md, quality mode).

    `face_id` (training.models.face_id.FaceIdNet) and `points` (the face's landmarks in the crop, crop units): the
    identity term of the engine's quality mode, weight `id_weight`."""
    import torch
    import torch.nn.functional as F

    from training.models.encoder import image_losses

    torch.set_num_threads(threads)
    target = torch.from_numpy(cv2.cvtColor(target_bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)[None].float() / 127.5 - 1
    warp = None
    if face_id is not None and points is not None and id_weight > 0:
        from training.models.face_id import identity_loss

        term = IdentityTerm.for_face(points, id_weight)  # the engine's warp, so the two versions read the same crop
        warp = [torch.from_numpy(term.rows), torch.from_numpy(term.cols)]
    if init is None:
        w = model.w_avg.detach().clone()[None].requires_grad_(True)
        wplus = lambda: w.unsqueeze(1).expand(-1, 23, -1)  # noqa: E731
    else:
        w = torch.from_numpy(to_wplus(init).copy()).requires_grad_(True)
        wplus = lambda: w  # noqa: E731
    opt = torch.optim.Adam([w], lr=lr)
    correction = 0.0
    for step in range(steps):
        img = F.interpolate(model.synthesis(wplus(), out_block), size=(SIZE, SIZE), mode="area")
        if out_block is not None and anchor_every > 0 and step % anchor_every == 0:
            with torch.no_grad():
                full = F.interpolate(model.synthesis(wplus()), size=(SIZE, SIZE), mode="area")
                correction = F.interpolate(F.avg_pool2d(full - img, ANCHOR_CELL), size=(SIZE, SIZE),
                                           mode="bilinear", align_corners=False)
        img = img + correction
        parts = image_losses(img, target)
        loss = parts["l1"] + parts["msssim"]
        if warp is not None:
            loss = loss + id_weight * identity_loss(face_id, img, target, *warp)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return to_wplus(wplus().detach().numpy())


def load_refiner(threads: int = 2):
    """The frozen torch generator with its preview heads (official weights; downloaded once, sha-pinned)."""
    import torch

    from training.convert.generator import load_weights
    from training.train.preview_heads import load_preview_heads

    torch.set_num_threads(threads)
    return load_preview_heads(load_weights()).requires_grad_(False)


def main(argv: list[str] | None = None) -> int:
    from engine.align import crop_points, face_warnings
    from engine.inversion.encoder import ClosedLoop, Encoder, render_closed_loop
    from engine.inversion.inverter import invert_photo
    from engine.errors import CelebLookError
    from engine.generator import Generator
    from engine.image_io import load_image, save_image
    from engine.landmarks import FaceLandmarker
    from engine.latents import save_latent
    from engine.paste import paste_back
    from engine.inversion.skin_tone import SkinToneModel, face_oval_mask, skin_lab
    from training.models.face_id import FaceIdNet

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo")
    ap.add_argument("--out", type=Path, required=True, help="output image (.png, .jpg)")
    ap.add_argument("--latent", type=Path, help="also save the refined W+ (1, 23, 512) as .npy")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--side-by-side", action="store_true", help="aligned input | one pass | refined")
    mode.add_argument("--paste", action="store_true", help="paste the refined reconstruction back into the photo")
    ap.add_argument("--steps", type=int, default=20, help="Adam steps (default 20, a few seconds)")
    ap.add_argument("--lr", type=float, default=REFINE_LR)
    ap.add_argument("--anchor-every", type=int, default=REFINE_ANCHOR_EVERY,
                    help=f"full-generator colour anchor every N steps (default {REFINE_ANCHOR_EVERY}; 0: off, faster, "
                         "lighter faces)")
    ap.add_argument("--skin-passes", type=int, default=1,
                    help="closed-loop passes matching the rendered skin's CIELAB to the photo's (default 1; 0: off)")
    ap.add_argument("--id-weight", type=float, default=ID_WEIGHT,
                    help=f"weight of the recogniser's identity term (default {ID_WEIGHT}; 0: pixels only)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", help="face_landmarker.task (default: $CELEBLOOK_FACE_LANDMARKER, user cache)")
    args = ap.parse_args(argv)
    try:
        image = load_image(args.photo)
        encoder, generator = Encoder.load(args.threads), Generator.load(args.threads)
        with FaceLandmarker(args.model) as landmarker:
            inv = invert_photo(image, landmarker, encoder, generator, SIZE, source=str(args.photo))
            t0 = time.perf_counter()
            wplus = optimise_latent(load_refiner(args.threads), inv.crop.image, args.steps, args.lr, args.threads,
                                    init=inv.wplus, out_block=4, anchor_every=args.anchor_every,
                                    face_id=FaceIdNet() if args.id_weight > 0 else None,
                                    points=crop_points(inv.face, inv.crop),
                                    id_weight=args.id_weight)
            seconds = time.perf_counter() - t0
            skin_tone = SkinToneModel.load() if args.skin_passes > 0 else None
            mask = face_oval_mask(inv.face, inv.crop)
            loop = ClosedLoop(skin_tone, skin_lab(inv.crop.image, mask), mask, args.skin_passes)
            wplus, _, recon, _ = render_closed_loop(generator, landmarker, wplus, SIZE, loop)
        if args.paste:
            out = paste_back(image, recon, inv.crop, inv.face)
        elif args.side_by_side:
            out = np.concatenate([inv.crop.image, inv.reconstruction, recon], axis=1)
        else:
            out = recon
        save_image(args.out, out)
        if args.latent:
            save_latent(args.latent, wplus)
    except CelebLookError as exc:
        print(f"refine_inversion: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}" + (f" and {args.latent}" if args.latent else "") +
          f" ({args.steps} refinement steps in {seconds:.1f} s)")
    for warning in face_warnings(inv.face, inv.crop):
        print(f"refine_inversion: warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
