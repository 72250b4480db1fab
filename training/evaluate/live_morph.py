"""Evaluate the live morph as a user sees it: is the face on screen the target, and does it move like the user?

    python -m training.evaluate.live_morph --json docs/results/live_morph.json     # 3 clips x 3 targets, ~20 min on 2 cores

Per clip of --videos (stand-ins for a webcam) and per target (a photo inverted the way the app inverts a dropped
photo, or `seed:N`, a built-in generated face), the live pipeline (engine.live.LivePipeline with the app's
settings) runs the first --frames frames at strength 1 with each --presets morph, once at strength 0, and (unless
--no-today) as the app morphed before reenactment (the identity preset toward one-pass targets), so before and after
come from one run. Every --every-th output frame (the pasted-back frame the window shows) is judged:
- likeness: dlib's descriptor distance (< 0.6: the same person) between the output face, aligned by its own
  landmarks, and the target's aligned photo (strength 1) or the input's aligned crop (strength 0);
- motion: MediaPipe's head pose (yaw, pitch, from its facial transformation matrix) and expression scores (jaw_open,
  smile: engine.landmarks.EXPRESSIONS; pucker: training.data.face_labels.LIP_SHAPES) on the input frame and on the output frame; Pearson correlation over the
  clip's frames (range_*: the input's 5-95 % spread, so a correlation over little motion reads as noise); gap_*
  (jaw_open, smile): the mean |output - input| score, which says whether the expression is the user's at all;
  with --dlib-motion also dlib's own yaw, pitch, inner-lip gap and mouth width (DlibPose): the loop drives the face by
  MediaPipe's landmarks, so a second judge that never saw them says whether a gain is the face's or the judge's;
- complexion: CIE76 ΔE (and the signed ΔL*) between the median CIELAB inside the face oval of the output and of the
  target's photo (strength 1) or the input frame (strength 0); skin_de_user: the output's to the input frame's, so a
  target that kept the user's skin shows (the photo's lighting is not the clip's: a floor of a few units remains).
`--mode sync` renders every frame's face before pasting (the semantics, no render lag); `--mode app` renders in the
background as the desktop app does and feeds frames at the clip's frame rate, skipping those the loop was too busy
for (what a webcam user sees; depends on the machine's load). `--record DIR` writes input | output GIFs. `--also`
adds reenact as it was before a change (ALSO), at strength 1 and, where the change touches the user's own face
(YOURS), at 0, so before and after come from one run.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from engine.align import align_face
from engine.atomic import atomic_path
from engine.benchmark import provenance
from engine.edits import Reenactment, slot_weights
from engine.gif import write_gif
from engine.image_io import load_image
from engine.landmarks import FaceLandmarker
from engine.live import LiveModels, LivePipeline, LiveSettings
from engine.inversion.inverter import InversionOptions
from engine.inversion.refine import StudentFit
from engine.inversion.skin_tone import face_oval_mask, skin_lab
from engine.inversion.targets import Target, builtin_targets
from engine.video import VideoReader
from training.data.face_labels import FaceLabeler
from training.data.face_sets import PHOTOS, SIZE, VIDEOS
from training.evaluate.dlib_judge import DlibIdentity, DlibPose

MOTION = ("yaw", "pitch", "jaw_open", "smile", "pucker", "dlib_yaw", "dlib_pitch", "dlib_mouth",
          "dlib_mouth_width")  # the dlib_ ones: dlib's
UNFITTED = ("student renders photos", "photo targets on the preview head")  # --also variants that morph toward a
# photo target's refined latent as it is (Target.wplus), not the one fitted to the live student (Target.live)
REFITTED = {  # --also variants whose photo targets are fitted to the student another way (StudentFit)
    "fit without the photo": StudentFit(steps=60, lr=0.02, copies=3, photo=0),  # the fit before the photo joined it
    "fit of 60 steps and 3 copies": StudentFit(steps=60, lr=0.02, copies=3),  # the photo's fit before it got cheaper
}
RAW_SKIN = "the photo's colours as they are"  # the --also variant whose face takes Target.skin unchanged
MID_WORD = "the smile moved mid-word too"  # the --also variant whose open-mouthed photo targets lose their smile too
#   (their jawOpen read as 0, so engine.edits.resting_mouth_change does not leave them alone)
YOURS = ("encoder pose", "no catch-up", "encoder pose and no catch-up", "unpaced", "no live mouth")  # --also
# variants that change the user's own face too (also run at strength 0); the others act on a target only
GAPS = ("jaw_open", "smile")  # also judged by the mean |output - input| score: a face that keeps grinning while
#   the user speaks can still correlate with the user's smile; the gap says it is not the user's expression
STILL = {"jaw_open": 0.05, "smile": 0.05, "pucker": 0.05}  # totals leave out clips whose input score spans less
#   (range_*): s18's mouth spans 0.001 jawOpen, far under MediaPipe's ~0.01 frame-to-frame noise
SAME = 0.6  # dlib's threshold for the same person
TODAY = "identity, one-pass target"  # the morph before reenactment (2026-12-06)
ALSO = {  # reenact as it was before a change, or as tried (--also): name -> LiveSettings fields
    "encoder pose": {"reenactment": Reenactment(pose_share=0.0)},  # before the measured head-pose drive
    "no catch-up": {"catch_up": False},  # before the stale face's mouth caught up with the newest frame
    "encoder pose and no catch-up": {"reenactment": Reenactment(pose_share=0.0), "catch_up": False},  # both
    "unpaced": {"pace": False},  # before the loop inverted only the frames the generator takes (app mode)
    "no live mouth": {"live_mouth": False},  # before the open mouth's inside came from the user's frame
    "student renders photos": {"target_refined": False},  # the student renders a photo target's refined latent as
    #   it is, not fitted to it (before session 9 sent photo targets to the preview head)
    "photo targets on the preview head": {},  # before photo targets were fitted to the student (session 12)
    "fit without the photo": {},  # the fit to the student before the photo itself joined it (REFITTED)
    "fit of 60 steps and 3 copies": {},  # the photo's fit at the first recipe's cost (REFITTED)
    "colours matched to the user": {"target_colours": False},  # before the paste-back gave the face the target
    #   photo's colours at full strength (docs/MORPH.md "The target's complexion")
    "the render's own colours": {"target_skin": None},  # tried: the face keeps the render's colours at full strength
    "no forehead lift": {"lift_forehead": False},  # before the pasted oval's top rose toward the hairline
    "the photo's resting mouth": {"reenactment": Reenactment(rest=())},  # before the target's resting smile moved
    #   to the user's (a target photographed grinning grinned through speech)
    "the resting jaw too": {"reenactment": Reenactment(rest=("smile", "jaw_open"))},  # tried: the target's resting
    #   jaw moved to the user's as well (closes an open-mouthed photo's mouth)
    "half-way, jaw too": {"reenactment": Reenactment(rest=("smile", "jaw_open"), rest_share=0.5)},  # tried
    "the smile driven too": {"reenactment": Reenactment(driven=("jaw_open", "smile"))},  # tried: the smile also
    #   follows the user's measured blendshape change, like the jaw
    "the photo's colours as they are": {},  # tried: the photo's colours not kept within real photos' range (RAW_SKIN)
    MID_WORD: {},  # before a photo caught mid-word kept its mouth (MID_WORD)
    "motion on slots 4-9": {"reenactment": Reenactment(motion=slot_weights(middle=1.0))},  # tried in session 11 and
    #   not kept: the coarse slots left to the measured head pose (docs/MORPH.md, "Motion on slots 4-9")
}


@dataclass
class Reading:
    """MediaPipe's view of one face: pose in degrees, blendshape scores, the aligned crop (for dlib), the median
    CIELAB of its face oval."""

    motion: dict[str, float]
    crop: np.ndarray
    skin: np.ndarray


class MotionReader:
    """MediaPipe's pose and expression of a face (training.data.face_labels.FaceLabeler), its aligned crop, and
    with `dlib`, dlib's reading of the pose and mouth (DlibPose: 68 landmarks of its own, a judge the engine never
    uses; NaN where dlib finds no face): the live loop moves the face by MediaPipe's landmarks, so MediaPipe alone
    would judge its own work."""

    def __init__(self, dlib: bool = False):
        self._labels = FaceLabeler()
        self._faces = FaceLandmarker()  # the engine's wrapper, for the aligned crop
        self._dlib = DlibPose() if dlib else None

    def read(self, bgr: np.ndarray) -> Reading | None:
        labels = self._labels.label(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        faces = self._faces.detect(bgr)
        if labels is None or not faces:
            return None
        motion = {k: labels[k] for k in MOTION if k in labels}
        if self._dlib is not None:
            dlib = self._dlib.read(bgr) or {}
            motion.update({f"dlib_{k}": dlib.get(k, float("nan")) for k in ("yaw", "pitch", "mouth", "mouth_width")})
        crop = align_face(bgr, faces[0], SIZE, blur_padding=False)
        return Reading(motion, crop.image, skin_lab(crop.image, face_oval_mask(faces[0], crop)))

    def close(self) -> None:
        self._labels.close()
        self._faces.close()


class LoadedTarget(NamedTuple):
    """A morph target as the app makes it (engine.inversion.targets.Target) and the reference crop dlib judges
    against."""

    target: Target
    crop: np.ndarray

    def settings(self, fitted: bool = True) -> dict:
        """LiveSettings fields to morph toward it: the student-fitted latent (as the app) unless not `fitted`."""
        return self.target.live_settings(fitted)


def load_targets(specs: list[str], models: LiveModels, cache_dir: Path, quality: int,
                 fit: StudentFit | None = None) -> dict[str, LoadedTarget]:
    """{name: LoadedTarget}: photos inverted like the app's dropped photos (with `fit`, also fitted to the live
    student as the app does, under a minute a photo, once: cached); `seed:N` built-in."""
    out = {}
    with FaceLandmarker(max_faces=4, expressions=True) as lm:
        cache = models.target_cache(lm, InversionOptions(quality_steps=quality), cache_dir, fit)
        photos = {spec: load_image(Path(spec)) for spec in specs if not spec.startswith("seed:")}
        faces = {spec: lm.detect(image) for spec, image in photos.items()}  # every photo checked before any is fitted
        faceless = [spec for spec, found in faces.items() if not found]
        if faceless:
            raise SystemExit(f"no face in target photo {', '.join(faceless)}")
        for spec in specs:
            if spec.startswith("seed:"):
                t = builtin_targets(models.generator, (int(spec[5:]),), landmarker=lm)[0]
                render = cv2.cvtColor(models.generator.render(t.wplus), cv2.COLOR_RGB2BGR)
                found = lm.detect(render)
                out[spec] = LoadedTarget(t, align_face(render, found[0], SIZE, blur_padding=False).image)
            else:
                t = cache.load(Path(spec))
                crop = align_face(photos[spec], faces[spec][0], SIZE, blur_padding=False).image
                out[Path(spec).stem] = LoadedTarget(t, crop)
    return out


def run_clip(models: LiveModels, path: Path, settings: LiveSettings, frames: int, mode: str,
             every: int = 1) -> list[tuple]:
    """[(input frame, output frame)] of every `every`-th frame the live loop showed a face on."""
    shown = []
    with VideoReader(path) as reader, LivePipeline(models, background_render=mode == "app") as pipe:
        start, busy_until = None, 0.0
        for frame in reader.frames(frames):
            if mode == "app":  # a webcam does not wait: frames that arrive while the loop is busy are lost
                now = time.perf_counter()
                start = now - frame.timestamp_ms / 1000.0 if start is None else start
                due = start + frame.timestamp_ms / 1000.0
                if due < busy_until:
                    continue
                time.sleep(max(0.0, due - now))
            result = pipe.process(frame.image, frame.timestamp_ms, settings)
            busy_until = time.perf_counter() + pipe.frame_wait()
            if result.face_found and frame.index % every == 0:
                shown.append((frame.image, result.frame))
    return shown


def judge(pairs: list[tuple], reader: MotionReader, ident: DlibIdentity, reference: np.ndarray | None) -> dict:
    """Likeness (dlib distance per frame; to `reference`, an aligned crop, else to the input's own crop), complexion
    (skin ΔE to the same) and motion correlations."""
    ref = reader.read(reference) if reference is not None else None
    ref_skin = ref.skin if ref is not None else np.full(3, np.nan)  # NaN: MediaPipe misses the reference crop's face
    dist, de, dl, de_user, ins, outs = [], [], [], [], [], []
    for frame_in, frame_out in pairs:
        a, b = reader.read(frame_in), reader.read(frame_out)
        if a is None or b is None:
            continue
        dist.append(ident.distance(b.crop, reference if reference is not None else a.crop)[0])
        skin = ref_skin if reference is not None else a.skin
        de.append(float(np.linalg.norm(b.skin - skin)))
        dl.append(float(b.skin[0] - skin[0]))
        de_user.append(float(np.linalg.norm(b.skin - a.skin)))
        ins.append(a.motion)
        outs.append(b.motion)
    d = np.array(dist)
    mean = lambda v: round(float(np.mean(v)), 2) if len(v) else float("nan")  # noqa: E731
    row = {"frames": len(pairs), "judged": int(d.size), "same": int((d < SAME).sum()),
           "share": round(float((d < SAME).mean()), 3) if d.size else 0.0,
           "mean": round(float(d.mean()), 4) if d.size else float("nan"),
           "skin_de": mean(de), "skin_dl": mean(dl), "skin_de_user": mean(de_user)}
    for k in [k for k in MOTION if ins and k in ins[0]]:
        x, y = np.array([m[k] for m in ins]), np.array([m[k] for m in outs])
        both = np.isfinite(x) & np.isfinite(y)  # dlib may miss a face MediaPipe found
        x, y = x[both], y[both]
        ok = x.size > 2 and x.std() > 1e-6 and y.std() > 1e-6
        row[f"corr_{k}"] = round(float(np.corrcoef(x, y)[0, 1]), 3) if ok else float("nan")
        row[f"range_{k}"] = round(float(np.percentile(x, 95) - np.percentile(x, 5)), 3) if x.size else 0.0
        if k in GAPS:
            row[f"gap_{k}"] = round(float(np.abs(y - x).mean()), 3) if x.size else float("nan")
    return row


def markdown(rows: list[dict]) -> str:
    motion = [k for k in MOTION if any(f"corr_{k}" in r for r in rows)]
    gaps = [k for k in GAPS if any(f"gap_{k}" in r for r in rows)]
    head = "| clip | target | morph | recognised (dlib < 0.6) | mean distance | skin ΔE (ΔL*) | " + " | ".join(
        [f"corr {k}" for k in motion] + [f"gap {k}" for k in gaps]) + " |"
    lines = [head, "|" + "---|" * (6 + len(motion) + len(gaps))]
    for r in rows:
        skin = f"{r.get('skin_de', float('nan')):.1f} ({r.get('skin_dl', float('nan')):+.1f})"
        lines.append(f"| {r['clip']} | {r['target']} | {r['morph']} | {r['same']} / {r['judged']} | {r['mean']:.3f} | "
                     f"{skin} | " + " | ".join([f"{r.get(f'corr_{k}', float('nan')):.2f}" for k in motion] +
                                               [f"{r.get(f'gap_{k}', float('nan')):.2f}" for k in gaps]) + " |")
    return "\n".join(lines)


def totals(rows: list[dict]) -> list[dict]:
    """Per morph over all clips and targets: frames recognised, mean distance, mean correlations (over the clips
    whose input moves, STILL)."""
    out = []
    for morph in dict.fromkeys(r["morph"] for r in rows):
        rs = [r for r in rows if r["morph"] == morph]
        judged = sum(r["judged"] for r in rs)
        row = {"clip": "all", "target": "all", "morph": morph, "judged": judged, "same": sum(r["same"] for r in rs),
               "mean": round(sum(r["mean"] * r["judged"] for r in rs) / max(judged, 1), 4),
               **{k: _weighted([r.get(k, float("nan")) for r in rs], [r["judged"] for r in rs])
                  for k in ("skin_de", "skin_dl", "skin_de_user", *(f"gap_{g}" for g in GAPS))}}
        for k in [k for k in MOTION if any(f"corr_{k}" in r for r in rs)]:
            moved = [r for r in rs if r.get(f"range_{k}", np.inf) >= STILL.get(k, 0.0)]  # a clip whose input does
            row[f"corr_{k}"] = round(float(np.nanmean([r.get(f"corr_{k}", np.nan) for r in moved])), 3) \
                if moved else float("nan")  # not move has nothing to follow: its correlation is the judge's noise
        out.append(row)
    return out


def _weighted(values: list[float], weights: list[int]) -> float:
    """The mean of `values` weighted by `weights`, over the finite ones (NaN: none)."""
    v, w = np.array(values, float), np.array(weights, float)
    ok = np.isfinite(v) & (w > 0)
    return round(float((v[ok] * w[ok]).sum() / w[ok].sum()), 2) if ok.any() else float("nan")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="d18.mp4,d20.mp4,s18.mp4", help="clips in --videos")
    ap.add_argument("--videos", type=Path, default=VIDEOS)
    ap.add_argument("--targets", default=f"{PHOTOS / 'biden.jpg'},{PHOTOS / 'obama.jpg'},seed:0",
                    help="target photos and/or seed:N built-in faces, comma-separated (\"\": yourself only)")
    ap.add_argument("--presets", default="reenact,identity", help="morphs to compare at strength 1")
    ap.add_argument("--also", default="", help="also run reenact with these changes, separated by commas: "
                    + "; ".join(f"'{k}'" for k in ALSO) + " (before/after in one run)")
    ap.add_argument("--no-today", action="store_true",
                    help="leave out the app as it was before reenactment (identity preset, one-pass targets)")
    ap.add_argument("--frames", type=int, default=150, help="frames of each clip to run")
    ap.add_argument("--every", type=int, default=3, help="judge every N-th frame (the loop runs them all)")
    ap.add_argument("--mode", choices=("sync", "app"), default="sync")
    ap.add_argument("--target-quality", type=int, default=20,
                    help="quality-mode steps for target photos (default 20, as the app does)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model (the app's: 1)")
    ap.add_argument("--generators", default="live",
                    help="live generators to compare, comma-separated (engine.live.LIVE_GENERATORS: live, preview, "
                         "full); with more than one, each morph's label names its generator")
    ap.add_argument("--cache", type=Path, default=Path("runs/live_morph_targets"), help="target inversion cache")
    ap.add_argument("--dlib-motion", action="store_true",
                    help="also read pose and mouth with dlib's 68 landmarks (a judge independent of MediaPipe)")
    ap.add_argument("--record", type=Path, help="write input | output GIFs here")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args(argv)
    clips = [args.videos / c for c in args.clips.split(",")]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        raise SystemExit(f"clip not found: {', '.join(missing)}")
    also = [v for v in args.also.split(",") if v]
    unknown = [v for v in also if v not in ALSO]
    if unknown:
        raise SystemExit(f"unknown --also: {', '.join(unknown)}; choose from {', '.join(ALSO)}")
    t0 = time.time()
    kinds = args.generators.split(",")
    models = LiveModels.load(args.threads, generator=kinds[0])
    specs = [s for s in args.targets.split(",") if s]
    targets = load_targets(specs, models, args.cache, args.target_quality, StudentFit())
    refits = {v: load_targets(specs, models, args.cache, args.target_quality, fit)
              for v, fit in REFITTED.items() if v in also}
    reader, ident, rows = MotionReader(dlib=args.dlib_motion), DlibIdentity(), []
    presets = args.presets.split(",") + [f"reenact, {v}" for v in also]
    runs = [("you (strength 0)", None, None, 0.0)] + [(f"you, {v}", None, None, 0.0) for v in also if v in YOURS] + [
        (preset, name, t, 1.0) for name, t in targets.items() for preset in presets]
    if not args.no_today:  # the same engine as the app had it: per-slot identity mix, targets from the one pass
        one_pass = load_targets(specs, models, args.cache, 0)
        runs += [(TODAY, name, t, 1.0) for name, t in one_pass.items()]
    by_kind = {kinds[0]: models, **{k: LiveModels.load(args.threads, generator=k) for k in kinds[1:]}}
    for clip in clips:
        for (morph, name, target, strength), kind in ((r, k) for r in runs for k in kinds):
            if target is None:
                settings = LiveSettings(strength=strength, **ALSO.get(morph.removeprefix("you, "), {}))
            elif morph.startswith("reenact, "):
                variant = morph.removeprefix("reenact, ")
                target = refits[variant][name] if variant in refits else target
                settings = LiveSettings(**{**target.settings(variant not in UNFITTED), "strength": strength,
                                           "preset": "reenact", **ALSO[variant]})
                settings = settings.with_(target_skin=target.target.skin) if variant == RAW_SKIN else settings
                if variant == MID_WORD and settings.target_expression is not None:
                    settings = settings.with_(target_expression={**settings.target_expression, "jaw_open": 0.0})
            else:
                settings = LiveSettings(**target.settings(), strength=strength,
                                        preset="identity" if morph == TODAY else morph)
            pairs = run_clip(by_kind[kind], clip, settings, args.frames, args.mode, args.every)
            label = f"{morph} [{kind}]" if len(kinds) > 1 else morph
            row = {"clip": clip.name, "target": name or "you", "morph": label, "generator": kind,
                   **judge(pairs, reader, ident, None if target is None else target.crop)}
            rows.append(row)
            print(markdown([row]).splitlines()[-1], flush=True)
            if args.record:
                args.record.mkdir(parents=True, exist_ok=True)
                fit = lambda im: cv2.resize(im, (round(240 * im.shape[1] / im.shape[0]), 240))  # noqa: E731
                side = [cv2.cvtColor(np.hstack([fit(a), fit(b)]), cv2.COLOR_BGR2RGB) for a, b in pairs]
                slug = "".join(c if c.isalnum() else "_" for c in f"{clip.stem}_{row['target']}_{label}")
                write_gif(args.record / f"{slug}.gif", side, fps=10)
    reader.close()
    summary = totals([r for r in rows if r["target"] != "you"]) + totals([r for r in rows if r["target"] == "you"])
    print(markdown(rows + summary))
    print(f"{time.time() - t0:.0f} s, mode {args.mode}, {args.frames} frames per clip")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps({"rows": rows, "summary": summary, "mode": args.mode,
                                             "frames": args.frames, "seconds": round(time.time() - t0),
                                             **provenance("training.evaluate.live_morph", argv)}, indent=1))


if __name__ == "__main__":
    main()
