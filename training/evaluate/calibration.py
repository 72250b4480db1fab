"""Evaluate the personal calibration (engine/inversion/calibration.py): does one refinement of a few keyframes of a person
make the one pass of *other* frames of that person the same person by dlib's measure?

    python -m training.evaluate.calibration --json docs/results/calibration_eval.json \
        --pairs docs/images/calibration_pairs.jpg
    python -m training.evaluate.calibration --test-frames 3 --quality-steps 0     # quicker: no per-frame baseline

Per clip of ../shared/data/video (a stand-in for a webcam session): the calibration takes its keyframes the way the
desktop app does (engine.inversion.calibration.calibrate: the first frames with a usable face, --gap seconds apart, refined
with --steps quality-mode steps each); the test frames are --test-frames frames spread evenly from --after seconds
past the last keyframe to the end of the clip, none of them a keyframe. Methods per test frame: "one pass" (the
encoder with its landmark correction, what the live loop has without calibration), "calibrated, 1 keyframe" (the
first keyframe's offset alone), "calibrated" (all keyframes: what the app uses), and "quality" (the quality mode
on that very frame, seconds per frame: the reference the calibration tries to reach without the cost).

--album A1+A2,B1,... (photos of one person, in ../shared/data/faces unless a path; '+' joins versions of one
photograph: obama_partial_face.jpg is cut from obama.jpg, obama-240p.jpg a small version of it): each photo
calibrated by the photos of the *other* photographs that make good keyframes (engine.inversion.calibration
.keyframe_problem, as `celeblook calibrate` takes them; leave one photograph out): the "photos of a friend" case.

Metrics as in training/evaluate/encoder.py: dlib descriptor distance between the aligned input and the
reconstruction (< 0.6: same person), PSNR / SSIM inside the face oval at 256 px.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from engine.align import align_face, crop_points, usable_faces
from engine.atomic import write_json_atomic
from engine.inversion.calibration import ANCHOR, KEYFRAMES, LIVE_SLOTS, MIN_GAP_S, IdentityCalibration, KeyframePicker, keyframe_offset, \
    keyframe_problem, stream_keyframes
from engine.inversion.encoder import Encoder
from engine.generator import Generator
from engine.image_io import load_image, save_image
from engine.landmarks import FaceLandmarker
from engine.inversion.refine import ANCHOR_EVERY, STEPS, Refiner, refine_latent
from engine.inversion.skin_tone import face_oval_mask
from engine.video import VideoReader
from training.data.face_sets import PHOTOS, SIZE, VIDEOS
from training.evaluate.dlib_judge import DlibIdentity
from training.evaluate.encoder import pairs_image, render_aligned
from training.evaluate.image_metrics import region_metrics

METHODS = ("one pass", "calibrated, 1 keyframe", "calibrated", "quality")
PAIR_METHODS = ["one pass", "calibrated", "quality"]
PAIRS_PER_SET = 2  # rows of the pairs image per clip and for the album


def clip_frames(path: Path) -> list[tuple[np.ndarray, float]]:
    with VideoReader(path) as video:
        return [(f.image, f.timestamp_ms / 1000.0) for f in video]


def test_items(frames, landmarker, after_t: float, n: int) -> list[dict]:
    """Aligned crops of `n` frames with a usable face spread evenly over the frames after `after_t`."""
    later = [(img, t) for img, t in frames if t >= after_t]
    items = []
    for j in np.linspace(0, len(later) - 1, n).round().astype(int) if later else []:
        img, t = later[j]
        faces = usable_faces(landmarker.detect(img))
        if faces:
            crop = align_face(img, faces[0], SIZE)
            items.append({"t": t, "crop": crop, "face": faces[0], "mask": face_oval_mask(faces[0], crop)})
    return items


def score(it: dict, wplus: np.ndarray, gen: Generator, lm, ident: DlibIdentity) -> tuple[dict, np.ndarray]:
    """(metrics, reconstruction) of W+ against the item's aligned crop."""
    recon, _ = render_aligned(gen, lm, wplus)
    dist, found = ident.distance(it["crop"].image, recon)
    psnr, ssim = region_metrics(it["crop"].image, recon, it["mask"])
    return {"id_dist": dist, "dlib_found": found, "psnr": psnr, "ssim": ssim}, recon


def keep_pair(pairs: dict, name: str, crop: np.ndarray, method: str, recon: np.ndarray, index: int) -> None:
    """Remember input and reconstruction for the pairs image (the first PAIRS_PER_SET items of a set)."""
    if index < PAIRS_PER_SET and method in PAIR_METHODS:
        pairs.setdefault(name, {"set": "photos", "name": name, "crop": crop, "recons": {}})["recons"][method] = recon


def evaluate_clip(path: Path, enc: Encoder, refiner: Refiner, gen: Generator, lm, ident: DlibIdentity,
                  args: argparse.Namespace, pairs: dict) -> list[dict]:
    frames = clip_frames(path)
    t0 = time.perf_counter()
    offsets, times = [], []
    for crop, face, t in stream_keyframes(frames, lm, KeyframePicker(args.keyframes, args.gap)):
        offsets.append(keyframe_offset(enc, refiner, crop, face, args.steps, args.anchor_every))
        times.append(t)
    calib_s = time.perf_counter() - t0
    if not offsets:
        print(f"skip {path.name}: no usable face")
        return []
    cals = {"calibrated, 1 keyframe": IdentityCalibration.empty("", args.steps).add(offsets[0]),
            "calibrated": IdentityCalibration.empty("", args.steps)}
    for o in offsets:
        cals["calibrated"] = cals["calibrated"].add(o)
    rows = []
    for index, it in enumerate(test_items(frames, lm, times[-1] + args.after, args.test_frames)):
        one = enc.invert_face(it["crop"], it["face"])
        latents = {"one pass": one, **{k: c.apply(one, args.slots) for k, c in cals.items()}}
        if args.quality_steps > 0:
            latents["quality"] = refine_latent(refiner, it["crop"].image, one, args.quality_steps,
                                               anchor_every=ANCHOR_EVERY if args.render == "full" else 0,
                                               points=crop_points(it["face"], it["crop"]))[0]
        for method, w in latents.items():
            metrics, recon = score(it, w, gen, lm, ident)
            keep_pair(pairs, f"{path.stem} {it['t']:.1f} s", it["crop"].image, method, recon, index)
            row = {"set": "video", "clip": path.stem, "t": round(it["t"], 2), "method": method,
                   "keyframes": len(offsets) if method == "calibrated" else int(method != "one pass"),
                   "keyframe_times_s": [round(t, 2) for t in times], "calibration_s": round(calib_s, 1),
                   **metrics}
            rows.append(row)
            print(f"{path.stem:16s} t {it['t']:5.2f} {method:24s} id {row['id_dist']:.3f}", flush=True)
    return rows


def evaluate_album(photos: list[tuple[int, Path]], enc: Encoder, refiner: Refiner, gen: Generator, lm,
                   ident: DlibIdentity, args: argparse.Namespace, pairs: dict) -> list[dict]:
    """`photos`: (photograph number, path); versions of one photograph never calibrate each other."""
    items = []
    for group, p in photos:
        image = load_image(p)
        faces = usable_faces(lm.detect(image))
        if not faces:
            print(f"skip {p.name}: no usable face")
            continue
        crop = align_face(image, faces[0], SIZE)
        it = {"name": p.name, "group": group, "crop": crop, "face": faces[0], "mask": face_oval_mask(faces[0], crop)}
        it["one"] = enc.invert_face(crop, faces[0])
        it["offset"] = keyframe_offset(enc, refiner, crop, faces[0], args.steps, args.anchor_every)
        it["keyframe"] = keyframe_problem(faces[0], crop) is None  # what `celeblook calibrate` would use
        items.append(it)
    rows = []
    for index, it in enumerate(items):
        others = IdentityCalibration.empty("", args.steps)
        for o in items:
            if o["group"] != it["group"] and o["keyframe"]:
                others = others.add(o["offset"])
        if others.keyframes == 0:
            continue
        latents = {"one pass": it["one"], "calibrated": others.apply(it["one"]),
                   "quality": it["one"] + it["offset"][None]}
        for method, w in latents.items():
            metrics, recon = score(it, w, gen, lm, ident)
            keep_pair(pairs, it["name"], it["crop"].image, method, recon, index)
            row = {"set": "album", "clip": it["name"], "method": method,
                   "keyframes": others.keyframes if method == "calibrated" else 0, **metrics}
            rows.append(row)
            print(f"{it['name']:22s} {method:24s} id {row['id_dist']:.3f}", flush=True)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for s in dict.fromkeys(r["set"] for r in rows):
        for m in METHODS:
            sel = [r for r in rows if r["set"] == s and r["method"] == m]
            if sel:
                d = np.array([r["id_dist"] for r in sel])
                out.append({"set": s, "method": m, "n": len(sel), "id_dist": round(float(d.mean()), 3),
                            "id_lt_0.6": int((d < 0.6).sum()),
                            "psnr_db": round(float(np.mean([r["psnr"] for r in sel])), 2),
                            "ssim": round(float(np.mean([r["ssim"] for r in sel])), 3)})
    return out


def markdown(summary: list[dict]) -> str:
    lines = ["| set | method | frames | dlib distance | < 0.6 | face PSNR dB | face SSIM |",
             "|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['set']} | {s['method']} | {s['n']} | {s['id_dist']:.3f} | {s['id_lt_0.6']}/{s['n']} | "
                     f"{s['psnr_db']:.2f} | {s['ssim']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, default=VIDEOS)
    ap.add_argument("--keyframes", type=int, default=KEYFRAMES)
    ap.add_argument("--gap", type=float, default=MIN_GAP_S, help="seconds between keyframes")
    ap.add_argument("--steps", type=int, default=STEPS, help="quality-mode steps per keyframe")
    ap.add_argument("--after", type=float, default=0.5, help="test frames start this long after the last keyframe")
    ap.add_argument("--test-frames", type=int, default=6, help="test frames per clip")
    ap.add_argument("--quality-steps", type=int, default=STEPS, help="per-frame quality-mode baseline (0: skip)")
    ap.add_argument("--album", default="obama.jpg+obama-240p.jpg+obama_partial_face.jpg,32bit.png",
                    help="photos of one person for the leave-one-photograph-out album check, '+' joining versions "
                         "of one photograph ('' to skip)")
    ap.add_argument("--anchor-every", type=int, default=ANCHOR,
                    help="the refinement's colour anchor every N steps (0: none; engine/inversion/refine.py)")
    ap.add_argument("--render", choices=("full", "preview"), default="full",
                    help="score renders of the 1024-px generator (stills) or the 256-px preview head (the live loop, "
                         "which adds the first LIVE_SLOTS slots of the calibration)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--pairs", type=Path, help="write input | one pass | calibrated | quality rows as an image")
    args = ap.parse_args(argv)
    t0 = time.time()
    gen = Generator.load(args.threads)
    enc = Encoder.load(args.threads)
    refiner = Refiner.load(args.threads, full=gen)
    args.slots = None
    if args.render == "preview":
        gen, args.slots = refiner.preview, LIVE_SLOTS
    ident = DlibIdentity()
    rows, pairs = [], {}
    with FaceLandmarker() as lm:
        for path in sorted(args.videos.glob("*.mp4")):
            rows += evaluate_clip(path, enc, refiner, gen, lm, ident, args, pairs)
        album = [(g, Path(p) if "/" in p else PHOTOS / p)
                 for g, versions in enumerate(args.album.split(",")) for p in versions.split("+") if p]
        if album:
            rows += evaluate_album(album, enc, refiner, gen, lm, ident, args, pairs)
    summary = summarise(rows)
    print(markdown(summary))
    if args.json:
        write_json_atomic(args.json, {"summary": summary, "rows": rows, "args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "json"},
            "seconds": round(time.time() - t0)}, indent=1)
        print(f"wrote {args.json}")
    if args.pairs:
        items = [p for p in pairs.values() if len(p["recons"]) == len(PAIR_METHODS)]
        recons = {(p["name"], m): r for p in items for m, r in p["recons"].items()}
        save_image(args.pairs, pairs_image(items, recons, PAIR_METHODS))
        print(f"wrote {args.pairs}")


if __name__ == "__main__":
    main()
