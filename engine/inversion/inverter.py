"""The Inverter: a face's aligned crop -> its corrected W+, for the live loop and for stills alike.

It owns what turns a face into W+: the encoder network and the corrections it loaded (engine/inversion/encoder.py,
engine/inversion/corrections/), the person's calibration (engine/inversion/calibration.py), the skin match
(engine/inversion/skin_tone.py), the quality mode for stills (engine/inversion/refine.py) and, for a live stream,
the running identity state (the face's mean recognition embedding and the identity feedback's mean change). How is
said by one InversionOptions; the live loop passes it in LiveSettings.inversion, stills (`celeblook invert`,
engine.photo_edit.PhotoEditor, engine.inversion.targets.TargetCache) directly.

The live order (`invert_frame`, one frame of a stream; cheap, every frame):
    one pass (network + landmark and identity corrections, the identity read from the running mean embedding)
    -> identity feedback (the running mean of changes measured on renders every FEEDBACK_EVERY frames; not with a
       calibration) -> calibration (its first LIVE_SLOTS slots with the preview head) -> predicted skin match.
The still order (`invert_photo`, one photo; seconds are fine):
    one pass (the embedding of this very photo) -> calibration (all slots: stills render at 1024 px) -> quality mode
    (`quality_steps` of latent optimisation, engine/inversion/refine.py) -> predicted skin match -> the closed loop
    on the rendered reconstruction (`skin_passes` of the rendered skin's CIELAB and `identity_passes` of the
    identity feedback, one render each; the feedback only without the quality mode and a calibration, which
    already move the one pass toward the person: `feedback_passes`).
They differ on purpose: a frame cannot wait for the quality mode or a render per correction, so the live loop
spreads the feedback over frames (a person's identity does not change between frames) and leaves out the quality
mode, while a still is inverted once and pays for both. The network, the corrections, the calibration offset and
the skin model are the same in both.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from engine.align import Crop, align_face, crop_points
from engine.inversion.calibration import LIVE_SLOTS, IdentityCalibration
from engine.inversion.encoder import ClosedLoop, Encoder, Inversion, detect_face, render_closed_loop
from engine.inversion.refine import Refiner, refine_latent
from engine.inversion.skin_tone import SkinToneModel, face_oval_mask, skin_lab
from engine.landmarks import Face, FaceLandmarker

IDENTITY_EVERY = 8  # frames between refreshes of the face's recognition embedding (Inverter._identity_embedding)
IDENTITY_WINDOW = 8  # refreshes the running mean of that embedding spans
FEEDBACK_EVERY = 32  # frames between identity-feedback measurements (a render each; Inverter._identity_feedback)


@dataclass(frozen=True)
class InversionOptions:
    """How a face is inverted (Inverter); the defaults are the app's and the commands'."""

    correct_landmarks: bool = True  # add the encoder's corrections (landmark and identity, those it has loaded)
    identity_feedback: bool = True  # with those and without a calibration, add the encoder's identity feedback
    identity_passes: int = 1  # stills: closed-loop passes of that feedback (one render each; live: amortised)
    match_skin: bool = True  # move W+ so the skin's chroma matches the face's (needs the Inverter's skin model)
    skin_passes: int = 1  # stills: closed-loop passes of that match on the rendered skin (one render each)
    quality_steps: int = 0  # stills: quality-mode steps after the one pass (engine/inversion/refine.py; seconds)
    calibration: IdentityCalibration | None = None  # the person's calibration, added to the one pass


def _lower_priority() -> None:
    """Make the calling thread yield the CPU to the others (Linux: threads have their own nice value); elsewhere
    nothing happens."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class Inverter:
    """A face -> W+ with the encoder's corrections, the calibration and the skin match (module docstring: the live
    and the still order). `generator` renders the identity feedback's measurements and the stills' closed loop;
    `skin_tone`: the skin model (None: no skin match); `refiner`: the quality mode's objective (None: loaded on the
    first still that asks for it). For a live stream (`invert_frame`), `landmarker_model` (the landmarker's bytes)
    makes the identity feedback's IMAGE-mode landmarker and `background` runs its renders and measurements on a
    thread of their own; one Inverter follows one stream (`reset` when the face is lost, `close` at the end)."""

    def __init__(self, encoder: Encoder, generator=None, skin_tone: SkinToneModel | None = None,
                 refiner: Refiner | None = None, landmarker_model: bytes | None = None, background: bool = False):
        self.encoder, self.generator, self.skin_tone, self.refiner = encoder, generator, skin_tone, refiner
        self.landmarker_model = landmarker_model
        # the identity feedback's IMAGE-mode landmarker, made before the first face so it does not wait for its
        # set-up; with background rendering the feedback's render and measurement run on their own thread, at a
        # lower priority (the frame loop and the shown face come first), and so does the landmarker's set-up
        self._still_landmarker: FaceLandmarker | None = None
        self._feedback_pool = self._feedback_job = None
        if landmarker_model is not None and encoder.feedback is not None:
            if background:
                self._feedback_pool = ThreadPoolExecutor(1, "identity-feedback", initializer=_lower_priority)
                self._feedback_job = self._feedback_pool.submit(self._make_still_landmarker)
            else:
                self._make_still_landmarker()
        self.reset()

    # --- both --------------------------------------------------------------------------------------------------
    def one_pass(self, crop: Crop, face: Face, options: InversionOptions,
                 embedding: np.ndarray | None = None) -> np.ndarray:
        """The network's W+ (1, 23, 512), plus its corrections unless `options.correct_landmarks` is off
        (Encoder.invert_face, reading the recognition `embedding` when given)."""
        if not options.correct_landmarks:
            return self.encoder.invert(crop.image)
        return self.encoder.invert_face(crop, face, embedding)

    def match_skin(self, wplus: np.ndarray, crop: Crop, face: Face, options: InversionOptions) -> np.ndarray:
        """The predicted skin match (no render) to the crop's face oval, when asked for and the model is loaded."""
        if not options.match_skin or self.skin_tone is None:
            return wplus
        return self.skin_tone.match(wplus, skin_lab(crop.image, face_oval_mask(face, crop)))

    # --- stills ------------------------------------------------------------------------------------------------
    def feedback_passes(self, options: InversionOptions) -> int:
        """How many identity-feedback passes `invert_photo` runs: none without the encoder's feedback or with it
        off, and none after the quality mode or with a calibration (both already move the one pass toward the
        person; the feedback was fitted for the one pass alone, and on top of them it is not measured)."""
        off = self.encoder.feedback is None or not options.identity_feedback
        return 0 if off or options.quality_steps > 0 or options.calibration is not None else options.identity_passes

    def quality_refiner(self) -> Refiner:
        """The quality mode's objective (loaded once, sharing the generator when it is the 1024-px one)."""
        if self.refiner is None:
            self.refiner = Refiner.load(full=self.generator)
        return self.refiner

    def invert_photo(self, image_bgr: np.ndarray, landmarker, options: InversionOptions = InversionOptions(),
                     size: int = 256, source: str = "the image", face: Face | None = None) -> Inversion:
        """Photo (uint8 BGR) -> Inversion of its largest face (NoFaceError when there is none; `face`: that face when
        the caller found it), in the still order (module docstring); `landmarker` (IMAGE mode) re-aligns the
        renders. The quality mode has the recogniser in its objective (engine/inversion/refine.py)."""
        enc = self.encoder
        face = face or detect_face(image_bgr, landmarker, source)
        crop = align_face(image_bgr, face, size)
        embedding = enc.face_embedding(crop, face) if enc.correction is not None and options.correct_landmarks \
            else None
        wplus = self.one_pass(crop, face, options, embedding)
        if options.calibration is not None:
            wplus = options.calibration.apply(wplus)
        if options.quality_steps > 0:
            wplus = refine_latent(self.quality_refiner(), crop.image, wplus, options.quality_steps,
                                  points=crop_points(face, crop))[0]
        loop = ClosedLoop(skin_passes=options.skin_passes, identity_passes=self.feedback_passes(options))
        if options.match_skin and self.skin_tone is not None:
            loop.skin_tone, loop.mask = self.skin_tone, face_oval_mask(face, crop)
            loop.lab = skin_lab(crop.image, loop.mask)
            wplus = self.skin_tone.match(wplus, loop.lab)
        if enc.feedback is not None and embedding is not None:
            loop.encoder, loop.embedding = enc, embedding
        wplus, render, recon, ok = render_closed_loop(self.generator, landmarker, wplus, size, loop)
        warnings = [] if ok else ["no face found in the reconstruction; it is shown in the generator's own framing"]
        return Inversion(face, crop, wplus, recon, render, ok, warnings)

    # --- a live stream -----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the face (its running identity state)."""
        self._mean_identity: np.ndarray | None = None  # running mean of the face's recognition embeddings
        self._identity: np.ndarray | None = None  # that mean at unit length (what the correction reads)
        self._identity_n = 0
        # the frames of the last embedding refresh and feedback measurement: the next is due on the first frame
        # inverted past the next multiple of IDENTITY_EVERY / FEEDBACK_EVERY (a paced loop skips frames)
        self._identity_frame = 0
        self._feedback_frame = 0
        self._feedback: np.ndarray | None = None  # running mean of the identity feedback's W+ changes (23, 512)
        self._feedback_n = 0
        self._feedback_job = None  # a measurement still running belongs to the face just lost: its result is dropped

    def invert_frame(self, crop: Crop, face: Face, frame: int, options: InversionOptions) -> np.ndarray:
        """Frame number `frame` of the stream (the stream's count, frames without a face included; a paced loop
        may skip frames) -> W+ (1, 23, 512), in the live order (module docstring)."""
        embedding = self._identity_embedding(crop, face, frame) if options.correct_landmarks else None
        wplus = self.one_pass(crop, face, options, embedding)
        if options.correct_landmarks and options.identity_feedback and options.calibration is None:
            wplus = self._identity_feedback(wplus, frame)
        if options.calibration is not None:  # the preview head blurs the offset's fine slots
            slots = LIVE_SLOTS if self.generator.resolution < 1024 else None
            wplus = options.calibration.apply(wplus, slots)
        return self.match_skin(wplus, crop, face, options)

    def _identity_embedding(self, crop: Crop, face: Face, frame: int) -> np.ndarray | None:
        """The identity correction's input for this frame: the recogniser's embeddings of the face averaged over
        its refreshes, one every IDENTITY_EVERY frames (a person's identity does not change between frames; the
        recogniser costs ≈ 6-8 ms, more than the encoder): a plain mean over the first IDENTITY_WINDOW refreshes,
        then an exponential one with that weight, renormalised to unit length as the correction was fitted on;
        forgotten with the face (reset)."""
        enc = self.encoder
        if enc.identity is None:
            return None
        if self._identity is None or frame // IDENTITY_EVERY > self._identity_frame // IDENTITY_EVERY:
            self._identity_frame = frame
            e = enc.face_embedding(crop, face)
            self._identity_n = min(self._identity_n + 1, IDENTITY_WINDOW)
            self._mean_identity = e if self._identity is None else \
                self._mean_identity + (e - self._mean_identity) / self._identity_n
            self._identity = self._mean_identity / max(float(np.linalg.norm(self._mean_identity)), 1e-8)
        return self._identity

    def _identity_feedback(self, wplus: np.ndarray, frame: int) -> np.ndarray:
        """The one pass plus the identity feedback's change: on the face's first frame and then every FEEDBACK_EVERY
        frames (with an embedding refresh) this frame's one pass is rendered at the live resolution and the encoder's
        identity feedback reads the recogniser's difference between the face (its running mean embedding) and that
        render; the changes are averaged like the embedding (plain mean over IDENTITY_WINDOW measurements, then
        exponential). Each measurement is one more generator run, a landmark pass and the recogniser (≈ 110 ms of
        CPU at 1 thread), hence rarer than the embedding's refresh (a person's identity does not change; on every
        8th frame it slowed the app on 2 cores: docs/ENCODER.md); with background rendering they run on their own
        thread (the frame loop never waits; the change arrives a few frames later), else in the frame. Forgotten
        with the face (reset)."""
        if self.encoder.feedback is None or self._identity is None:
            return wplus
        job = self._feedback_job
        if job is not None and job.done():
            self._feedback_job = None
            self._add_feedback(job.result())
        due = self._feedback is None or frame // FEEDBACK_EVERY > self._feedback_frame // FEEDBACK_EVERY
        if due and self._feedback_job is None:
            self._feedback_frame = frame
            if self._feedback_pool is None:
                self._add_feedback(self._measure_feedback(wplus, self._identity))
            else:
                self._feedback_job = self._feedback_pool.submit(self._measure_feedback, wplus, self._identity)
        return wplus if self._feedback is None else (wplus + self._feedback[None]).astype(np.float32)

    def _make_still_landmarker(self) -> None:
        self._still_landmarker = FaceLandmarker(self.landmarker_model, video=False, max_faces=1)

    def _measure_feedback(self, wplus: np.ndarray, identity: np.ndarray) -> np.ndarray | None:
        render = cv2.cvtColor(self.generator.render(wplus), cv2.COLOR_RGB2BGR)
        return self.encoder.identity_step(identity, render, self._still_landmarker)

    def _add_feedback(self, delta: np.ndarray | None) -> None:
        if delta is not None:
            self._feedback_n = min(self._feedback_n + 1, IDENTITY_WINDOW)
            self._feedback = delta if self._feedback is None else \
                self._feedback + (delta - self._feedback) / self._feedback_n

    def close(self) -> None:
        """End the stream: the feedback's thread and landmarker."""
        if self._feedback_pool is not None:
            self._feedback_pool.shutdown(wait=True)
        if self._still_landmarker is not None:
            self._still_landmarker.close()


def invert_photo(image_bgr: np.ndarray, landmarker, encoder: Encoder, generator, size: int = 256,
                 source: str = "the image", options: InversionOptions = InversionOptions()) -> Inversion:
    """Inverter(encoder, generator).invert_photo: a photo's face without the skin model (no skin match)."""
    return Inverter(encoder, generator).invert_photo(image_bgr, landmarker, options, size, source)
