"""Inversion encoder over onnxruntime: an aligned face crop -> W+ (23 x 512) in one pass; photo -> reconstruction.

The model (`inversion_encoder.onnx`, training/export/encoder.py) takes `image` (B, 3, S, S) RGB in [0, 1], the
FFHQ-style aligned crop of engine.align resized to S, and returns `wplus` (B, 23, 512) and `embedding` (B, 512),
the unit-norm image embedding shared with the CLIP-distilled encoder (docs/ENCODER.md).

With the shipped model two corrections fitted for it are loaded too, and `invert_face` adds them: what the face's
MediaPipe landmarks say the encoder missed (engine/inversion/corrections/landmark.py), then what a face recogniser
trained on real faces says it still misses (engine/inversion/corrections/identity.py, with engine/face_id.py); and
the identity feedback fitted for that one pass (engine/inversion/corrections/feedback.py), which
`Encoder.identity_step` reads off a reconstruction.

The stills' closed loop lives here too (render_closed_loop, ClosedLoop): render W+, re-align the reconstruction with
the same FFHQ recipe (so it has the framing of `celeblook align`'s crop and can be pasted back with engine.paste),
and move W+ by what the skin model and the identity feedback measure on it. The whole photo path, in its order, is
engine.inversion.inverter.Inverter.invert_photo.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from engine.align import Crop, align_face, crop_points, require_usable_faces
from engine.errors import BadInputError
from engine.face_id import FaceId
from engine.inversion.corrections.identity import IDENTITY_CORRECTION_PATH, IdentityCorrection
from engine.inversion.corrections.feedback import IDENTITY_FEEDBACK_PATH, IdentityFeedback, reconstruction_embedding
from engine.inversion.corrections.landmark import LANDMARK_CORRECTION_PATH, LandmarkCorrection
from engine.landmarks import Face
from engine.models import load_manifest, resolve_model, sha256_file
from engine.onnx_session import make_session

MODEL_NAME = "inversion_encoder"


def _input_size(session) -> int:
    meta = session.get_modelmeta().custom_metadata_map
    if "input_size" in meta:
        return int(meta["input_size"])
    return int(session.get_inputs()[0].shape[-1])


@dataclass
class Encoder:
    """The shipped inversion encoder. Build it with Encoder.load(); `threads` = onnxruntime intra-op threads.
    `correction`: the landmark correction fitted for this model (None: the plain one pass); `identity` and
    `face_id`: the identity correction fitted for this model and that landmark correction, and the recogniser it
    reads (None: not applied); `feedback`: the identity feedback fitted for this one pass (None: not loaded);
    `sha256`: the model file's (what the corrections are tied to; "" when not known)."""

    session: object
    input_size: int
    correction: LandmarkCorrection | None = None
    sha256: str = ""
    identity: IdentityCorrection | None = None
    face_id: FaceId | None = None
    feedback: IdentityFeedback | None = None

    @classmethod
    def load(cls, threads: int = 0, path: str | os.PathLike | None = None,
             landmark_correction: bool = True, identity_correction: bool = True,
             identity_feedback: bool = True) -> "Encoder":
        """The encoder (an explicit `path` is a development export: not checked against the manifest sha256) and,
        unless `landmark_correction` is False, the shipped landmark correction when it was fitted for this very
        model (its meta names the encoder's sha256; a development export gets none); on top, unless
        `identity_correction` is False, the shipped identity correction when it was fitted for this model and
        that landmark correction (with the face recogniser it reads); on top of that, unless `identity_feedback`
        is False, the shipped identity feedback when it was fitted for exactly this one pass (`identity_step`)."""
        model = resolve_model(MODEL_NAME, path, verify=path is None)
        # the shipped model was just checked against the manifest's sha256; an explicit path is hashed
        sha = load_manifest()[MODEL_NAME].sha256 if path is None else sha256_file(model)
        correction = None
        if landmark_correction and LANDMARK_CORRECTION_PATH.is_file():
            fitted = LandmarkCorrection.load()
            if fitted.meta.get("encoder_sha256") == sha:
                correction = fitted
        identity = face_id = None
        if correction is not None and identity_correction and IDENTITY_CORRECTION_PATH.is_file():
            fitted = IdentityCorrection.load()
            if fitted.meta.get("encoder_sha256") == sha and \
                    fitted.meta.get("landmark_correction_sha256") == correction.sha256:
                identity, face_id = fitted, FaceId.load(threads)
        # with the recogniser running right after it, a spinning thread pool would slow both (make_session)
        session = make_session(model, threads, spin=face_id is None)
        encoder = cls(session, _input_size(session), correction, sha, identity, face_id)
        if identity is not None and identity_feedback and IDENTITY_FEEDBACK_PATH.is_file():
            fitted = IdentityFeedback.load()
            if fitted.meta.get("one_pass_id") == encoder.one_pass_id:
                encoder.feedback = fitted
        return encoder

    def with_identity(self, identity: IdentityCorrection, threads: int = 0) -> "Encoder":
        """This encoder with another identity correction (e.g. the fit on generated faces alone, the base that
        training/fit/identity_correction_real.py adds a real-photo term to), which must be fitted for this encoder
        and landmark correction; the recogniser is loaded (`threads`) when this encoder has none; the identity
        feedback stays only if it was fitted for the one pass that results."""
        if self.correction is None:
            raise BadInputError("this encoder has no landmark correction for an identity correction to sit on")
        if identity.meta.get("encoder_sha256") != self.sha256 or \
                identity.meta.get("landmark_correction_sha256") != self.correction.sha256:
            raise BadInputError("that identity correction was fitted for another encoder or landmark correction")
        out = replace(self, identity=identity, face_id=self.face_id or FaceId.load(threads), feedback=None)
        if self.feedback is not None and self.feedback.meta.get("one_pass_id") == out.one_pass_id:
            out.feedback = self.feedback
        return out

    @property
    def one_pass_id(self) -> str:
        """What `invert_face` computes, as an id: the model's sha256 and those of the corrections it adds (what
        calibrations and cached targets are tied to)."""
        parts = [self.sha256] + [c.sha256 for c in (self.correction, self.identity) if c is not None]
        return self.sha256 if len(parts) == 1 else hashlib.sha256("+".join(parts).encode()).hexdigest()

    def preprocess(self, crops_bgr: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """uint8 BGR aligned crop(s) (H, W, 3) or (B, H, W, 3) -> float32 (B, 3, S, S) RGB in [0, 1]."""
        crops = [crops_bgr] if isinstance(crops_bgr, np.ndarray) and crops_bgr.ndim == 3 else list(crops_bgr)
        out = []
        for c in crops:
            if not isinstance(c, np.ndarray) or c.dtype != np.uint8 or c.ndim != 3 or c.shape[2] != 3:
                raise BadInputError("the encoder takes uint8 BGR face crops of shape (H, W, 3)")
            s = self.input_size
            interp = cv2.INTER_AREA if c.shape[0] > s else cv2.INTER_LINEAR
            rgb = cv2.cvtColor(cv2.resize(c, (s, s), interpolation=interp), cv2.COLOR_BGR2RGB)
            out.append(rgb.transpose(2, 0, 1).astype(np.float32) / 255.0)
        return np.stack(out)

    def encode(self, crops_bgr: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Aligned crop(s) -> (W+ (B, 23, 512), embedding (B, 512))."""
        wplus, embedding = self.session.run(None, {"image": self.preprocess(crops_bgr)})
        return wplus, embedding

    def invert(self, crop_bgr: np.ndarray) -> np.ndarray:
        """One aligned crop -> W+ (1, 23, 512): the network alone."""
        return self.encode(crop_bgr)[0]

    def face_embedding(self, crop: Crop, face: Face) -> np.ndarray | None:
        """The recogniser's embedding of the face in its aligned crop (what the identity correction reads); None
        without an identity correction."""
        if self.identity is None:
            return None
        return self.face_id.embed(crop.image, crop_points(face, crop)[:, :2] * crop.size)

    def invert_face(self, crop: Crop, face: Face, embedding: np.ndarray | None = None) -> np.ndarray:
        """The aligned crop of `face` -> W+ (1, 23, 512): the network, plus the landmark and identity corrections
        when loaded. `embedding`: the face's recognition embedding when the caller has it (the live loop refreshes
        it every few frames: a person's identity does not change between frames); else computed here."""
        wplus = self.invert(crop.image)
        if self.correction is None:
            return wplus
        wplus = self.correction.apply(wplus, crop_points(face, crop))
        if self.identity is not None:
            embedding = self.face_embedding(crop, face) if embedding is None else embedding
            wplus = self.identity.apply(wplus, embedding)
        return wplus

    def identity_step(self, embedding: np.ndarray, recon_bgr: np.ndarray, landmarker) -> np.ndarray | None:
        """The identity feedback's change of W+ (23, 512) from the input face's recognition `embedding` and
        `recon_bgr`, the one pass's reconstruction (uint8 BGR; `landmarker` in IMAGE mode finds its face); None
        without the feedback or when no face is found in the reconstruction."""
        if self.feedback is None:
            return None
        recon_embedding = reconstruction_embedding(self.face_id, landmarker, recon_bgr)
        return None if recon_embedding is None else self.feedback.delta(embedding - recon_embedding)


@dataclass
class Inversion:
    """The result of inverting a photo's face: its crop and landmarks, the latent, the reconstruction
    (uint8 BGR, aligned like `crop`, `crop.size` px) and the full 1024-px render (BGR)."""

    face: Face
    crop: Crop
    wplus: np.ndarray
    reconstruction: np.ndarray
    render: np.ndarray
    realigned: bool = True
    warnings: list[str] = field(default_factory=list)


def realign_render(render_bgr: np.ndarray, landmarker, size: int) -> tuple[np.ndarray, bool]:
    """A generated face in the framing of engine.align's crop: the FFHQ-style crop of the render by its own
    landmarks; the plain resize (the generator's framing, nearly the same) when none is found."""
    faces = landmarker.detect(render_bgr)
    if faces:
        return align_face(render_bgr, faces[0], size, blur_padding=False).image, True
    return cv2.resize(render_bgr, (size, size), interpolation=cv2.INTER_AREA), False


def detect_face(image_bgr: np.ndarray, landmarker, source: str = "the image") -> Face:
    """The largest usable face of a photo, or NoFaceError with a plain message."""
    return require_usable_faces(landmarker.detect(image_bgr), source)[0]


@dataclass
class ClosedLoop:
    """What render_closed_loop matches on the rendered reconstruction: with `skin_tone`, the photo's skin CIELAB
    `lab` inside `mask` (the input's face oval) for `skin_passes` passes; with `encoder` (its identity feedback),
    the photo's recognition `embedding` for `identity_passes` passes."""

    skin_tone: object = None
    lab: np.ndarray | None = None
    mask: np.ndarray | None = None
    skin_passes: int = 1
    encoder: Encoder | None = None
    embedding: np.ndarray | None = None
    identity_passes: int = 1

    @property
    def matches_skin(self) -> bool:
        return self.skin_tone is not None and self.lab is not None and bool(np.all(np.isfinite(self.lab)))

    @property
    def matches_identity(self) -> bool:
        return self.encoder is not None and self.encoder.feedback is not None and self.embedding is not None

    def passes(self) -> int:
        return max(self.skin_passes if self.matches_skin else 0, self.identity_passes if self.matches_identity else 0)

    def step(self, i: int, wplus: np.ndarray, recon: np.ndarray, landmarker) -> np.ndarray | None:
        """Pass `i`'s W+ moved by what was measured on its reconstruction; None when nothing could be measured. The
        identity change comes first; the skin shift then also takes out the skin change the skin model predicts
        for it, so the two corrections made from one render do not undo each other."""
        from engine.inversion.skin_tone import LAB, skin_lab

        moved, changed = np.array(wplus, np.float32, copy=True), False
        if self.matches_identity and i < self.identity_passes:
            delta = self.encoder.identity_step(self.embedding, recon, landmarker)
            if delta is not None:
                moved = (moved + delta[None]).astype(np.float32)
                changed = True
        if self.matches_skin and i < self.skin_passes:
            predicted = self.skin_tone.predict(moved) - self.skin_tone.predict(wplus)
            moved = self.skin_tone.shift(moved, self.lab - skin_lab(recon, self.mask) - predicted, LAB)
            changed = True
        return moved if changed else None


def render_closed_loop(generator, landmarker, wplus: np.ndarray, size: int,
                       loop: ClosedLoop = ClosedLoop()) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Render W+ and re-align it into the crop's framing; then `loop.passes()` times measure the reconstruction
    (skin CIELAB, the recogniser's embedding), move W+ by both measured corrections at once and render again (a
    closed loop: it corrects what the one pass and the linear skin prediction miss, one render each). Returns
    (W+, full render BGR, reconstruction, whether the render's face was found); a pass whose render loses the face
    is dropped and ends the loop."""
    from engine.generator import to_uint8_rgb

    def render_realigned(w):
        full = cv2.cvtColor(to_uint8_rgb(generator.synthesize(w))[0], cv2.COLOR_RGB2BGR)
        return (full, *realign_render(full, landmarker, size))

    render, recon, ok = render_realigned(wplus)
    for i in range(loop.passes() if ok else 0):
        moved = loop.step(i, wplus, recon, landmarker)
        if moved is None:
            break
        moved_render, moved_recon, moved_ok = render_realigned(moved)
        if not moved_ok:
            break
        wplus, render, recon = moved, moved_render, moved_recon
    return wplus, render, recon, ok
