"""The live per-frame pipeline of the desktop app (and of any other front end): plain dataclasses, no Qt.

    frame --VIDEO-mode landmarks--> One-Euro (landmarks) --> FFHQ crop (256 px)
          --> Inverter.invert_frame (engine.inversion.inverter, the live order): encoder --> W+
              --> landmark correction (W+ moved by what the landmarks say the encoder missed)
              --> identity correction (what a face recogniser says it missed) and identity feedback (what the
                  recogniser sees differ between the face and its reconstruction, measured every FEEDBACK_EVERY
                  frames) --> calibration --> skin-tone match (W+ moved so the skin's chroma matches the crop's)
          --> latent smoothing (One-Euro or EMA on W+) --> edits (morph toward the target, directions)
          --> generator (the distilled 256-px live student when shipped, and the 256-px preview head for morphs
              toward a refined photo target until its latent is fitted to the student; else 1024 px; skipped when
              the edited W+ barely moved: the last face is reused)
          --> the newest face's mouth caught up with this frame (lips and jaw warped; the open mouth's inside
              from the user's crop) --> paste back into the frame

`LivePipeline.process(frame, timestamp_ms, settings)` returns a `LiveResult` with the output frame, whether a
face was found, the latents and per-stage timings. A frame without a usable face passes through unchanged and
resets the temporal filters. One pipeline follows one stream: its landmarker is in VIDEO mode, so timestamps
must increase (use a new pipeline, or `reset()`, for a new stream).

The generator is the expensive step (~300 ms at 1024 px on a 2-core laptop CPU). With `LiveSettings.reuse`
the last generated face is re-pasted with the current crop while the edited W+ stays within
`reuse_threshold` (RMS, in W units) of the latent it was rendered from, so a still face costs landmarks +
encoder + paste only. The comparison is against the last *rendered* latent, so slow drift still re-renders.

`LivePipeline(models, background_render=True)` (the desktop app's mode) moves the generator to its own thread
(engine.background_render): each frame submits its edited W+ and pastes the newest finished face with the
current crop, so the loop runs at the rate of landmarks + encoder + paste, the head follows every frame, and the
face's content refreshes at the generator's rate while landmarks of the next frames run beside it. Paced
(LiveSettings.pace, the default) the loop inverts only the frames whose latent the generator will read (the
others would be replaced unread) and asks its caller (`frame_wait`) to take at most `frames_per_refresh` frames
per render: on two cores the loop and the generator share the CPU, and the encoder passes and extra frames saved
go to face refreshes (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import cv2
import numpy as np

from engine.align import Crop, align_face, usable_faces
from engine.background_render import BackgroundRenderer, Rendered
from engine.edits import (MORPH_MODES, POSE_NAMES, DirectionSet, MotionReference, Reenactment, morph,
                          motion_reference_step, reenact, resting_mouth_change)
from engine.inversion.encoder import MODEL_NAME as ENCODER_MODEL, Encoder
from engine.errors import BadInputError, CelebLookError, ModelMissingError
from engine.generator import LIVE_SYNTHESIS, Generator
from engine.inversion.inverter import InversionOptions, Inverter
from engine.inversion.refine import LIVE_MODEL_NAME as LIVE_REFINER, StudentFit, StudentMatch
from engine.inversion.targets import TargetCache
from engine.landmarks import Face, FaceLandmarker
from engine.latents import to_wplus
from engine.models import resolve_model, sha256_file
from engine.onnx_session import make_session
from engine.paste import PasteOptions, catch_up, live_mouth, paste_back
from engine.inversion.skin_tone import SkinToneModel
from engine.smoothing import OneEuroParams, OneEuroState, one_euro_step, smooth_face

STAGES = ("landmarks", "align", "encode", "edit", "generate", "paste")
ENCODER_ENV = "CELEBLOOK_ENCODER"  # a development encoder export (not checked against the manifest)
LATENT_SMOOTHING_MODES = ("one_euro", "ema")
MORPH_GROW = 0.08  # reenacting, the paste-back's face oval grows by this share at full strength (PasteOptions.grow)
MORPH_LIFT = 0.12  # and its top rises toward the hairline by this share of its height (PasteOptions.lift)
CATCH_UP_FRAMES = 64  # how far back a render's frame may be for its mouth to catch up (older: shown as is)
PERIOD_WEIGHT = 0.1  # weight of the newest sample in the pacing's running means (frame gap, inversion time)
MOTION_WINDOW = 120  # frames the user's resting latent averages over (~8 s; the reenactment's reference)


@dataclass(frozen=True)
class LatentSmoothing:
    """Temporal filter on the encoder's W+. `mode` "one_euro": per-element One-Euro filter (`min_cutoff` Hz,
    `beta` per W unit per second: faster changes pass with less lag); "ema": w_s += `ema_alpha` (w - w_s) per
    processed frame. The defaults were chosen on d18.mp4 (docs/BENCHMARKS.md, ## Live flicker)."""

    mode: str = "one_euro"
    min_cutoff: float = 0.6
    beta: float = 2.0
    d_cutoff: float = 1.0
    ema_alpha: float = 0.2

    def __post_init__(self):
        if self.mode not in LATENT_SMOOTHING_MODES:
            raise BadInputError(f"latent smoothing must be one of {', '.join(LATENT_SMOOTHING_MODES)}, not {self.mode!r}")


@dataclass(frozen=True)
class LiveSettings:
    """What to do with each frame. `target`: W+ (1, 23, 512) to morph toward, or None (the user's own face);
    `target_refined`: the target's W+ comes from the quality mode (a photo target, engine.inversion.targets.Target),
    so the morph renders with LiveModels.refined_generator when there is one;
    `strength` 0..1 and `preset` of the morph: "reenact" (the target's face moving like the user: engine.edits.reenact,
    from the user's running resting latent) or a per-slot mix (engine.edits.MORPH_PRESETS); `pose_lock`: keep the
    user's head pose along the yaw/pitch directions while morphing (docs/EDITS.md); `drive_expression`: with pose lock
    and reenact, the target's mouth also follows the user's measured blendshapes (reenact's `expression`;
    docs/MORPH.md); `reenactment`: which slots carry the user's motion and which expressions are driven
    (engine.edits.Reenactment); `amounts`: direction edits in real
    units (e.g. {"yaw": 15, "smile": 0.5}, engine.edits.DirectionSet.apply); `smooth_latents` /
    `smooth_landmarks`: temporal filters on; `reuse`: skip the generator while the edited W+ moved less than
    `reuse_threshold` (RMS, W units) since the last render; `pace`: rendering in the background, invert only the
    frames the generator will take (when it is busy past the next frame, this frame's latent would be replaced
    before it is read: the frame is pasted with the newest face, and the encoder's time goes to the generator and
    the frame rate); `frames_per_refresh`: paced, the caller takes at most this many frames per face refresh
    (LivePipeline.frame_wait; 0: no limit); `catch_up`: a face rendered from an earlier frame (the
    generator has not caught up yet, or reuse skipped it) has its mouth and jaw warped to the newest frame's
    (engine.paste.catch_up); `live_mouth`: while the user's mouth is open, the inside between their inner lips
    (teeth, tongue, the dark gap) is this frame's, from their crop (engine.paste.live_mouth), so the opening
    follows every frame; it fades out with a target's strength (at full strength a target photographed grinning
    showed a dark spot in its teeth on speech: docs/MORPH.md); `target_colours`: the paste-back matches the face's
    colours to the user's frame less as a target's strength grows, and the rest of the way to `target_skin` (the
    target photo's, Target.skin; None: the render's own), so at full strength the face has the target's complexion
    (engine.paste; matched to the frame, a dark-skinned target came out in the user's skin); `lift_forehead`:
    reenacting, the pasted oval's top also rises toward the hairline with the strength (MORPH_LIFT), so the forehead
    is the target's; `target_expression`: the target photo's expression scores (Target.expression; None: unknown),
    from which reenact moves the target's resting mouth to the user's (Reenactment.rest); `inversion`: how the user's
    face is inverted
    (engine.inversion.inverter.InversionOptions: the encoder's corrections, the identity feedback, the skin match
    (needs the shipped model, LiveModels.skin_tone), the personal calibration; the stills-only passes and quality
    steps are not used live)."""

    target: np.ndarray | None = None
    target_refined: bool = False
    strength: float = 1.0
    preset: str = "reenact"
    pose_lock: bool = True
    drive_expression: bool = True
    reenactment: Reenactment = Reenactment()
    amounts: dict[str, float] = field(default_factory=dict)
    smooth_latents: bool = True
    smooth_landmarks: bool = True
    latent_filter: LatentSmoothing = LatentSmoothing()
    reuse: bool = True
    reuse_threshold: float = 0.01
    pace: bool = True
    frames_per_refresh: float = 4.0
    catch_up: bool = True
    live_mouth: bool = True
    target_colours: bool = True
    target_skin: np.ndarray | None = None
    lift_forehead: bool = True
    target_expression: dict[str, float] | None = None
    inversion: InversionOptions = InversionOptions()

    def __post_init__(self):
        if not 0.0 <= self.strength <= 1.0:
            raise BadInputError(f"morph strength must be in [0, 1], got {self.strength}")
        if self.preset not in MORPH_MODES:
            raise BadInputError(f"unknown morph preset {self.preset!r}; choose from {', '.join(MORPH_MODES)}")

    def with_(self, **changes) -> "LiveSettings":
        """A copy with some fields changed; the names of InversionOptions' fields change `inversion`'s."""
        names = {f.name for f in fields(InversionOptions)}
        inversion = {k: changes.pop(k) for k in list(changes) if k in names}
        if inversion:
            changes["inversion"] = replace(changes.get("inversion", self.inversion), **inversion)
        return replace(self, **changes)

    @property
    def paste_colours(self) -> float:
        """How far the paste-back moves the face's colours to the frame's (PasteOptions.color_match): all the way
        as the user, none at a target's full strength (with `target_colours`)."""
        return 1.0 - self.strength if self.target is not None and self.target_colours else 1.0

    @property
    def paste_skin(self) -> np.ndarray | None:
        """The colours the rest of the way goes to (PasteOptions.colours): the target photo's, while there is one."""
        return self.target_skin if self.target is not None else None

    def paste_options(self) -> PasteOptions:
        """How the live view pastes its face back: colours as paste_colours / paste_skin say; reenacting, the oval
        grows to the face's outline (MORPH_GROW) and its top rises toward the hairline (MORPH_LIFT) with strength."""
        reenacting = self.target is not None and self.preset == "reenact"
        return PasteOptions(color_match=self.paste_colours, colours=self.paste_skin,
                            grow=1.0 + MORPH_GROW * self.strength if reenacting else 1.0,
                            lift=MORPH_LIFT * self.strength if reenacting and self.lift_forehead else 0.0)

    def partial(self, t: float) -> "LiveSettings":
        """This edit a fraction `t` (0..1) of the way: the morph at t x its strength, the direction edits at t x
        their amounts; everything else (pose lock, preset) as is. partial(1) is the edit itself (sweep GIFs)."""
        return replace(self, strength=t * self.strength, amounts={k: t * v for k, v in self.amounts.items()})


@dataclass
class LiveResult:
    """One processed frame. `frame`: output (uint8 BGR, the input itself when no face was found);
    `wplus`: the smoothed inversion (1, 23, 512), `edited`: the W+ the shown face was rendered from;
    `timings`: ms per stage (STAGES) and "total"; `reused`: the shown face was rendered from an earlier frame's
    latent (the generator was skipped, or, rendering in the background, it has not caught up yet);
    `renders`: the pipeline's generator runs so far (their rate is how often the shown face changes);
    `face_frame`: the number (LivePipeline.frames) of the frame whose latent the shown face was rendered from,
    so a caller that knows when that frame was captured knows the capture-to-face latency; `inverted`: this frame
    was inverted (a paced loop skips frames the generator would not take: `wplus` is then the last inversion);
    `generator`: the synthesis model that renders this stream's faces now (LiveModels.refined_generator's while
    morphing toward a refined photo target)."""

    frame: np.ndarray
    face_found: bool
    timings: dict[str, float]
    wplus: np.ndarray | None = None
    edited: np.ndarray | None = None
    reused: bool = False
    face: Face | None = None
    crop: Crop | None = None
    message: str = ""
    renders: int = 0
    face_frame: int = 0
    inverted: bool = True
    generator: str = ""


@dataclass
class LiveModels:
    """The models a pipeline needs, loaded once and shared (they are stateless): generator, encoder, the
    attribute directions (None when resources/models/directions.npz is missing: `directions_error` says why), the
    landmarker model's bytes (each pipeline makes its own VIDEO-mode landmarker from them), the skin-tone model
    (None when missing: `skin_tone_error` says why) and `refined_generator`: what renders a morph toward a refined
    photo target (LiveSettings.target_refined) when it is not `generator` (None: `generator` renders everything).
    The distilled live student renders the user, edits and built-in faces like the preview head at ~3x its rate,
    but a photo target's quality-mode latent lies off the encoder's manifold, where the student loses some people
    (Biden's photo: recognised on 114 of 306 frames against the preview head's 269 of 303, docs/BENCHMARKS.md), so
    such a latent renders with the preview head (`renders_with`) until `student_match` has fitted a latent of its
    own to the student (`target_cache`, Target.live_settings; docs/MORPH.md)."""

    generator: Generator
    encoder: Encoder
    encoder_path: Path
    landmarker_model: bytes
    directions: DirectionSet | None = None
    directions_error: str = ""
    skin_tone: SkinToneModel | None = None
    skin_tone_error: str = ""
    refined_generator: Generator | None = None
    student_match: StudentMatch | None = None  # fits photo targets to the live student (TargetCache.student)

    @classmethod
    def load(cls, threads: int = 2, encoder_path: str | os.PathLike | None = None,
             landmarker_model: str | os.PathLike | None = None, resolution: int | None = None,
             generator: str = "live") -> "LiveModels":
        """`generator` (LIVE_GENERATORS): "live", the distilled live-view student when shipped (else as "preview");
        "preview", the released network stopped at its 256-px head (else 1024 px); "full", the released network at
        `resolution` (default 1024). An explicit `resolution` other than 256 means the released network."""
        generator = load_live_generator(threads, generator, resolution)
        refined = load_live_generator(threads, "preview") if generator.name == LIVE_SYNTHESIS else None
        encoder, path = load_encoder(threads, encoder_path)
        lm_bytes = resolve_model("face_landmarker", explicit=landmarker_model).read_bytes()
        try:
            directions, why = DirectionSet.load(), ""
        except CelebLookError as exc:
            directions, why = None, str(exc)
        try:
            skin_tone, skin_why = SkinToneModel.load(), ""
        except CelebLookError as exc:
            skin_tone, skin_why = None, str(exc)
        match = StudentMatch.load(refined, directions, threads) \
            if refined is not None and directions is not None and _in_manifest(LIVE_REFINER) else None
        return cls(generator, encoder, path, lm_bytes, directions, why, skin_tone, skin_why, refined, match)

    def target_cache(self, landmarker, options: InversionOptions = InversionOptions(),
                     folder: str | os.PathLike | None = None,
                     fit: StudentFit | None = StudentFit()) -> TargetCache:
        """The cache of photo targets for this live view: inverted through `target_generator` and, refined, fitted
        to the live student (`student_match`, as `fit` says; None: not fitted) so that it renders them
        (Target.live_settings)."""
        return TargetCache(self.encoder, self.target_generator, landmarker, self.encoder_sha, folder=folder,
                           options=options, student=self.student_match, student_fit=fit)

    def renders_with(self, settings: "LiveSettings") -> Generator:
        """The generator that renders faces under `settings`: `refined_generator` while morphing toward a refined
        photo target, else `generator`."""
        refined = settings.target is not None and settings.target_refined and settings.strength > 0
        return self.refined_generator if refined and self.refined_generator is not None else self.generator

    @property
    def target_generator(self) -> Generator:
        """The generator that renders morphs toward photo targets, so the one their inversion (the skin match's
        closed loop) renders through."""
        return self.refined_generator or self.generator

    @property
    def encoder_sha(self) -> str:
        """The one pass's id (Encoder.one_pass_id): what calibrations and cached targets are tied to."""
        return self.encoder.one_pass_id or sha256_file(self.encoder_path)


def load_encoder(threads: int = 2, path: str | os.PathLike | None = None) -> tuple[Encoder, Path]:
    """The inversion encoder and its file. An explicit `path` (or $CELEBLOOK_ENCODER) is a development export
    the user chose: it is loaded as is, without the manifest's checksum; otherwise the shipped model."""
    path = path or os.environ.get(ENCODER_ENV) or None
    if path is None:
        resolved = resolve_model(ENCODER_MODEL) if _in_manifest(ENCODER_MODEL) else None
        if resolved is None:
            raise ModelMissingError(f"the inversion encoder ({ENCODER_MODEL}.onnx) is not in resources/models yet: "
                                    f"export one (python -m training.export.encoder --checkpoint CKPT --out-dir DIR) "
                                    f"and pass --encoder DIR/{ENCODER_MODEL}.onnx or set {ENCODER_ENV}")
        return Encoder.load(threads), resolved
    path = Path(path)
    if not path.is_file():
        raise ModelMissingError(f"encoder model not found: {path}")
    try:
        session = make_session(path, threads)
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelMissingError(f"cannot load the encoder model {path}: the file is damaged or truncated, or not an "
                                f"ONNX model ({first})") from exc
    meta = session.get_modelmeta().custom_metadata_map
    size = int(meta["input_size"]) if "input_size" in meta else int(session.get_inputs()[0].shape[-1])
    return Encoder(session, size, sha256=sha256_file(path)), path


LIVE_GENERATORS = ("live", "preview", "full")


def load_live_generator(threads: int, kind: str = "live", resolution: int | None = None) -> Generator:
    """The live view's generator (LiveModels.load)."""
    if kind not in LIVE_GENERATORS:
        raise BadInputError(f"unknown live generator {kind!r}; choose from {', '.join(LIVE_GENERATORS)}")
    if kind == "live" and resolution in (None, 256) and _in_manifest(LIVE_SYNTHESIS):
        return Generator.load(threads, resolution=256, live=True)
    if kind == "full":
        return Generator.load(threads, resolution=resolution or 1024)
    return Generator.load(threads, resolution=resolution or preview_resolution())


def preview_resolution() -> int:
    """256 when the 256-px preview generator is shipped (the live fast path), else 1024."""
    from engine.generator import SYNTHESIS_MODELS

    return 256 if _in_manifest(SYNTHESIS_MODELS[256]) else 1024


def _in_manifest(name: str) -> bool:
    from engine.models import load_manifest

    return name in load_manifest()


@dataclass
class _Render:
    latent: np.ndarray  # the edited W+ it came from
    face_bgr: np.ndarray  # generated face, BGR
    frame: int = 0  # the pipeline's frame number that latent came from

    @classmethod
    def of(cls, done: Rendered) -> "_Render":
        """A background render (its tag is the frame its latent came from)."""
        return cls(done.latent, done.face, done.tag or 0)


def motion_scores(face: Face) -> dict[str, float] | None:
    """What MediaPipe measured of the user's motion in this frame: expression scores and, with them, the head's
    yaw and pitch in degrees (the reenactment's drive, engine.edits.reenact); None without blendshapes."""
    if face.expression is None:
        return None
    pose = dict(zip(POSE_NAMES, face.pose[:2])) if face.pose is not None else {}
    return {**face.expression, **pose}


def rms(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square difference of two latents (W units)."""
    return float(np.sqrt(np.mean((np.asarray(a, np.float32) - np.asarray(b, np.float32)) ** 2)))


class LivePipeline:
    """Per-stream state (VIDEO-mode landmarker, the Inverter with its running identity state, filter states, the
    last render) over shared LiveModels."""

    def __init__(self, models: LiveModels, crop_size: int = 256, landmark_params: OneEuroParams = OneEuroParams(),
                 background_render: bool = False):
        """`background_render`: run the generator on its own thread (module docstring)."""
        self.models = models
        self.crop_size = crop_size
        self.landmark_params = landmark_params
        self.landmarker = FaceLandmarker(models.landmarker_model, video=True, max_faces=1, expressions=True, pose=True)
        self.frames = 0
        self._sync_renders = 0
        self._last_call: float | None = None  # when process() last started (time.perf_counter)
        self._period: float | None = None  # running mean of the time between process() calls (s)
        self._waited = False  # the last call waited for a render (a stream's first face): its gap is no period
        self._invert_s = 0.0  # running mean of an inversion's time, encoder to submitted latent (s)
        self._frame_gap = 0.0  # the least time between frames the last settings asked for (frame_wait)
        self._generator = models.generator  # what renders this stream's faces now (_use_generator)
        self._renderer = BackgroundRenderer(self._render_bgr) if background_render else None
        # everything from the crop to the corrected W+ (with background rendering, the identity feedback's renders
        # and measurements run on a thread of their own)
        self.inverter = Inverter(models.encoder, models.generator, models.skin_tone,
                                 landmarker_model=models.landmarker_model, background=background_render)
        self.reset()

    @property
    def renders(self) -> int:
        """Generator runs so far."""
        return self._sync_renders + (self._renderer.renders if self._renderer else 0)

    def reset(self) -> None:
        """Forget the temporal state (filters, last render); the landmarker keeps its timestamp order."""
        self._face_state: OneEuroState | None = None
        self._latent_state: OneEuroState | None = None
        self._render: _Render | None = None
        self._wplus: np.ndarray | None = None  # the last inversion (smoothed) of this face
        self._inverted_frame = self.frames  # the frame it came from
        self._submitted: np.ndarray | None = None
        self._crop_points: dict[int, np.ndarray] = {}  # frame -> the user's landmarks in that frame's crop
        self._motion_ref: MotionReference | None = None  # the user at rest (the reenactment's reference)
        self._expression: dict[str, float] | None = None  # this frame's expression scores (engine.landmarks)
        self.inverter.reset()
        if self._renderer is not None:
            self._renderer.clear()

    def _render_bgr(self, latent: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(self._generator.render(latent), cv2.COLOR_RGB2BGR)

    def _use_generator(self, settings: LiveSettings) -> None:
        """Render with LiveModels.renders_with(settings); on a change the last face is forgotten, so no face of one
        generator is shown as the other's (the next frame waits for its first render, as a stream's first frame
        does)."""
        wanted = self.models.renders_with(settings)
        if wanted is self._generator:
            return
        self._generator, self._render, self._submitted = wanted, None, None
        if self._renderer is not None:
            self._renderer.clear()

    def process(self, frame_bgr: np.ndarray, timestamp_ms: int, settings: LiveSettings = LiveSettings()) -> LiveResult:
        timings = {k: 0.0 for k in STAGES}
        t_start = clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] += 1000.0 * (now - clock)
            clock = now

        self.frames += 1
        self._note_frame_start(t_start)
        t = timestamp_ms / 1000.0
        faces = usable_faces(self.landmarker.detect_video(frame_bgr, timestamp_ms))
        if not faces:
            self.reset()
            lap("landmarks")
            timings["total"] = 1000.0 * (time.perf_counter() - t_start)
            return LiveResult(frame_bgr, False, timings, message="no face")
        face = faces[0]
        if settings.smooth_landmarks:
            face, self._face_state = smooth_face(self._face_state, face, t, self.landmark_params)
        else:
            self._face_state = None
        lap("landmarks")

        crop = align_face(frame_bgr, face, self.crop_size)
        points = cv2.transform(face.xy[None].astype(np.float32), crop.matrix)[0]  # crop pixels
        self._crop_points[self.frames] = points
        self._crop_points.pop(self.frames - CATCH_UP_FRAMES, None)  # a few seconds of frames at most
        lap("align")

        self._use_generator(settings)
        inverted = not self._generator_busy(settings)
        if inverted:
            wplus = self.inverter.invert_frame(crop, face, self.frames, settings.inversion)
            lap("encode")

            wplus = self._smooth_latent(wplus, t, settings)
            scores = motion_scores(face)
            self._motion_ref = motion_reference_step(self._motion_ref, wplus, MOTION_WINDOW, scores,
                                                     frames=self.frames - self._inverted_frame)
            self._expression = scores
            self._wplus, self._inverted_frame = wplus, self.frames
            edited = self.edit(wplus, settings)
            lap("edit")

            if self._renderer is not None:
                invert_s = (timings["encode"] + timings["edit"]) / 1000.0
                self._invert_s += PERIOD_WEIGHT * (invert_s - self._invert_s)
                render, reused = self._render_in_background(edited, settings)
            else:
                render = self._render
                reused = bool(settings.reuse and render is not None
                              and rms(edited, render.latent) < settings.reuse_threshold)
                if not reused:
                    render = self._render = _Render(edited, self._render_bgr(edited), self.frames)
                    self._sync_renders += 1
        else:
            wplus, render, reused = self._wplus, _Render.of(self._renderer.latest()), True
        lap("generate")

        face_bgr = render.face_bgr
        then = self._crop_points.get(render.frame)
        scale = face_bgr.shape[0] / self.crop_size  # crop pixels to the face image's
        if settings.catch_up and render.frame != self.frames and then is not None:
            face_bgr = catch_up(face_bgr, then * scale, points * scale)
        share = 1.0 - settings.strength if settings.target is not None else 1.0  # the user's own mouth: all of it
        if settings.live_mouth and share > 0.0:  # as themselves, none of it at a target's full strength
            face_bgr = live_mouth(face_bgr, crop.image, points * scale, share)
        side = float(np.hypot(*(crop.quad[3] - crop.quad[0])))
        size = int(min(face_bgr.shape[0], max(64, math.ceil(side))))
        face_img = cv2.resize(face_bgr, (size, size), interpolation=cv2.INTER_AREA)
        out = paste_back(frame_bgr, face_img, crop, face, settings.paste_options())
        lap("paste")
        timings["total"] = 1000.0 * (time.perf_counter() - t_start)
        mean_ms = self._renderer.mean_ms if self._renderer is not None else None
        paced = settings.pace and settings.frames_per_refresh > 0 and mean_ms is not None
        self._frame_gap = mean_ms / 1000.0 / settings.frames_per_refresh if paced else 0.0
        return LiveResult(out, True, timings, wplus=wplus, edited=render.latent, reused=reused, face=face, crop=crop,
                          renders=self.renders, face_frame=render.frame, inverted=inverted,
                          generator=self._generator.name)

    def _note_frame_start(self, t_start: float) -> None:
        """The pacing's running mean of the time between frames (a gap after a call that waited for a stream's
        first face is not a frame period)."""
        if self._last_call is not None and not self._waited:
            gap = t_start - self._last_call
            self._period = gap if self._period is None else self._period + PERIOD_WEIGHT * (gap - self._period)
        self._last_call, self._waited = t_start, False

    def frame_wait(self) -> float:
        """Seconds the caller should let pass before handing in the next frame (0: at once). Paced with background
        rendering, the loop takes at most `frames_per_refresh` frames per face refresh (the generator's running mean
        render time): where the loop and the generator share the CPU, every frame beyond that re-pastes the same face
        and slows the generator (docs/BENCHMARKS.md); where the CPU is fast enough, the limit lies above the
        camera's rate."""
        if not self._frame_gap or self._last_call is None:
            return 0.0
        return max(0.0, self._last_call + self._frame_gap - time.perf_counter())

    def _generator_busy(self, settings: LiveSettings) -> bool:
        """Paced (settings.pace, background rendering, a face already shown): the generator will still be busy when
        the next frame's latent would be ready (a frame period and an inversion from now), so this frame's latent
        would be replaced before the generator reads it."""
        if not settings.pace or self._renderer is None or self._wplus is None or self._period is None:
            return False
        return self._renderer.latest() is not None and self._renderer.free_in() > self._period + self._invert_s

    def _render_in_background(self, edited: np.ndarray, settings: LiveSettings) -> tuple[_Render, bool]:
        """Submit `edited` unless reuse says the face has not changed, and return the newest finished face (waiting
        only for the first one of a stream) and whether it comes from an earlier latent."""
        if not settings.reuse or self._submitted is None or rms(edited, self._submitted) >= settings.reuse_threshold:
            self._renderer.submit(edited, tag=self.frames)
            self._submitted = edited
        done = self._renderer.latest()
        if done is None:
            done, self._waited = self._renderer.wait(), True
        if done is None:
            raise CelebLookError("the background render did not finish within 30 s")
        return _Render.of(done), not np.array_equal(done.latent, edited)

    def _smooth_latent(self, wplus: np.ndarray, t: float, settings: LiveSettings) -> np.ndarray:
        if not settings.smooth_latents:
            self._latent_state = None
            return wplus
        f = settings.latent_filter
        state = self._latent_state
        if f.mode == "ema":
            value = wplus if state is None else state.value + f.ema_alpha * (wplus - state.value)
            self._latent_state = OneEuroState(value=np.asarray(value, np.float64), derivative=np.zeros(0), t=t)
        else:
            params = OneEuroParams(min_cutoff=f.min_cutoff, beta=f.beta, d_cutoff=f.d_cutoff)
            self._latent_state = one_euro_step(state, wplus, t, params)
        return self._latent_state.value.astype(np.float32)

    def edit(self, wplus: np.ndarray, settings: LiveSettings) -> np.ndarray:
        """The edit that process() applies to the user's W+ (morph with this stream's motion reference, pose lock,
        direction edits): the live view's own, for anything that must match it (the desktop's sweep GIF)."""
        out = to_wplus(wplus)
        if settings.target is not None and settings.strength > 0:
            lock = self.models.directions if settings.pose_lock else None
            if settings.preset == "reenact":
                ref = self._motion_ref
                drive = ref is not None and lock is not None and settings.drive_expression
                change = ref.expression_change(self._expression) if drive else None
                rest = resting_mouth_change(ref.expression, settings.target_expression, lock) if drive else None
                out = reenact(out, settings.target, settings.strength, None if ref is None else ref.mean,
                              directions=lock, expression=change, how=settings.reenactment, rest_change=rest)
            else:
                out = morph(out, settings.target, settings.strength, settings.preset, pose_lock=lock)
        amounts = {k: v for k, v in settings.amounts.items() if v}
        if amounts:
            if self.models.directions is None:
                raise ModelMissingError(f"edits need the attribute directions: {self.models.directions_error}")
            out = self.models.directions.apply(out, **amounts)
        return out

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self.landmarker.close()
        self.inverter.close()

    def __enter__(self) -> "LivePipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
