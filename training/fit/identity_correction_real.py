"""Add a real-photo term to the identity correction: what the engine's one pass still misses on real photos.

    python -m training.data.morph_targets --split train --count 720     # the quality mode's codes (~10 s a photo)
    python -m training.data.morph_targets --split heldout --count 16
    python -m training.fit.identity_correction_real   # ~1 min -> resources/models/identity_correction.npz
    python -m training.fit.identity_feedback           # then the feedback, fitted for the one pass this makes

Why: the identity correction fitted on generated faces (training/fit/identity_correction.py,
identity_correction_generated.npz) learns generated faces' one-pass errors, not a real photo's. The quality mode's
code of a real photo (training/data/morph_targets.py: 20 steps of latent optimisation with the recogniser, what a
dropped photo becomes) is the same person by dlib on all 16 held-out photos it was made for (docs/ENCODER.md), so the
gap between it and the one pass is what the one pass misses on real faces. Per training photo: the feature is the
recogniser's embedding of the aligned crop (the identity correction's own feature); the target is quality code −
the one pass with the generated fit (the encoder, the landmark correction and that base) on the base's slots, in
w_std units. A reduced-rank ridge regression (lambda picked on the last `--val` photos) is added to the base as
extra columns of one linear map, so the engine applies one correction as before. The photos are UTKFace's
(non-commercial research use only): the written file and its manifest entry say so. Photos are aligned the way
morph_targets aligned them (training.data.utkface.find_face).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from engine.inversion.corrections.identity import IDENTITY_CORRECTION_PATH, IdentityCorrection
from engine.models import sha256_file
from training.export.manifest import update_manifest
from training.fit.corrections import save_correction
from training.fit.identity_correction import GENERATED_PATH
from training.fit.ridge import fit_reduced_ridge

UTKFACE_TERMS = "UTKFace photos: non-commercial research use only"


def real_features(codes: Path, base: IdentityCorrection, threads: int = 2) -> dict[str, np.ndarray]:
    """{"x": embeddings (N, F), "one_pass": the one pass with the `base` identity correction (N, 23, 512), "code":
    quality-mode W+ (N, 23, 512)} of the photos in a training.data.morph_targets file."""
    from engine.align import align_face
    from engine.inversion.encoder import Encoder
    from engine.landmarks import FaceLandmarker
    from training.data.utkface import UTK_DIR, find_face

    if not Path(codes).is_file():
        raise SystemExit(f"no quality-mode codes at {codes}: make them with python -m training.data.morph_targets "
                         "(--split train, and --split heldout for the held-out check)")
    enc = Encoder.load(threads, identity_feedback=False).with_identity(base, threads)
    with np.load(codes, allow_pickle=False) as d:
        names, wplus = list(d["names"]), d["wplus"]
    xs, passes, keep = [], [], []
    with FaceLandmarker(max_faces=4) as lm:
        for i, name in enumerate(names):
            bgr = cv2.imread(str(UTK_DIR / str(name)), cv2.IMREAD_COLOR)
            face = find_face(lm, bgr) if bgr is not None else None
            if face is None:
                continue
            crop = align_face(bgr, face, 256)
            x = enc.face_embedding(crop, face)
            xs.append(x.reshape(-1))
            passes.append(enc.invert_face(crop, face, x)[0])
            keep.append(i)
    return {"x": np.stack(xs), "one_pass": np.stack(passes), "code": wplus[keep]}


def residual(feats: dict, base: IdentityCorrection) -> np.ndarray:
    """(N, S * 512): quality code − one pass on the correction's slots, in w_std units."""
    gap = (feats["code"] - feats["one_pass"])[:, base.slots] / base.w_std
    return gap.reshape(len(gap), -1).astype(np.float32)


def with_term(base: IdentityCorrection, term: dict) -> dict:
    """The arrays of one linear correction whose change is base's plus `term`'s (x_mean, proj, coef, bias of a
    fit_reduced_ridge on the same feature): the term's columns appended, its offset folded into the bias."""
    shift = ((base.x_mean - term["x_mean"]) @ term["proj"].astype(np.float32)) @ term["coef"].astype(np.float32)
    return {"x_mean": base.x_mean, "proj": np.hstack([base.proj, term["proj"].astype(np.float32)]).astype(np.float16),
            "coef": np.vstack([base.coef, term["coef"].astype(np.float32)]).astype(np.float16),
            "bias": (base.bias + term["bias"] + shift).astype(np.float32), "w_std": base.w_std, "slots": base.slots}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codes", type=Path, default=Path("runs/morph_targets/train.npz"), help="training photos' codes")
    ap.add_argument("--heldout", type=Path, default=Path("runs/morph_targets/heldout.npz"),
                    help="held-out photos' codes: their latent error is reported, never fitted")
    ap.add_argument("--val", type=int, default=60, help="last N training photos held out to pick lambda")
    ap.add_argument("--rank", type=int, default=256)
    ap.add_argument("--lambdas", default="0.3,1,3,10,30")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--base", type=Path, default=GENERATED_PATH, help="the identity correction fitted on generated faces")
    ap.add_argument("--out", type=Path, default=IDENTITY_CORRECTION_PATH, help="where to write base + term")
    args = ap.parse_args(argv)
    if args.out.resolve() == args.base.resolve():
        raise SystemExit("--out would overwrite --base: the term is added to the generated fit, never to itself")
    t0 = time.time()
    base = IdentityCorrection.load(args.base)
    if "real_term" in base.meta:
        raise SystemExit(f"{args.base} already holds a real-photo term: give the fit on generated faces as --base")
    feats = real_features(args.codes, base, args.threads)
    err = residual(feats, base)
    term, sel = fit_reduced_ridge(feats["x"], err, args.val, args.rank, [float(v) for v in args.lambdas.split(",")])
    arrays = with_term(base, term)
    meta = {**base.meta, "real_term": {
        "photos": int(len(err)), "val": args.val, "rank": args.rank, "lambda": sel["lambda"],
        "val_latent_mse_one_pass": sel["before"], "val_latent_mse_corrected": sel["after"], "lambdas": sel["lambdas"],
        "codes": str(args.codes), "base_sha256": base.sha256, "data_terms": UTKFACE_TERMS}}
    if args.heldout.is_file():
        held = real_features(args.heldout, base, args.threads)
        fitted = IdentityCorrection(**{k: arrays[k] for k in ("x_mean", "proj", "coef", "bias", "w_std", "slots")},
                                    meta=meta)
        before = residual(held, base)
        added = (fitted.deltas(held["x"]) - base.deltas(held["x"])) / base.w_std  # (N, S, 512), w_std units
        after = before - added.reshape(len(before), -1)
        meta["real_term"]["heldout"] = {"photos": int(len(before)),
                                        "latent_mse_one_pass": round(float((before ** 2).mean()), 4),
                                        "latent_mse_corrected": round(float((after ** 2).mean()), 4)}
    meta["real_term"]["seconds"] = round(time.time() - t0)
    save_correction(args.out, arrays, meta)
    if args.out == IDENTITY_CORRECTION_PATH:
        update_manifest({"identity_correction": {
            "file": args.out.name, "sha256": sha256_file(args.out), "bytes": args.out.stat().st_size,
            "source": f"identity_correction_generated (sha256 {base.sha256}) plus a reduced-rank ridge term (rank "
                      f"{args.rank}) fitted on {len(err)} UTKFace photos' quality-mode codes: what the one pass still "
                      "misses on real photos (engine/inversion/corrections/identity.py)",
            "licence": "ours; fitted on UTKFace: non-commercial research use only",
            "data": "../shared/data/real-faces/utkface/ (UTKFace aligned crops, via training.data.morph_targets)",
            "regenerate": "python -m training.data.morph_targets --split train --count 720 && "
                          "python -m training.data.morph_targets --split heldout --count 16 && "
                          "python -m training.fit.identity_correction_real", "shipped": True}})
        print("the identity feedback is fitted for the one pass this replaces: refit it "
              "(python -m training.fit.identity_feedback)")


if __name__ == "__main__":
    main()
