"""The live per-frame pipeline of the desktop app (and of any other front end): plain dataclasses, no Qt.

    frame --VIDEO-mode landmarks--> One-Euro (landmarks) --> FFHQ crop (256 px) --> encoder --> W+
          --> landmark correction (W+ moved by what the landmarks say the encoder missed, engine.landmark_correction)
          --> identity correction (what a face recogniser says it missed, engine.identity_correction) and identity
              feedback (what the recogniser sees differ between the face and its reconstruction, measured every
              FEEDBACK_EVERY frames, engine.identity_feedback)
          --> skin-tone match (W+ moved so the skin's chroma matches the crop's, engine.skin_tone)
          --> latent smoothing (One-Euro or EMA on W+) --> edits (morph toward the target, directions)
          --> generator (256-px preview model when shipped, else 1024 px; skipped when the edited W+ barely
              moved: the last face is reused)
          --> paste back into the frame

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
face's content refreshes at the generator's rate while landmarks of the next frames run beside it.
"""
from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from engine.align import Crop, align_face, usable_faces
from engine.calibration import LIVE_SLOTS, IdentityCalibration
from engine.background_render import BackgroundRenderer
from engine.edits import MORPH_MODES, DirectionSet, MotionReference, morph, motion_reference_step, reenact
from engine.encoder import MODEL_NAME as ENCODER_MODEL, Encoder
from engine.errors import BadInputError, CelebLookError, ModelMissingError
from engine.generator import Generator
from engine.landmarks import Face, FaceLandmarker
from engine.latents import to_wplus
from engine.models import resolve_model, sha256_file
from engine.onnx_session import make_session
from engine.paste import PasteOptions, paste_back
from engine.skin_tone import SkinToneModel, face_oval_mask, skin_lab
from engine.smoothing import OneEuroParams, OneEuroState, one_euro_step, smooth_face

STAGES = ("landmarks", "align", "encode", "edit", "generate", "paste")
ENCODER_ENV = "CELEBLOOK_ENCODER"  # a development encoder export (not checked against the manifest)
LATENT_SMOOTHING_MODES = ("one_euro", "ema")
IDENTITY_EVERY = 8  # frames between refreshes of the face's recognition embedding (LivePipeline._identity_embedding)
IDENTITY_WINDOW = 8  # refreshes the running mean of that embedding spans
FEEDBACK_EVERY = 32  # frames between identity-feedback measurements (a render each; LivePipeline._identity_feedback)
MORPH_GROW = 0.08  # the paste-back's face oval grows by this share at full morph strength (PasteOptions.grow)
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
    `strength` 0..1 and `preset` of the morph: "reenact" (the target's face moving like the user: engine.edits.reenact,
    from the user's running resting latent) or a per-slot mix (engine.edits.MORPH_PRESETS); `pose_lock`: keep the
    user's head pose along the yaw/pitch directions while morphing (docs/EDITS.md); `amounts`: direction edits in real
    units (e.g. {"yaw": 15, "smile": 0.5}, engine.edits.DirectionSet.apply); `smooth_latents` /
    `smooth_landmarks`: temporal filters on; `reuse`: skip the generator while the edited W+ moved less than
    `reuse_threshold` (RMS, W units) since the last render; `match_skin`: move the user's W+ so the skin's
    chroma matches the camera's (engine.skin_tone; needs the shipped model, LiveModels.skin_tone);
    `correct_landmarks`: add the encoder's corrections to its W+ (landmark and identity, those it has loaded;
    Encoder.invert_face); `identity_feedback`: with those and without a calibration, also add the encoder's identity
    feedback (a render of the one pass, compared with the face by the recogniser every FEEDBACK_EVERY frames;
    LivePipeline._identity_feedback);
    `calibration`: the user's personal calibration (engine.calibration), added to every frame's one pass."""

    target: np.ndarray | None = None
    strength: float = 0.8
    preset: str = "reenact"
    pose_lock: bool = True
    amounts: dict[str, float] = field(default_factory=dict)
    smooth_latents: bool = True
    smooth_landmarks: bool = True
    latent_filter: LatentSmoothing = LatentSmoothing()
    reuse: bool = True
    reuse_threshold: float = 0.01
    match_skin: bool = True
    correct_landmarks: bool = True
    identity_feedback: bool = True
    calibration: IdentityCalibration | None = None

    def __post_init__(self):
        if not 0.0 <= self.strength <= 1.0:
            raise BadInputError(f"morph strength must be in [0, 1], got {self.strength}")
        if self.preset not in MORPH_MODES:
            raise BadInputError(f"unknown morph preset {self.preset!r}; choose from {', '.join(MORPH_MODES)}")

    def with_(self, **changes) -> "LiveSettings":
        """A copy with some fields changed."""
        return replace(self, **changes)

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
    `renders`: the pipeline's generator runs so far (their rate is how often the shown face changes)."""

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


@dataclass
class LiveModels:
    """The models a pipeline needs, loaded once and shared (they are stateless): generator, encoder, the
    attribute directions (None when resources/models/directions.npz is missing: `directions_error` says why), the
    landmarker model's bytes (each pipeline makes its own VIDEO-mode landmarker from them) and the skin-tone model
    (None when missing: `skin_tone_error` says why)."""

    generator: Generator
    encoder: Encoder
    encoder_path: Path
    landmarker_model: bytes
    directions: DirectionSet | None = None
    directions_error: str = ""
    skin_tone: SkinToneModel | None = None
    skin_tone_error: str = ""

    @classmethod
    def load(cls, threads: int = 2, encoder_path: str | os.PathLike | None = None,
             landmarker_model: str | os.PathLike | None = None, resolution: int | None = None) -> "LiveModels":
        """`resolution`: generator output (1024, 512, 256); default: the fast 256-px preview when shipped."""
        generator = Generator.load(threads, resolution=resolution or preview_resolution())
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
        return cls(generator, encoder, path, lm_bytes, directions, why, skin_tone, skin_why)

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
        raise ModelMissingError(f"cannot load the encoder model {path}: {exc}") from exc
    meta = session.get_modelmeta().custom_metadata_map
    size = int(meta["input_size"]) if "input_size" in meta else int(session.get_inputs()[0].shape[-1])
    return Encoder(session, size, sha256=sha256_file(path)), path


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
    face_bgr: np.ndarray  # 1024-px generated face, BGR


def rms(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square difference of two latents (W units)."""
    return float(np.sqrt(np.mean((np.asarray(a, np.float32) - np.asarray(b, np.float32)) ** 2)))


def _lower_priority() -> None:
    """Make the calling thread yield the CPU to the others (Linux: threads have their own nice value); elsewhere
    nothing happens."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class LivePipeline:
    """Per-stream state (VIDEO-mode landmarker, filter states, the last render) over shared LiveModels."""

    def __init__(self, models: LiveModels, crop_size: int = 256, landmark_params: OneEuroParams = OneEuroParams(),
                 background_render: bool = False):
        """`background_render`: run the generator on its own thread (module docstring)."""
        self.models = models
        self.crop_size = crop_size
        self.landmark_params = landmark_params
        self.landmarker = FaceLandmarker(models.landmarker_model, video=True, max_faces=1)
        self.frames = 0
        self._sync_renders = 0
        self._renderer = BackgroundRenderer(self._render_bgr) if background_render else None
        # the identity feedback's IMAGE-mode landmarker, made before the first face so it does not wait for its
        # set-up; with background rendering the feedback's render and measurement run on their own thread, at a
        # lower priority (the frame loop and the shown face come first), and so does the landmarker's set-up
        self._still_landmarker: FaceLandmarker | None = None
        self._feedback_pool = self._feedback_job = None
        if models.encoder.feedback is not None:
            if background_render:
                self._feedback_pool = ThreadPoolExecutor(1, "identity-feedback", initializer=_lower_priority)
                self._feedback_job = self._feedback_pool.submit(self._make_still_landmarker)
            else:
                self._make_still_landmarker()
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
        self._submitted: np.ndarray | None = None
        self._mean_identity: np.ndarray | None = None  # running mean of the face's recognition embeddings
        self._identity: np.ndarray | None = None  # that mean at unit length (what the correction reads)
        self._identity_n = 0
        self._feedback: np.ndarray | None = None  # running mean of the identity feedback's W+ changes (23, 512)
        self._feedback_n = 0
        self._motion_ref: MotionReference | None = None  # the user's resting W+ (the reenactment's reference)
        self._feedback_job = None  # a measurement still running belongs to the face just lost: its result is dropped
        if self._renderer is not None:
            self._renderer.clear()

    def _render_bgr(self, latent: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(self.models.generator.render(latent), cv2.COLOR_RGB2BGR)

    def process(self, frame_bgr: np.ndarray, timestamp_ms: int, settings: LiveSettings = LiveSettings()) -> LiveResult:
        timings = {k: 0.0 for k in STAGES}
        t_start = clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] += 1000.0 * (now - clock)
            clock = now

        self.frames += 1
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
        lap("align")

        enc = self.models.encoder
        wplus = enc.invert_face(crop, face, self._identity_embedding(crop, face)) if settings.correct_landmarks \
            else enc.invert(crop.image)
        if settings.correct_landmarks and settings.identity_feedback and settings.calibration is None:
            wplus = self._identity_feedback(wplus)
        if settings.calibration is not None:  # the preview head blurs the offset's fine slots
            slots = LIVE_SLOTS if self.models.generator.resolution < 1024 else None
            wplus = settings.calibration.apply(wplus, slots)
        if settings.match_skin and self.models.skin_tone is not None:
            wplus = self.models.skin_tone.match(wplus, skin_lab(crop.image, face_oval_mask(face, crop)))
        lap("encode")

        wplus = self._smooth_latent(wplus, t, settings)
        self._motion_ref = motion_reference_step(self._motion_ref, wplus, MOTION_WINDOW)
        edited = self._edit(wplus, settings)
        lap("edit")

        if self._renderer is not None:
            render, reused = self._render_in_background(edited, settings)
        else:
            render = self._render
            reused = bool(settings.reuse and render is not None and rms(edited, render.latent) < settings.reuse_threshold)
            if not reused:
                render = self._render = _Render(edited, self._render_bgr(edited))
                self._sync_renders += 1
        lap("generate")

        side = float(np.hypot(*(crop.quad[3] - crop.quad[0])))
        size = int(min(render.face_bgr.shape[0], max(64, math.ceil(side))))
        face_img = cv2.resize(render.face_bgr, (size, size), interpolation=cv2.INTER_AREA)
        grow = 1.0 + MORPH_GROW * settings.strength if settings.target is not None else 1.0
        out = paste_back(frame_bgr, face_img, crop, face, PasteOptions(grow=grow))
        lap("paste")
        timings["total"] = 1000.0 * (time.perf_counter() - t_start)
        return LiveResult(out, True, timings, wplus=wplus, edited=render.latent, reused=reused, face=face, crop=crop,
                          renders=self.renders)

    def _render_in_background(self, edited: np.ndarray, settings: LiveSettings) -> tuple[_Render, bool]:
        """Submit `edited` unless reuse says the face has not changed, and return the newest finished face (waiting
        only for the first one of a stream) and whether it comes from an earlier latent."""
        if not settings.reuse or self._submitted is None or rms(edited, self._submitted) >= settings.reuse_threshold:
            self._renderer.submit(edited)
            self._submitted = edited
        done = self._renderer.latest() or self._renderer.wait()
        if done is None:
            raise CelebLookError("the background render did not finish within 30 s")
        return _Render(done.latent, done.face), not np.array_equal(done.latent, edited)

    def _identity_embedding(self, crop, face) -> np.ndarray | None:
        """The identity correction's input for this frame: the recogniser's embeddings of the face averaged over
        its refreshes, one every IDENTITY_EVERY frames (a person's identity does not change between frames; the
        recogniser costs ≈ 6-8 ms, more than the encoder): a plain mean over the first IDENTITY_WINDOW refreshes,
        then an exponential one with that weight, renormalised to unit length as the correction was fitted on;
        forgotten with the face (reset)."""
        enc = self.models.encoder
        if enc.identity is None:
            return None
        if self._identity is None or self.frames % IDENTITY_EVERY == 0:
            e = enc.face_embedding(crop, face)
            self._identity_n = min(self._identity_n + 1, IDENTITY_WINDOW)
            self._mean_identity = e if self._identity is None else \
                self._mean_identity + (e - self._mean_identity) / self._identity_n
            self._identity = self._mean_identity / max(float(np.linalg.norm(self._mean_identity)), 1e-8)
        return self._identity

    def _identity_feedback(self, wplus: np.ndarray) -> np.ndarray:
        """The one pass plus the identity feedback's change: on the face's first frame and then every FEEDBACK_EVERY
        frames (with an embedding refresh) this frame's one pass is rendered at the live resolution and the encoder's
        identity feedback reads the recogniser's difference between the face (its running mean embedding) and that
        render; the changes are averaged like the embedding (plain mean over IDENTITY_WINDOW measurements, then
        exponential). Each measurement is one more generator run, a landmark pass and the recogniser (≈ 110 ms of
        CPU at 1 thread), hence rarer than the embedding's refresh (a person's identity does not change; on every
        8th frame it slowed the app on 2 cores: docs/ENCODER.md); with background rendering they run on their own
        thread (the frame loop never waits; the change arrives a few frames later), else in the frame. Forgotten
        with the face (reset)."""
        enc = self.models.encoder
        if enc.feedback is None or self._identity is None:
            return wplus
        job = self._feedback_job
        if job is not None and job.done():
            self._feedback_job = None
            self._add_feedback(job.result())
        if (self._feedback is None or self.frames % FEEDBACK_EVERY == 0) and self._feedback_job is None:
            if self._feedback_pool is None:
                self._add_feedback(self._measure_feedback(wplus, self._identity))
            else:
                self._feedback_job = self._feedback_pool.submit(self._measure_feedback, wplus, self._identity)
        return wplus if self._feedback is None else (wplus + self._feedback[None]).astype(np.float32)

    def _make_still_landmarker(self) -> None:
        self._still_landmarker = FaceLandmarker(self.models.landmarker_model, video=False, max_faces=1)

    def _measure_feedback(self, wplus: np.ndarray, identity: np.ndarray) -> np.ndarray | None:
        return self.models.encoder.identity_step(identity, self._render_bgr(wplus), self._still_landmarker)

    def _add_feedback(self, delta: np.ndarray | None) -> None:
        if delta is not None:
            self._feedback_n = min(self._feedback_n + 1, IDENTITY_WINDOW)
            self._feedback = delta if self._feedback is None else \
                self._feedback + (delta - self._feedback) / self._feedback_n

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
        """The edit that process() applies to the user's W+ (morph, pose lock, direction edits): the live view's
        own, for anything that must match it (the desktop's sweep GIF)."""
        return self._edit(wplus, settings)

    def _edit(self, wplus: np.ndarray, settings: LiveSettings) -> np.ndarray:
        out = to_wplus(wplus)
        if settings.target is not None and settings.strength > 0:
            lock = self.models.directions if settings.pose_lock else None
            if settings.preset == "reenact":
                ref = self._motion_ref.mean if self._motion_ref is not None else None
                out = reenact(out, settings.target, settings.strength, ref, directions=lock)
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
        if self._feedback_pool is not None:
            self._feedback_pool.shutdown(wait=True)
        if self._still_landmarker is not None:
            self._still_landmarker.close()

    def __enter__(self) -> "LivePipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
