"""engine.live: the per-frame pipeline on real clips with the real models (landmarker, encoder, generator).

Kept short for a loaded 2-core CPU: a handful of frames, and where the face itself does not matter the
generator runs once (reuse with a huge threshold).
"""
from __future__ import annotations

import contextlib
import json

import cv2
import numpy as np
import pytest

from engine.align import align_face
from engine.errors import BadInputError, CelebLookError
from engine.inversion.inverter import InversionOptions, Inverter
from engine.live import STAGES, LatentSmoothing, LiveModels, LivePipeline, LiveSettings, rms
from engine.inversion.skin_tone import face_oval_mask, skin_lab
from engine.video import VideoReader

RENDER_ONCE = dict(reuse=True, reuse_threshold=1e9)  # generator on the first face only


@pytest.fixture(scope="module")
def models(landmarker_model):
    try:
        return LiveModels.load(threads=2, landmarker_model=landmarker_model)
    except CelebLookError as exc:
        pytest.fail(f"the live pipeline needs the models: {exc}", pytrace=False)


def clip_frames(videos_dir, name, n):
    with VideoReader(videos_dir / name) as reader:
        return list(reader.frames(n))


@pytest.fixture(scope="module")
def d18(videos_dir):
    return clip_frames(videos_dir, "d18.mp4", 12)


def test_face_is_replaced_inside_and_untouched_outside(models, d18):
    settings = LiveSettings(reuse=False)
    with LivePipeline(models) as pipe:
        results = [pipe.process(f.image, f.timestamp_ms, settings) for f in d18[:3]]
    for frame, r in zip(d18, results):
        assert r.face_found and r.message == ""
        assert r.wplus.shape == (1, 23, 512) and r.edited.shape == (1, 23, 512)
        assert set(STAGES) <= set(r.timings) and r.timings["generate"] > 0 and not r.reused
        assert r.frame.shape == frame.image.shape and r.frame is not frame.image
        x0, y0, x1, y1 = (int(v) for v in r.face.bbox)
        inner = (slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4), slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4))
        diff = np.abs(r.frame.astype(np.int16) - frame.image.astype(np.int16))
        assert diff[inner].mean() > 2.0, "the face should be re-rendered"
        outside = np.ones(frame.image.shape[:2], bool)
        outside[max(0, y0 - 4):y1 + 5, max(0, x0 - 4):x1 + 5] = False
        assert diff[outside].max() == 0, "pixels away from the face must be the input's"
    assert pipe.renders == 3


def test_no_face_passes_frames_through(models, videos_dir):
    frames = clip_frames(videos_dir, "dark_stage_clip.mp4", 4)  # its first 82 frames show no usable face
    with LivePipeline(models) as pipe:
        for f in frames:
            r = pipe.process(f.image, f.timestamp_ms, LiveSettings())
            assert not r.face_found and r.message == "no face" and r.wplus is None
            assert np.array_equal(r.frame, f.image)
        assert pipe.renders == 0


@pytest.mark.slow
def test_latent_smoothing_reduces_frame_to_frame_change(models, d18):
    def steps(settings):
        with LivePipeline(models) as pipe:
            w = [pipe.process(f.image, f.timestamp_ms, settings).wplus for f in d18]
        return np.mean([rms(a, b) for a, b in zip(w[1:], w[:-1])])

    raw = steps(LiveSettings(smooth_latents=False, **RENDER_ONCE))
    one_euro = steps(LiveSettings(smooth_latents=True, **RENDER_ONCE))
    ema = steps(LiveSettings(smooth_latents=True, latent_filter=LatentSmoothing(mode="ema"), **RENDER_ONCE))
    assert one_euro < 0.6 * raw and ema < 0.6 * raw, (raw, one_euro, ema)


def test_reuse_skips_the_generator_until_the_edit_changes(models, d18):
    settings = LiveSettings(reuse=True, reuse_threshold=0.05)
    with LivePipeline(models) as pipe:
        results = [pipe.process(f.image, f.timestamp_ms, settings) for f in d18[:4]]
        assert [r.reused for r in results] == [False, True, True, True]
        reused = results[-1]
        diff = np.abs(reused.frame.astype(np.int16) - d18[3].image.astype(np.int16))
        assert diff.mean() > 0.5, "a reused face is still pasted"
        # a new target is a big change of the edited latent: rendered again
        target = models.generator.sample_w(3)
        r = pipe.process(d18[4].image, d18[4].timestamp_ms, settings.with_(target=target, strength=1.0))
        assert not r.reused and pipe.renders == 2
        assert rms(r.edited, reused.edited) > 0.05


def test_skin_match_moves_the_users_code_to_the_cameras_skin_chroma(models, d18):
    if models.skin_tone is None:
        pytest.fail(f"skin-tone model missing: {models.skin_tone_error}", pytrace=False)
    f = d18[0]
    plain_settings = LiveSettings(smooth_latents=False, smooth_landmarks=False,
                                  inversion=InversionOptions(match_skin=False), **RENDER_ONCE)
    with LivePipeline(models) as pipe:  # the same frame twice (VIDEO mode wants increasing timestamps)
        plain = pipe.process(f.image, f.timestamp_ms, plain_settings)
        matched = pipe.process(f.image, f.timestamp_ms + 1, plain_settings.with_(match_skin=True))
    model = models.skin_tone
    lab = skin_lab(matched.crop.image, face_oval_mask(matched.face, matched.crop))
    np.testing.assert_allclose(model.predict(matched.wplus)[1:], lab[1:], atol=1e-2)
    assert rms(matched.wplus, plain.wplus) > 1e-3  # the encoder alone renders other skin chroma


def test_edits_move_the_latent(models, d18):
    if models.directions is None:
        pytest.fail(f"attribute directions missing: {models.directions_error}", pytrace=False)
    f = d18[0]
    with LivePipeline(models) as pipe:
        base = pipe.process(f.image, f.timestamp_ms, LiveSettings(**RENDER_ONCE))
        pipe.reset()
        yawed = pipe.process(d18[1].image, d18[1].timestamp_ms,
                             LiveSettings(amounts={"yaw": 20.0}, smooth_latents=False, reuse=False))
    assert rms(yawed.edited, yawed.wplus) > 0.01
    with pytest.raises(BadInputError):
        LiveSettings(strength=1.5)
    with pytest.raises(BadInputError):
        LiveSettings(preset="nope")
    assert base.face_found


def test_yaw_edit_turns_the_head_in_the_output_frame(models, d18):
    """What the user sees: with a yaw edit of -20 and +20 degrees the pasted-back face in the output frame turns,
    measured by MediaPipe's head pose on the output (not on the latent)."""
    from training.data.face_labels import FaceLabeler

    f = d18[1]
    yaw = {}
    with contextlib.closing(FaceLabeler()) as labeler:
        for asked in (-20.0, 20.0):
            with LivePipeline(models) as pipe:
                r = pipe.process(f.image, f.timestamp_ms, LiveSettings(amounts={"yaw": asked}, smooth_latents=False,
                                                                       reuse=False))
            got = labeler.label(cv2.cvtColor(r.frame, cv2.COLOR_BGR2RGB))
            assert got is not None, "a face in the output"
            yaw[asked] = got["yaw"]
        base = labeler.label(cv2.cvtColor(f.image, cv2.COLOR_BGR2RGB))["yaw"]
    # asked for 40 degrees apart; through the paste-back (the face turns inside the real head outline) the output
    # measures about 10 (-3.9 and +6.8 around the input's 1.6 on d18's frame 1)
    assert yaw[20.0] - yaw[-20.0] > 6, (yaw, base)
    assert yaw[-20.0] < base < yaw[20.0], (yaw, base)


def test_flicker_command(tmp_path, videos_dir, landmarker_model, capsys):
    from engine.cli import main

    out = tmp_path / "flicker.json"
    code = main(["flicker", str(videos_dir / "d18.mp4"), "--frames", "4", "--model", str(landmarker_model),
                 "--configs", "landmarks + latents + reuse", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "| input frames (floor) |" in text and "landmarks + latents + reuse" in text
    report = json.loads(out.read_text())
    row = report["results"][0]
    assert row["frames"] == 4 and row["frames_with_face"] == 4 and row["fps"] > 0 and row["flicker"] > 0
    assert main(["flicker", str(tmp_path / "missing.mp4")]) == 2


def _embed(fid, landmarker, image):
    faces = landmarker.detect(image)
    assert faces, "no face in the pipeline's output"
    return fid.embed(image, faces[0].xy)


@pytest.mark.slow
def test_output_face_becomes_the_target_as_strength_rises(models, d18, landmarker):
    """What the user sees: the pasted-back face is recognised as the target more the higher the strength, and at
    full strength it is closer to the target than to the user (the shipped recogniser, cosine similarity)."""
    from engine.face_id import FaceId
    from engine.inversion.targets import builtin_targets

    fid = FaceId.load(1)
    target = builtin_targets(models.generator, (4,))[0]
    target_e = _embed(fid, landmarker, cv2.cvtColor(models.generator.render(target.wplus), cv2.COLOR_RGB2BGR))
    frames = d18[:6]
    user_e = [_embed(fid, landmarker, f.image) for f in frames]
    to_target, to_user = {}, {}
    for strength in (0.0, 0.5, 1.0):
        settings = LiveSettings(target=target.wplus, strength=strength, reuse=False)
        with LivePipeline(models) as pipe:
            out = [_embed(fid, landmarker, pipe.process(f.image, f.timestamp_ms, settings).frame) for f in frames]
        to_target[strength] = float(np.mean([e @ target_e for e in out]))
        to_user[strength] = float(np.mean([e @ u for e, u in zip(out, user_e)]))
    # each half step moves the output clearly (0.50, 0.69, 0.84 here): a morph that ignored its strength and
    # went all the way at 0.5 measured 0.82 there, 0.02 below full strength
    assert to_target[0.5] - to_target[0.0] > 0.06 and to_target[1.0] - to_target[0.5] > 0.06, to_target
    assert to_user[0.0] > to_user[1.0], to_user
    assert to_target[1.0] > to_user[1.0], (to_target, to_user)


def test_at_full_strength_the_face_keeps_the_targets_complexion(models, d18, landmarker):
    """The paste-back matched every face's colours to the user's frame, so a target of another skin tone came out in
    the user's (d18's skin L* 53, built-in face 0's 73). At full strength the face shown has the target's own
    colours, or a photo target's (Target.skin) where given; as themselves (strength 0) the user's colours stay
    matched; target_colours=False is the old paste."""
    from engine.inversion.targets import builtin_targets
    from engine.paste import lab_stats

    target = builtin_targets(models.generator, (0,))[0]

    def lightness(image):
        face = landmarker.detect(image)[0]
        crop = align_face(image, face, 256)
        return float(skin_lab(crop.image, face_oval_mask(face, crop))[0])

    user = lightness(d18[0].image)
    render = cv2.cvtColor(models.generator.render(target.wplus), cv2.COLOR_RGB2BGR)
    rendered = lightness(render)
    assert rendered - user > 12, (rendered, user)  # the premise: clearly another complexion
    face = landmarker.detect(render)[0]
    crop = align_face(render, face, 256)
    darker = lab_stats(crop.image, face_oval_mask(face, crop)) - [[60, 0, 0], [0, 0, 0]]  # a photo 23.5 L* darker
    shown = {}
    for name, settings in [("target", LiveSettings(target=target.wplus, **RENDER_ONCE)),
                           ("photo", LiveSettings(target=target.wplus, target_skin=darker, **RENDER_ONCE)),
                           ("matched", LiveSettings(target=target.wplus, target_colours=False, **RENDER_ONCE)),
                           ("you", LiveSettings(**RENDER_ONCE))]:
        with LivePipeline(models) as pipe:
            shown[name] = lightness(pipe.process(d18[0].image, d18[0].timestamp_ms, settings).frame)
    assert shown["target"] - user > 0.6 * (rendered - user), (shown, user, rendered)
    assert 15 < shown["target"] - shown["photo"] < 30, (shown, rendered)
    assert abs(shown["matched"] - user) < 4 and abs(shown["you"] - user) < 4, (shown, user)


def test_a_refined_photo_target_renders_with_the_preview_head_and_the_rest_with_the_live_student(models, d18):
    """The shipped live student renders the user and built-in faces; a photo target's refined latent, where it loses
    the person, goes to the preview head, in the background loop too, and back when the morph is off. After a
    switch the face shown comes from this frame (no face of the other generator is shown as this one's)."""
    from engine.generator import LIVE_SYNTHESIS, SYNTHESIS_MODELS

    assert models.generator.name == LIVE_SYNTHESIS, "the live student is shipped and is the live generator"
    assert models.refined_generator.name == SYNTHESIS_MODELS[256]
    assert models.target_generator is models.refined_generator  # target photos are inverted through it
    w = np.repeat(models.generator.sample_w(4, 0.7)[None, None], 23, axis=1)
    photo = LiveSettings(target=w, target_refined=True, strength=1.0, reuse=False)
    runs = [("you", LiveSettings(reuse=False), LIVE_SYNTHESIS), ("photo", photo, SYNTHESIS_MODELS[256]),
            ("photo at strength 0", photo.with_(strength=0.0), LIVE_SYNTHESIS),
            ("built-in", photo.with_(target_refined=False), LIVE_SYNTHESIS), ("photo again", photo, SYNTHESIS_MODELS[256])]
    for background in (False, True):
        with LivePipeline(models, background_render=background) as pipe:
            before = None
            for (name, settings, expected), f in zip(runs, d18):
                r = pipe.process(f.image, f.timestamp_ms, settings)
                assert r.generator == expected, (background, name, r.generator)
                if expected != before:
                    assert r.face_frame == pipe.frames and not r.reused, (background, name)
                before = expected


def test_the_live_loop_and_a_still_share_the_inverter(models, d18, landmarker):
    """The live loop inverts through an Inverter (engine.inversion.inverter) and a still of the same frame through
    another one over the same models: on the same crop, without the per-frame extras (smoothing, identity feedback,
    skin match, closed-loop passes), both give the same one pass."""
    f = d18[0]
    bare = InversionOptions(identity_feedback=False, match_skin=False, identity_passes=0, skin_passes=0)
    settings = LiveSettings(smooth_latents=False, smooth_landmarks=False, inversion=bare, **RENDER_ONCE)
    with LivePipeline(models) as pipe:
        assert isinstance(pipe.inverter, Inverter)
        live = pipe.process(f.image, f.timestamp_ms, settings)
    still = Inverter(models.encoder, models.generator, models.skin_tone).invert_photo(f.image, landmarker, bare,
                                                                                      face=live.face)
    np.testing.assert_array_equal(still.crop.image, live.crop.image)
    # the live loop reads the recogniser's running mean embedding, renormalised: float noise
    np.testing.assert_allclose(still.wplus, live.wplus, atol=1e-5)


@pytest.mark.slow
def test_output_mouth_follows_the_users_at_full_strength(models, videos_dir, landmarker_model):
    """At full strength toward another face, the output's mouth opens and closes with the user's (d18's frames
    40-104: closed, wide open, closed), by MediaPipe's jawOpen on the input frame and on the window's output."""
    from engine.inversion.targets import builtin_targets
    from engine.landmarks import FaceLandmarker

    with VideoReader(videos_dir / "d18.mp4") as reader:
        frames = [f for f in reader.frames(105) if f.index >= 40 and f.index % 2 == 0]
    target = builtin_targets(models.generator, (4,))[0]
    settings = LiveSettings(target=target.wplus, strength=1.0, reuse=False)
    jaw_in, jaw_out = [], []
    with LivePipeline(models) as pipe, FaceLandmarker(landmarker_model, expressions=True) as judge:
        for f in frames:
            out = pipe.process(f.image, f.timestamp_ms, settings).frame
            a, b = judge.detect(f.image), judge.detect(out)
            assert a and b, "a face in the input and in the output"
            jaw_in.append(a[0].expression["jaw_open"])
            jaw_out.append(b[0].expression["jaw_open"])
    jaw_in, jaw_out = np.array(jaw_in), np.array(jaw_out)
    assert np.ptp(jaw_in) > 0.6, "the clip's stretch opens the mouth wide"
    assert np.corrcoef(jaw_in, jaw_out)[0, 1] > 0.6
    assert np.ptp(jaw_out) > 0.4 * np.ptp(jaw_in), "the output's mouth really opens"


def test_a_grinning_target_takes_the_users_resting_mouth(models, d18, landmarker_model):
    """Toward a built-in face that grins (seed 7), while the user's lips are closed (d18's first frames), the face
    shown smiles less once the target's resting expression is known (Target.expression): the reenactment starts from
    the user's resting mouth, not the grin."""
    from engine.inversion.targets import builtin_targets
    from engine.landmarks import FaceLandmarker

    smiles = {}
    with FaceLandmarker(landmarker_model, expressions=True) as judge:
        target = builtin_targets(models.generator, (7,), landmarker=judge)[0]
        assert target.expression["smile"] > 0.6, "seed 7 grins"
        for name, expression in (("unknown", None), ("measured", target.expression)):
            settings = LiveSettings(target=target.wplus, strength=1.0, reuse=False, target_expression=expression)
            with LivePipeline(models) as pipe:
                outs = [pipe.process(f.image, f.timestamp_ms, settings).frame for f in d18[:6]]
            smiles[name] = np.mean([judge.detect(o)[0].expression["smile"] for o in outs[-3:]])
        user = np.mean([judge.detect(f.image)[0].expression["smile"] for f in d18[3:6]])
    assert smiles["measured"] < smiles["unknown"] - 0.15, smiles
    assert abs(smiles["measured"] - user) < abs(smiles["unknown"] - user), (smiles, user)


def test_the_shown_face_says_which_frame_it_came_from(models, d18):
    """LiveResult.face_frame (what the bench's capture-to-face latency is measured from): rendered inline it is the
    frame itself; rendered in the background it is an earlier or the same frame, never a later one, and never goes
    back in time (the first face of a stream is waited for, so it is frame 1's)."""
    settings = LiveSettings(reuse=False)
    with LivePipeline(models) as pipe:
        for i, frame in enumerate(d18[:4]):
            r = pipe.process(frame.image, frame.timestamp_ms, settings)
            assert r.face_found and r.face_frame == pipe.frames
    with LivePipeline(models, background_render=True) as pipe:
        shown = []
        for i, frame in enumerate(d18):
            r = pipe.process(frame.image, frame.timestamp_ms, settings)
            assert r.face_found and 1 <= r.face_frame <= pipe.frames
            shown.append(r.face_frame)
    assert shown[0] == 1 and shown == sorted(shown)


def test_a_stale_faces_mouth_catches_up_with_the_user(models, videos_dir, landmarker_model):
    """The face rendered once at the start and shown for every later frame (what a lagging generator does, in the
    extreme): with catch-up its mouth still opens and closes with the user's (d18's frames 40-104), without it
    the output's mouth stays as rendered."""
    from engine.inversion.targets import builtin_targets
    from engine.landmarks import FaceLandmarker
    from engine.live import motion_scores

    with VideoReader(videos_dir / "d18.mp4") as reader:
        frames = [f for f in reader.frames(105) if f.index >= 40 and f.index % 2 == 0]
    target = builtin_targets(models.generator, (4,))[0]
    jaw = {}
    with FaceLandmarker(landmarker_model, expressions=True) as judge:
        for catch_up in (True, False):
            settings = LiveSettings(target=target.wplus, strength=1.0, catch_up=catch_up, **RENDER_ONCE)
            jaw_in, jaw_out = [], []
            with LivePipeline(models) as pipe:
                for f in frames:
                    r = pipe.process(f.image, f.timestamp_ms, settings)
                    assert r.face_found and r.face.pose is not None and "yaw" in motion_scores(r.face)
                    a, b = judge.detect(f.image), judge.detect(r.frame)
                    assert a and b
                    jaw_in.append(a[0].expression["jaw_open"])
                    jaw_out.append(b[0].expression["jaw_open"])
            jaw[catch_up] = np.array(jaw_in), np.array(jaw_out)
    (jaw_in, caught), (_, stale) = jaw[True], jaw[False]
    assert np.ptp(stale) < 0.15, "rendered once: the mouth does not move by itself"
    assert np.corrcoef(jaw_in, caught)[0, 1] > 0.6
    assert np.ptp(caught) > 2 * np.ptp(stale)


def test_the_live_mouth_shows_your_yawn_from_a_stale_face_and_nothing_at_full_strength(models, videos_dir):
    """The face rendered once with d18's mouth closed (0 s) and shown again at its yawn (2.7 s), as a lagging
    generator would: as yourself the output's mouth between the user's inner lips is the user's own yawn (close to
    the input there; without the live mouth, the stretched closed render), and toward a target at full strength the
    live mouth changes no pixel."""
    from engine.inversion.targets import builtin_targets
    from engine.paste import INNER_LIPS

    frames = clip_frames(videos_dir, "d18.mp4", 75)
    closed, yawn = frames[0], min(frames, key=lambda f: abs(f.timestamp_ms - 2700))
    target = builtin_targets(models.generator, (4,))[0].wplus
    out = {}
    for name, settings in {"you": LiveSettings(**RENDER_ONCE), "target": LiveSettings(target=target, **RENDER_ONCE)}.items():
        for live_mouth in (True, False):
            with LivePipeline(models) as pipe:
                pipe.process(closed.image, closed.timestamp_ms, settings.with_(live_mouth=live_mouth))
                r = pipe.process(yawn.image, yawn.timestamp_ms, settings.with_(live_mouth=live_mouth))
            assert r.face_found and r.face_frame == 1  # the closed-mouth render, shown again
            out[name, live_mouth] = r
    assert np.array_equal(out["target", True].frame, out["target", False].frame)
    inside = np.zeros(yawn.image.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(out["you", True].face.xy[list(INNER_LIPS)]).astype(np.int32)], 1)
    core = cv2.erode(inside, np.ones((7, 7), np.uint8)).astype(bool)
    assert core.sum() > 100
    gap = {m: np.abs(out["you", m].frame[core].astype(int) - yawn.image[core]).mean() for m in (True, False)}
    assert gap[True] < 0.5 * gap[False], gap


def test_paste_options_follow_the_morph():
    """One rule for how the face shown is pasted back: as the user, plain and in the frame's colours; reenacting a
    target, the oval grows and lifts with the strength and the colours go the rest of the way to the photo's."""
    from engine.live import MORPH_GROW, MORPH_LIFT

    skin = np.array([[60.0, 140.0, 150.0], [10.0, 4.0, 4.0]])
    you = LiveSettings(target_skin=skin).paste_options()
    assert (you.color_match, you.colours, you.grow, you.lift) == (1.0, None, 1.0, 0.0)
    half = LiveSettings(target=np.zeros((1, 23, 512), np.float32), target_skin=skin, strength=0.5).paste_options()
    assert half.color_match == 0.5 and half.colours is skin
    assert half.grow == pytest.approx(1 + MORPH_GROW / 2) and half.lift == pytest.approx(MORPH_LIFT / 2)
    mix = LiveSettings(target=np.zeros((1, 23, 512), np.float32), preset="identity", lift_forehead=True).paste_options()
    assert (mix.grow, mix.lift) == (1.0, 0.0)
    flat = LiveSettings(target=np.zeros((1, 23, 512), np.float32), lift_forehead=False).paste_options()
    assert flat.lift == 0.0 and flat.grow == pytest.approx(1 + MORPH_GROW)
