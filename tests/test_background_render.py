"""engine.background_render: newest-request-wins rendering on a worker thread, and the live pipeline using it."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.background_render import BackgroundRenderer
from engine.inversion.inverter import InversionOptions
from engine.live import LiveModels, LivePipeline, LiveSettings, rms
from engine.video import VideoReader


class GatedRender:
    """A render function the test holds: each call says it started, then waits until `release` is set. No clock:
    what a test asserts happens while a render is provably still running."""

    def __init__(self):
        self.started, self.release = threading.Event(), threading.Event()
        self.calls: list[float] = []  # the latents' first value, in call order
        self.inner_ms: list[float] = []

    def __call__(self, latent):
        t0 = time.perf_counter()
        self.calls.append(float(np.ravel(latent)[0]))
        self.started.set()
        assert self.release.wait(60), "the test never released the render"
        self.inner_ms.append(1000.0 * (time.perf_counter() - t0))
        return latent * 2


def call_in_thread(fn, timeout: float = 30.0):
    """Run fn() on another thread; its result, or fail if it does not return within `timeout` s (it blocked)."""
    out, done = [], threading.Event()
    threading.Thread(target=lambda: (out.append(fn()), done.set()), daemon=True).start()
    assert done.wait(timeout), f"{fn} blocked"
    return out[0]


def test_requests_made_while_busy_collapse_to_the_newest():
    render = GatedRender()
    r = BackgroundRenderer(render)
    try:
        r.submit(np.full(3, 0, np.float32))
        assert render.started.wait(30)  # the worker is inside render(0) and stays there
        for i in range(1, 6):
            call_in_thread(lambda: r.submit(np.full(3, i, np.float32)))  # submit never waits for the render
        assert r.renders == 0 and r.latest() is None
        render.release.set()
        done = r.wait()
        assert done is not None and np.array_equal(done.latent, np.full(3, 5)) and np.array_equal(done.face, 2 * done.latent)
        assert render.calls == [0.0, 5.0] and r.renders == 2, "requests never started are dropped, not queued"
        assert done.sequence == 2 and done.ms >= render.inner_ms[-1], "ms is the render's own time"
    finally:
        render.release.set()
        r.close()


def test_latest_never_blocks_and_clear_discards_a_render_in_flight():
    render = GatedRender()
    r = BackgroundRenderer(render)
    try:
        r.submit(np.zeros(2))
        assert render.started.wait(30)
        assert call_in_thread(r.latest) is None, "latest() answers while the render is held"
        r.clear()  # e.g. the face was lost while its render was running
        render.release.set()
        assert r.wait() is None and r.renders == 1, "the render finished but belongs to the cleared epoch"
        r.submit(np.ones(2))
        assert np.array_equal(r.wait().latent, np.ones(2)) and r.renders == 2
    finally:
        render.release.set()
        r.close()


def test_free_in_says_when_the_worker_wants_its_next_latent():
    """free_in: 0 before any render is timed and while idle; during a render, the running mean duration left."""
    render = GatedRender()
    r = BackgroundRenderer(render)
    try:
        assert r.free_in() == 0.0 and r.mean_ms is None
        r.submit(np.zeros(2))
        assert render.started.wait(30)
        assert r.free_in() == 0.0, "nothing timed yet: no estimate"
        time.sleep(0.2)
        render.release.set()
        first = r.wait()
        assert r.free_in() == 0.0 and r.mean_ms == pytest.approx(first.ms) and first.ms >= 200
        render.started.clear()
        render.release.clear()
        r.submit(np.ones(2))
        assert render.started.wait(30)
        left = r.free_in()
        assert 0.0 < left <= first.ms / 1000.0, "busy: the mean render's time minus what has run"
        time.sleep(left + 0.05)
        assert r.free_in() == 0.0, "overdue: wanted now"
    finally:
        render.release.set()
        r.close()


def test_a_failing_render_is_reported_to_the_caller():
    def broken(latent):
        raise ValueError("model file vanished")
    r = BackgroundRenderer(broken)
    r.submit(np.zeros(2))
    with pytest.raises(RuntimeError, match="model file vanished"):
        r.wait()
    r.close()


def test_live_pipeline_renders_in_the_background(landmarker_model, videos_dir, monkeypatch):
    """Only the first face of a stream is waited for; while the generator is held on its thread, later frames are
    still processed, each pasting the newest finished face with its own crop."""
    held, release, second_started = threading.Event(), threading.Event(), threading.Event()
    real_render = LivePipeline._render_bgr

    def gated_render(self, latent):
        if held.is_set() and threading.current_thread().name == "celeblook-render":
            second_started.set()
            assert release.wait(120), "the test never released the render"
        return real_render(self, latent)

    waits = []
    real_wait = BackgroundRenderer.wait
    monkeypatch.setattr(LivePipeline, "_render_bgr", gated_render)
    monkeypatch.setattr(BackgroundRenderer, "wait", lambda self, *a, **k: (waits.append(1), real_wait(self, *a, **k))[1])

    models = LiveModels.load(threads=2, landmarker_model=landmarker_model)
    with VideoReader(videos_dir / "d18.mp4") as reader:
        frames = list(reader.frames(6))
    # the identity feedback arrives later in background mode (tests/test_identity_feedback.py); off here, so the
    # first face of both loops comes from the same latent
    # unpaced: every frame submits its latent (pacing is test_a_paced_loop_inverts_only_the_frames_the_generator_takes)
    settings = LiveSettings(reuse=False, pace=False, inversion=InversionOptions(identity_feedback=False))
    try:
        with LivePipeline(models, background_render=True) as pipe, LivePipeline(models) as sync:
            results = [pipe.process(frames[0].image, frames[0].timestamp_ms, settings)]
            held.set()  # every later render waits for `release`
            results += [pipe.process(f.image, f.timestamp_ms, settings) for f in frames[1:]]
            assert second_started.is_set() and pipe.renders == 1, "the second render is in flight, held"
            assert len(waits) == 1, "only the first frame waited for the generator"
            release.set()
            first_sync = sync.process(frames[0].image, frames[0].timestamp_ms, settings)
            assert all(r.face_found for r in results)
            # the first face of a stream is waited for: it is the same face the inline generator makes
            assert not results[0].reused and rms(results[0].edited, first_sync.edited) < 1e-6
            assert np.abs(results[0].frame.astype(int) - first_sync.frame.astype(int)).max() <= 1
            # later frames did not wait: they show the first face, pasted with their own crop
            assert all(r.reused and np.array_equal(r.edited, results[0].edited) for r in results[1:])
            counts = [r.renders for r in results]  # what the app shows as "face N/s"
            assert counts == [1] * len(frames)
            # released: the held render (frame 1) lands, then the newest request (frame 5); frames 2-4 were dropped
            deadline = time.monotonic() + 120
            while pipe.renders < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert pipe.renders == 3
    finally:
        release.set()


class SlowGenerator:
    """The real generator taking `seconds` longer per render: a generator slower than the loop, on any machine."""

    def __init__(self, generator, seconds: float):
        self.generator, self.seconds = generator, seconds

    def render(self, latent):
        time.sleep(self.seconds)
        return self.generator.render(latent)

    def __getattr__(self, name):
        return getattr(self.generator, name)


def test_a_paced_loop_inverts_only_the_frames_the_generator_takes(landmarker_model, videos_dir):
    """With a generator several frames slow, the paced loop skips the encoder on frames whose latent would be
    replaced before the generator reads it (each shows the newest face, `wplus` the last inversion): nearly every
    inversion is rendered, and frame_wait asks for at most `frames_per_refresh` frames per render. Unpaced, every
    frame is inverted and most of those latents are never rendered."""
    from dataclasses import replace

    real = LiveModels.load(threads=2, landmarker_model=landmarker_model)
    models = replace(real, generator=SlowGenerator(real.generator, 0.4))
    with VideoReader(videos_dir / "d18.mp4") as reader:
        frames = list(reader.frames(16))
    counts = {}
    for pace in (True, False):
        settings = LiveSettings(reuse=False, pace=pace, frames_per_refresh=3.0,
                                inversion=InversionOptions(identity_feedback=False))
        with LivePipeline(models, background_render=True) as pipe:
            results, waits = [], []
            for f in frames:
                results.append(pipe.process(f.image, f.timestamp_ms, settings))
                waits.append(pipe.frame_wait())
            assert all(r.face_found for r in results)
            inverted = [r for r in results if r.inverted]
            skipped = [r for r in results if not r.inverted]
            for r in skipped:  # the newest face, the last inversion
                assert r.reused and r.wplus is not None and 1 <= r.face_frame <= pipe.frames
            counts[pace] = len(inverted), pipe.renders
            if pace:
                assert max(waits[2:]) > 0.1, "a render takes > 0.4 s: at most 3 frames in that time"
                assert max(waits) <= pipe._renderer.mean_ms / 1000.0 / 3.0 + 1e-6
            else:
                assert not skipped and not any(waits)
    (paced, paced_renders), (unpaced, unpaced_renders) = counts[True], counts[False]
    assert paced < len(frames) / 2 and unpaced == len(frames)
    assert paced <= paced_renders + 2, "paced: nearly every inversion reaches the generator"
    assert unpaced > 2 * unpaced_renders, "unpaced: most inversions are replaced unread"


def test_the_engine_leaves_numpy_one_blas_thread_unless_told_otherwise():
    """Importing the engine before numpy keeps OpenBLAS to one thread (its own pool spun against the generator's
    thread: docs/BENCHMARKS.md measures it); a user's own OPENBLAS_NUM_THREADS stands."""
    import os
    import subprocess
    import sys

    code = "import engine, numpy, os; print(os.environ['OPENBLAS_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    run = lambda e: subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,  # noqa: E731
                                   check=True).stdout.strip()
    assert run(env) == "1"
    assert run({**env, "OPENBLAS_NUM_THREADS": "2"}) == "2"
