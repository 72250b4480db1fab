"""engine/inversion/corrections/identity.py: the shipped model, when the encoder loads it, what it does to real faces,
and a development fit (a real-photo term) in its place."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.align import align_face
from engine.inversion.encoder import MODEL_NAME, Encoder, realign_render
from engine.errors import BadInputError, ModelMissingError
from engine.generator import Generator, to_uint8_rgb
from engine.inversion.corrections.identity import IDENTITY_CORRECTION_PATH, IdentityCorrection
from engine.inversion.corrections.landmark import LandmarkCorrection
from engine.models import resolve_model, sha256_file
from engine.video import VideoReader


def test_shipped_model_belongs_to_the_shipped_one_pass(tmp_path):
    """Fitted for the shipped encoder and its landmark correction; loaded with the recogniser only on top of that
    landmark correction; a development export (another sha256) gets neither; the one pass's id follows it."""
    model = IdentityCorrection.load()
    assert model.meta["encoder_sha256"] == sha256_file(resolve_model(MODEL_NAME))
    assert model.meta["landmark_correction_sha256"] == LandmarkCorrection.load().sha256
    full = Encoder.load(threads=1)
    assert full.identity is not None and full.face_id is not None
    assert Encoder.load(threads=1, identity_correction=False).identity is None
    assert Encoder.load(threads=1, landmark_correction=False).identity is None
    ids = {full.one_pass_id, Encoder.load(threads=1, identity_correction=False).one_pass_id,
           Encoder.load(threads=1, landmark_correction=False).one_pass_id}
    assert len(ids) == 3, "calibrations and cached targets tell the three one passes apart"
    import onnx

    dev = onnx.load(str(resolve_model(MODEL_NAME)))
    onnx.helper.set_model_props(dev, {**{p.key: p.value for p in dev.metadata_props}, "note": "development export"})
    other = tmp_path / "dev_encoder.onnx"
    onnx.save(dev, str(other))
    assert Encoder.load(threads=1, path=other).identity is None


def test_delta_touches_only_the_used_slots_and_rejects_bad_embeddings():
    model = IdentityCorrection.load()
    rng = np.random.default_rng(0)
    e = model.x_mean + 0.05 * rng.normal(size=model.x_mean.shape).astype(np.float32)
    delta = model.delta(e / np.linalg.norm(e))
    assert delta.shape == (23, 512)
    assert np.all(delta[~model.slots] == 0) and np.abs(delta[model.slots]).max() > 0
    w = np.zeros((1, 23, 512), np.float32)
    np.testing.assert_allclose(model.apply(w, e, 0.5), 0.5 * model.delta(e)[None], atol=1e-6)
    with pytest.raises(BadInputError, match="1024-d"):
        model.delta(e[:128])
    with pytest.raises(BadInputError, match="finite"):
        model.delta(np.full_like(e, np.nan))


def test_missing_model_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(ModelMissingError, match="training.fit.identity_correction"):
        IdentityCorrection.load(tmp_path / "none.npz")
    assert IDENTITY_CORRECTION_PATH.is_file()


@pytest.mark.slow
def test_correction_brings_real_frames_closer_by_dlib(landmarker, videos_dir):
    """Three frames of d20.mp4 (1, 3, 5 s): the one pass with the identity correction is nearer each frame by dlib's
    face-recognition distance (an independent recogniser: the correction reads another network) than without it.
    Measured 0.648/0.668/0.703 -> 0.564/0.582/0.637."""
    from training.evaluate.dlib_judge import DlibIdentity

    gen, ident = Generator.load(threads=2), DlibIdentity()
    with_id, without = Encoder.load(threads=2), Encoder.load(threads=2, identity_correction=False)
    with VideoReader(videos_dir / "d20.mp4") as video:
        frames = [(f.image, f.timestamp_ms / 1000.0) for f in video]
    gains = []
    for t in (1.0, 3.0, 5.0):
        frame = min(frames, key=lambda f: abs(f[1] - t))[0]
        face = landmarker.detect(frame)[0]
        crop = align_face(frame, face, 256)

        def distance(enc):
            render = cv2.cvtColor(to_uint8_rgb(gen.synthesize(enc.invert_face(crop, face)))[0], cv2.COLOR_RGB2BGR)
            return ident.distance(crop.image, realign_render(render, landmarker, 256)[0])[0]

        gains.append(distance(without) - distance(with_id))
    assert min(gains) > 0 and np.mean(gains) > 0.04, gains


def test_a_real_photo_term_adds_to_the_shipped_map_as_one_correction():
    """training/fit/identity_correction_real.py appends the term's columns: the combined correction moves a face by
    exactly the shipped change plus the term's, for any embedding."""
    from training.fit.identity_correction_real import with_term

    base = IdentityCorrection.load()
    rng = np.random.default_rng(0)
    f, k, t = base.x_mean.size, 8, base.coef.shape[1]
    term = {"x_mean": rng.standard_normal(f).astype(np.float32), "proj": rng.standard_normal((f, k)).astype(np.float16),
            "coef": (0.01 * rng.standard_normal((k, t))).astype(np.float16),
            "bias": (0.1 * rng.standard_normal(t)).astype(np.float32)}
    both = IdentityCorrection(**with_term(base, term), meta=base.meta)
    x = rng.standard_normal((3, f)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    own = term["bias"] + ((x - term["x_mean"]) @ term["proj"].astype(np.float32)) @ term["coef"].astype(np.float32)
    want = base.deltas(x) + own.reshape(3, -1, base.w_std.size) * base.w_std
    np.testing.assert_allclose(both.deltas(x), want, atol=2e-3 * np.abs(want).max())
    assert np.abs(both.deltas(x) - base.deltas(x)).max() > 0.05 * np.abs(want).max(), "the term moves the face"


def test_another_identity_correction_replaces_the_shipped_one_only_for_its_own_encoder():
    """Encoder.with_identity: a correction fitted for this encoder and landmark correction replaces the shipped one
    (a new one pass, so no identity feedback fitted for the old one); one fitted for another is refused."""
    enc = Encoder.load(threads=1)
    base = enc.identity
    moved = IdentityCorrection(base.x_mean, base.proj, base.coef, base.bias + 0.5, base.w_std, base.slots,
                               dict(base.meta), sha256="another")
    other = enc.with_identity(moved)
    assert other.identity is moved and other.one_pass_id != enc.one_pass_id and other.feedback is None
    assert enc.identity is base, "the original encoder is unchanged"
    foreign = IdentityCorrection(base.x_mean, base.proj, base.coef, base.bias, base.w_std, base.slots,
                                 {**base.meta, "encoder_sha256": "0" * 64})
    with pytest.raises(BadInputError, match="another encoder"):
        enc.with_identity(foreign)
    bare = Encoder.load(threads=1, identity_correction=False)
    assert bare.with_identity(base).one_pass_id == enc.one_pass_id, "the recogniser comes with it"
    with pytest.raises(BadInputError, match="no landmark correction"):
        Encoder.load(threads=1, landmark_correction=False).with_identity(base)


def test_the_shipped_correction_is_the_generated_fit_plus_a_real_photo_term():
    """identity_correction.npz = identity_correction_generated.npz (kept, so the term can be refitted) + the term
    fitted on UTKFace photos, whose terms it carries."""
    from training.fit.identity_correction import GENERATED_PATH

    shipped, base = IdentityCorrection.load(), IdentityCorrection.load(GENERATED_PATH)
    term = shipped.meta["real_term"]
    assert term["base_sha256"] == base.sha256 and "non-commercial" in term["data_terms"]
    assert shipped.proj.shape[1] == base.proj.shape[1] + term["rank"]
    assert "real_term" not in base.meta


def test_the_real_photo_fit_says_how_to_make_its_codes_and_adds_a_term_only_to_the_generated_fit(tmp_path):
    from training.fit.identity_correction import GENERATED_PATH
    from training.fit.identity_correction_real import main

    with pytest.raises(SystemExit, match="training.data.morph_targets"):
        main(["--codes", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "out.npz")])
    with pytest.raises(SystemExit, match="already holds a real-photo term"):
        main(["--base", str(IDENTITY_CORRECTION_PATH), "--out", str(tmp_path / "out.npz")])
    assert not (tmp_path / "out.npz").exists()
    before = sha256_file(GENERATED_PATH)
    with pytest.raises(SystemExit, match="would overwrite --base"):
        main(["--out", str(GENERATED_PATH)])
    assert sha256_file(GENERATED_PATH) == before
