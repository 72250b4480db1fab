"""The desktop window (pytest-qt, offscreen) on real clips with the real models: transformed output, GIF recording,
bad drops shown as errors, the no-face clip passed through, a missing camera, and the headless command line."""
from __future__ import annotations

import os
import threading

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from tests.conftest import require  # noqa: E402

pytestmark = pytest.mark.slow  # every test opens the window and loads the models (minutes on a loaded 2-core machine)

require("pytestqt", "dev")
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from celeblook_desktop.window import MainWindow  # noqa: E402
from celeblook_desktop.workers import EngineConfig, Source  # noqa: E402
from engine.inversion.calibration import IdentityCalibration  # noqa: E402
from engine.edits import morph  # noqa: E402
from engine.inversion.refine import StudentFit  # noqa: E402
from engine.live import MORPH_GROW  # noqa: E402
from engine.text_edit import missing_text_models  # noqa: E402

TIMEOUT_MS = 300_000  # generous: the 2-core CI machine is shared (a wait ends as soon as its condition holds)


@pytest.fixture
def make_window(qtbot, tmp_path, landmarker_model):
    windows = []

    def make(source: Source, calibrate_keyframes: int = 0, calibration=None, **kwargs) -> MainWindow:
        config = EngineConfig(threads=2, landmarker_model=str(landmarker_model), builtin_seeds=(),
                              target_cache_dir=tmp_path / "targets", calibrate_keyframes=calibrate_keyframes,
                              calibration_steps=3, calibration=calibration, target_quality_steps=20,
                              target_fit=StudentFit(steps=3))
        w = MainWindow(source, config, out_dir=tmp_path, **kwargs)
        qtbot.addWidget(w)
        w.show()
        windows.append(w)
        qtbot.waitUntil(lambda: w.engine.models is not None or w.engine.isFinished(), timeout=TIMEOUT_MS)
        assert w.engine.models is not None, w.errors
        return w

    yield make
    for w in windows:
        w.close()


def drop(window: MainWindow, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def gif_frame_errors(gif_rgb: np.ndarray, out) -> tuple[float, float]:
    """Mean absolute difference, inside the face box, between a recorded GIF frame and the window's output `out`
    (EngineOutput) and between it and that output's input frame, both downscaled as the recorder does."""
    from engine.gif import fit_size
    from celeblook_desktop.recorder import MAX_SIDE

    shown, camera = (fit_size(img, MAX_SIDE)[..., ::-1].astype(np.float32) for img in (out.result.frame, out.source.image))
    assert shown.shape == gif_rgb.shape, (shown.shape, gif_rgb.shape)
    scale = shown.shape[1] / out.result.frame.shape[1]
    x0, y0, x1, y1 = (int(v * scale) for v in out.result.face.bbox)
    box = (slice(max(0, y0), y1), slice(max(0, x0), x1))
    gif = gif_rgb.astype(np.float32)
    return float(np.abs(gif - shown)[box].mean()), float(np.abs(gif - camera)[box].mean())


def test_live_morph_with_target_and_gif(make_window, qtbot, videos_dir, face_photo, tmp_path, monkeypatch, request):
    from engine.inversion.targets import TargetCache

    # the dropped photo's inversion is held (the real one runs once released): the live view must go on meanwhile
    inverting, release = threading.Event(), threading.Event()
    real_load = TargetCache.load

    def held_load(cache, photo, **kwargs):
        inverting.set()
        assert release.wait(TIMEOUT_MS / 1000), "the test never released the inversion"
        return real_load(cache, photo, **kwargs)

    monkeypatch.setattr(TargetCache, "load", held_load)
    request.addfinalizer(release.set)  # before the window closes, even if an assert below fails
    w = make_window(Source(video=videos_dir / "d18.mp4"))
    qtbot.waitUntil(lambda: w.last_output is not None, timeout=TIMEOUT_MS)
    assert w.controls.likeness_box.isEnabled() and w.engine._settings.inversion.identity_feedback  # the shipped model has it
    w.controls.likeness_box.setChecked(False)
    assert not w.engine._settings.inversion.identity_feedback, "the box reaches the engine thread's settings"
    w.controls.likeness_box.setChecked(True)
    w.controls.target_colours_box.setChecked(False)
    assert not w.engine._settings.target_colours, "so does the target's colours box"
    w.controls.target_colours_box.setChecked(True)
    assert w.engine._settings.reenactment.rest == ("smile",), "the target takes your resting smile by default"
    w.controls.your_smile_box.setChecked(False)
    assert w.engine._settings.reenactment.rest == (), "off: the photo's own smile stays"
    w.controls.your_smile_box.setChecked(True)
    messages = []
    w.engine.busy.connect(messages.append)
    drop(w, face_photo("biden.jpg"))
    assert w.gallery_panel.pending() == ["biden"], "its tile says it is being inverted"
    # the dropped photo is refined (quality mode, seconds) on its own thread: the live view runs on meanwhile
    qtbot.waitUntil(inverting.is_set, timeout=TIMEOUT_MS)
    before = w.last_output.processed
    qtbot.waitUntil(lambda: w.last_output.processed >= before + 5, timeout=TIMEOUT_MS)
    assert w.target is None and w.gallery_panel.pending() == ["biden"], "still inverting"
    release.set()
    qtbot.waitUntil(lambda: w.target is not None or bool(w.errors), timeout=TIMEOUT_MS)
    assert w.target is not None, w.errors
    assert w.gallery_panel.pending() == []
    assert w.target.name == "biden" and w.gallery_panel.gallery.count() == 2  # "you" + biden
    assert w.gallery_panel.gallery.item(1).icon().availableSizes(), "the target's reconstruction is its thumbnail"
    # shown first with the preview head, then fitted to the live student, which renders it from then on
    qtbot.waitUntil(lambda: w.target.live is not None or bool(w.errors), timeout=TIMEOUT_MS)
    assert w.target.live is not None and w.gallery_panel.gallery.count() == 2, w.errors
    assert w.engine._settings.target is w.target.live and not w.engine._settings.target_refined
    assert "Fitting biden.jpg to the live generator… 33 %" in messages, messages  # the fit's progress (3 steps)
    gif = tmp_path / "rec.gif"
    w.start_recording(gif)
    start = w.last_output.processed if w.last_output else 0
    qtbot.waitUntil(lambda: w.last_output is not None and w.last_output.processed >= start + 24, timeout=TIMEOUT_MS)
    assert w.stop_recording(wait=True) == gif

    out = w.last_output
    r = out.result
    assert r.face_found and not w.errors
    x0, y0, x1, y1 = (int(v) for v in r.face.bbox)
    inner = (slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4), slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4))
    diff = np.abs(r.frame.astype(np.int16) - out.source.image.astype(np.int16))
    assert diff[inner].mean() > 2.0, "output must differ from input where the face is"
    margin = 5 + int(MORPH_GROW * (x1 - x0))  # a morph's paste-back also covers the face's outline
    assert diff[:, : max(1, x0 - margin)].max() == 0, "and equal it away from the face"
    assert "fps" in w.fps_label.text() and "generate" in w.stage_label.text()
    assert "face" in w.fps_label.text()  # the generator's refresh rate beside the frame rate
    assert "dropped" in w.drop_label.text()
    assert w.controls.face_indicator.text().startswith("face found")

    import imageio.v3 as iio

    frames = iio.imread(gif, index=None)
    assert frames.ndim == 4 and frames.shape[0] >= 2 and max(frames.shape[1:3]) <= 480
    assert not list(tmp_path.glob(".rec.gif.*")), "no temporary file left behind"
    # the GIF ends on what the window showed last: its output frame, not the camera's, downscaled as the recorder does
    shown_err, input_err = gif_frame_errors(frames[-1], out)
    assert shown_err < 4.0 and shown_err < input_err / 3, (shown_err, input_err)

    from engine.inversion.skin_tone import within_skin_range
    from engine.photo_edit import PhotoEditor

    seen = {}
    real_sweep = PhotoEditor.sweep

    def spy(editor, edit, values, paste=True, colours=None):  # what the sweep renders at full strength
        # on the engine thread, as the sweep: the live view's edit of this latent now (its motion reference too)
        seen.update(wplus=editor.wplus, full=edit(1.0), live=w.engine._pipeline.edit(editor.wplus, w.engine._settings),
                    share=colours(1.0), skin=editor.paste_options.colours)
        return real_sweep(editor, edit, values, paste, colours)

    monkeypatch.setattr(PhotoEditor, "sweep", spy)
    sweep = w.sweep_gif(tmp_path / "sweep.gif", steps=3)  # the current edit, none -> full, in the engine thread
    qtbot.waitUntil(lambda: "Sweep GIF written" in w.views.message.text(), timeout=TIMEOUT_MS)
    assert iio.imread(sweep, index=None).shape[0] == 4  # 3 steps as a boomerang: 0, 0.5, 1, 0.5
    # the sweep's last frame is the live view's edit, pose lock included
    settings = w.engine._settings
    assert settings.pose_lock and settings.target is not None
    live = seen["live"]
    assert np.array_equal(seen["full"], live)
    unlocked = morph(seen["wplus"], settings.target, settings.strength, "full")
    assert np.abs(unlocked - live).max() > 1e-3, "the old sweep's copy of the edit dropped the pose lock and motion"
    # at full strength the sweep's face has the target photo's colours, as the live view's
    assert seen["share"] == 0.0 and seen["skin"] is settings.target_skin
    np.testing.assert_array_equal(settings.target_skin, within_skin_range(w.target.skin))


def test_personal_calibration_collects_keyframes_while_the_view_runs(make_window, qtbot, videos_dir, tmp_path):
    """With calibration on, two keyframes at least a second apart are refined on the slow-job thread; the live
    view keeps going, the frames after get the calibration, and Recalibrate starts over."""
    w = make_window(Source(video=videos_dir / "d20.mp4"), calibrate_keyframes=2)
    assert w.controls.calib_box.isChecked()
    qtbot.waitUntil(lambda: w.calibration_keyframes == 2, timeout=TIMEOUT_MS)
    cal = w.engine.calibration
    assert cal.keyframes == 2 and np.abs(cal.offset).max() > 0 and not w.errors
    assert "Calibrated to your face (2/2" in w.views.message.text()
    seen = w.last_output.processed
    qtbot.waitUntil(lambda: w.last_output.processed >= seen + 3, timeout=TIMEOUT_MS)
    assert w.controls.save_calibration_button.isEnabled()
    saved = w.save_calibration()
    assert saved == tmp_path / "calibration.npz" and "Calibration saved" in w.views.message.text()
    assert IdentityCalibration.load(saved, w.engine.models.encoder_sha).keyframes == 2
    assert w.save_calibration(tmp_path / "no" / "dir.npz") is None and "Could not save" in w.errors[-1]
    w.controls.recalibrate_button.click()
    assert w.calibration_keyframes == 0 and "again" in w.views.message.text()
    w.close()

    again = make_window(Source(video=videos_dir / "d20.mp4"), calibration=saved)  # --calibration FILE
    qtbot.waitUntil(lambda: again.calibration_keyframes == 2, timeout=TIMEOUT_MS)
    assert np.array_equal(again.engine.calibration.offset, cal.offset) and not again.errors


def test_bad_drops_show_errors(make_window, qtbot, videos_dir, tmp_path):
    w = make_window(Source(video=videos_dir / "d18.mp4"))
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    drop(w, text)
    assert "notes.txt is not an image" in w.views.message.text()
    fake = tmp_path / "fake.png"
    fake.write_text("not a png either")
    drop(w, fake)
    qtbot.waitUntil(lambda: "cannot decode" in w.views.message.text(), timeout=TIMEOUT_MS)
    assert w.target is None and w.isVisible()
    qtbot.waitUntil(lambda: w.gallery_panel.pending() == [], timeout=TIMEOUT_MS)  # no tile left saying "inverting"
    qtbot.waitUntil(lambda: w.last_output is not None, timeout=TIMEOUT_MS)  # still running


def test_no_face_clip_passes_frames_through(make_window, qtbot, videos_dir):
    """dark_stage_clip has no usable face in its first 82 frames: each of them the engine processes passes through
    unchanged (judged by the frame's index in the clip: on a loaded machine capture runs ahead of the engine)."""
    w = make_window(Source(video=videos_dir / "dark_stage_clip.mp4"))
    opening = []
    w.engine.result_ready.connect(lambda out: opening.append(out) if out.source.index < 80 else None)
    qtbot.waitUntil(lambda: len(opening) >= 10 or (w.last_output is not None and w.last_output.source.index >= 80),
                    timeout=TIMEOUT_MS)
    assert opening, "no frame of the clip's faceless opening was processed"
    for out in opening:
        assert not out.result.face_found
        assert np.array_equal(out.result.frame, out.source.image)
    if w.last_output.source.index < 80:
        assert "no face" in w.controls.face_indicator.text()


def test_missing_camera_is_a_message_that_offers_the_demo(make_window, qtbot):
    w = make_window(Source(camera=9))
    qtbot.waitUntil(lambda: any("No camera found at index 9" in e for e in w.errors), timeout=TIMEOUT_MS)
    assert "demo face" in w.views.message.text()
    assert w.views.open_video_button.isVisibleTo(w) and w.views.demo_button.isVisibleTo(w)
    w.views.demo_button.click()
    assert w.source == Source(demo=True) and w.controls.source_box.currentText() == "Demo face"
    assert not w.views.demo_button.isVisibleTo(w)
    qtbot.waitUntil(lambda: w.last_output is not None and w.last_output.result.face_found, timeout=TIMEOUT_MS)


def test_demo_window_shows_the_transformed_face(make_window, qtbot):
    """celeblook-desktop --demo: the built-in face goes through the real pipeline and the output shows it."""
    w = make_window(Source(demo=True))
    qtbot.waitUntil(lambda: w.last_output is not None and w.last_output.processed >= 8, timeout=TIMEOUT_MS)
    out = w.last_output
    assert out.result.face_found and not w.errors, w.errors
    assert w.controls.face_indicator.text().startswith("face found")
    assert not np.array_equal(out.result.frame, out.source.image), "the output is the face's reconstruction"
    assert w.views.output_view.pixmap() is not None and not w.views.output_view.pixmap().isNull()
    assert "demo face" in w.source.label


def test_prompt_box_hidden_without_text_models(make_window, videos_dir):
    w = make_window(Source(video=videos_dir / "dark_stage_clip.mp4"))
    missing = missing_text_models()
    assert missing, "no CLIP text models on this machine"
    assert not w.controls.prompt.isVisibleTo(w)
    assert missing[0] in w.controls.prompt.toolTip()


@pytest.fixture
def no_landmarker(monkeypatch, tmp_path):
    """No face landmarker model anywhere (no env var, an empty user cache); QMessageBox.question answers
    `answer[0]` and counts the questions."""
    from PySide6.QtWidgets import QMessageBox

    monkeypatch.delenv("CELEBLOOK_FACE_LANDMARKER", raising=False)
    monkeypatch.delenv("CELEBLOOK_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    asked = {"answer": QMessageBox.StandardButton.No, "questions": []}
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *a: (asked["questions"].append(text),
                                                                                   asked["answer"])[1])
    return asked


def landmarker_window(qtbot, tmp_path, fetch) -> MainWindow:
    config = EngineConfig(threads=2, builtin_seeds=(), calibrate_keyframes=0)
    w = MainWindow(None, config, out_dir=tmp_path, fetch=fetch)
    qtbot.addWidget(w)
    return w


def fetch_bytes(data: bytes, calls: list):
    import io

    return lambda url, timeout: (calls.append(url), io.BytesIO(data))[1]


def test_missing_landmarker_asks_before_downloading(no_landmarker, qtbot, tmp_path, landmarker_model):
    from PySide6.QtWidgets import QMessageBox

    calls = []
    fetch = fetch_bytes(landmarker_model.read_bytes(), calls)
    w = landmarker_window(qtbot, tmp_path, fetch)  # the user says No
    assert len(no_landmarker["questions"]) == 1 and "face_landmarker.task" in no_landmarker["questions"][0]
    assert calls == [] and not w.engine.isRunning(), "nothing downloaded, the engine not started"
    assert "CELEBLOOK_FACE_LANDMARKER" in w.errors[-1]
    w.close()

    no_landmarker["answer"] = QMessageBox.StandardButton.Yes
    w = landmarker_window(qtbot, tmp_path, fetch)
    assert len(calls) == 1 and calls[0].startswith("https://storage.googleapis.com/mediapipe-models/")
    cached = tmp_path / "cache" / "celeblook" / "models" / "face_landmarker.task"
    assert cached.read_bytes() == landmarker_model.read_bytes() and "downloaded and checked" in w.views.message.text()
    qtbot.waitUntil(lambda: w.engine.models is not None or w.engine.isFinished(), timeout=TIMEOUT_MS)
    assert w.engine.models is not None, w.errors
    w.close()


def test_missing_landmarker_refuses_a_bad_download(no_landmarker, qtbot, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    no_landmarker["answer"] = QMessageBox.StandardButton.Yes
    w = landmarker_window(qtbot, tmp_path, fetch_bytes(b"<html>a captive portal</html>", []))
    assert "could not be downloaded" in w.errors[-1] and "sha256" in w.errors[-1]
    assert not w.engine.isRunning()
    folder = tmp_path / "cache" / "celeblook" / "models"
    assert not folder.exists() or not list(folder.iterdir()), "no partial file kept"
    w.close()


def test_headless_command_line(tmp_path, videos_dir, landmarker_model):
    """`celeblook-desktop --frames N --record --screenshot` as a user runs it: its own process (app.main runs Qt's
    event loop to the end and quits the application, which a test session must not share)."""
    import subprocess
    import sys

    from celeblook_desktop.app import build_parser

    assert build_parser().parse_args(["--demo"]).demo

    def run(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        return subprocess.run([sys.executable, "-m", "celeblook_desktop.app", *args], capture_output=True, text=True,
                              env=env, timeout=900)

    gif, shot = tmp_path / "out.gif", tmp_path / "window.png"
    done = run("--video", str(videos_dir / "dark_stage_clip.mp4"), "--frames", "6", "--builtin", "1",
               "--record", str(gif), "--screenshot", str(shot), "--side-by-side")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "processed" in done.stdout and f"wrote {gif}" in done.stdout
    import imageio.v3 as iio

    assert iio.imread(gif, index=None).shape[0] >= 2
    assert iio.imread(shot).shape[0] > 100
    missing = run("--video", str(tmp_path / "missing.mp4"), "--frames", "2")
    assert missing.returncode == 2 and "video not found" in missing.stderr and "Traceback" not in missing.stderr
