"""Probe: does the quality mode correct real faces in a common direction (a real-vs-generated offset of the one pass)?

    python -m training.evaluate.probe_domain_offset --json runs/domain_offset.json     # ≈ 10 min on 2 cores

If the one pass erred on real faces by a shared offset (the encoder has only seen generated faces), the quality
mode's change of W+, D = quality − one pass, would point the same way for different people, and a constant
added to the one pass would help everyone. Per face: the engine's one pass (Encoder.invert_face, both
corrections) and the quality mode from it (engine.inversion.refine.refine_latent, the shipped objective with its identity
term); D on the 16 used slots in w_std units. Faces: `--per-clip` frames of each video clip at positions the
encoder evaluation does not use (each person is one group) and `--generated` faces at seeds it does not use (one
group, the control: there the one pass has no domain gap). Reported: per group the RMS of D, the RMS of the
group's mean D, and the cosine between the groups' mean Ds. The photos (the evaluation's test set) are not used.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from engine.align import align_face, crop_points, usable_faces
from engine.atomic import write_json_atomic
from engine.inversion.encoder import Encoder
from engine.generator import Generator
from engine.landmarks import FaceLandmarker
from engine.latents import to_wplus
from engine.inversion.refine import Refiner, refine_latent
from training.data.samples import USED_SLOTS, w_stats
from training.data.face_sets import VIDEOS, frame_positions, video_frames

SEED = 700_000  # generated controls; the evaluation's held-out faces start at 900 000
EVAL_PER_CLIP = 3  # the evaluation's frames: frame_positions(n, 3) of each clip (--video-frames 3)


def probe_positions(n: int, per_clip: int) -> list[int]:
    """`per_clip` frame indices of an n-frame clip at (j + 0.3) / per_clip of its length; one that falls within 6
    frames of a frame the encoder evaluation uses moves 8 frames on, or further, to 6 past that frame."""
    taken = frame_positions(n, EVAL_PER_CLIP)

    def clear(p: int) -> int:
        near = [t for t in taken if abs(p - t) < 6]
        return max(p + 8, near[0] + 6) if near else p

    return [clear(p) for p in frame_positions(n, per_clip, 0.3)]


def offset_report(deltas: dict[str, np.ndarray]) -> dict:
    """Per group (name -> D of its faces, (n, 16, 512)): RMS of D and of its mean; cosines of the group means."""
    means = {g: d.mean(0).ravel() for g, d in deltas.items()}
    cos = {a: {b: float(means[a] @ means[b] / (np.linalg.norm(means[a]) * np.linalg.norm(means[b]) + 1e-12))
               for b in means} for a in means}
    return {"groups": {g: {"faces": len(d), "rms_delta": float(np.sqrt((d ** 2).mean())),
                           "rms_mean_delta": float(np.sqrt((means[g] ** 2).mean()))} for g, d in deltas.items()},
            "cosine_of_means": cos}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-clip", type=int, default=8)
    ap.add_argument("--generated", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20, help="quality-mode steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    t0 = time.time()
    gen, enc = Generator.load(args.threads), Encoder.load(args.threads)
    refiner = Refiner.load(args.threads, full=gen)
    _, w_std = w_stats(gen.map)
    slots = list(USED_SLOTS)
    items = [(name.split("#")[0], frame) for name, frame in video_frames(VIDEOS, args.per_clip, probe_positions)]
    if not items:
        raise SystemExit(f"no frames read from video clips (*.mp4) in {VIDEOS}")
    items += [("generated", cv2.cvtColor(gen.render(gen.sample_w(SEED + i, 0.7)), cv2.COLOR_RGB2BGR))
              for i in range(args.generated)]
    deltas: dict[str, list[np.ndarray]] = {}
    with FaceLandmarker() as lm:
        for group, image in items:
            faces = usable_faces(lm.detect(image))
            if not faces:
                continue
            crop = align_face(image, faces[0], 256)
            one_pass = enc.invert_face(crop, faces[0])
            quality = refine_latent(refiner, crop.image, one_pass, args.steps, points=crop_points(faces[0], crop))[0]
            d = (to_wplus(quality)[0] - to_wplus(one_pass)[0])[slots] / w_std
            deltas.setdefault(group, []).append(d)
            print(f"{group:16s} face {len(deltas[group])}  RMS D {np.sqrt((d ** 2).mean()):.3f}", flush=True)
    report = offset_report({g: np.stack(d) for g, d in deltas.items()})
    report.update(steps=args.steps, seconds=round(time.time() - t0))
    names = list(report["groups"])
    print(f"{'group':16s} faces  RMS D  RMS mean D  " + " ".join(f"{n[:8]:>8s}" for n in names))
    for a in names:
        g = report["groups"][a]
        print(f"{a:16s} {g['faces']:5d}  {g['rms_delta']:.3f}  {g['rms_mean_delta']:10.3f}  "
              + " ".join(f"{report['cosine_of_means'][a][b]:8.2f}" for b in names))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.json, report)


if __name__ == "__main__":
    main()
