"""Faults injected on purpose into the desktop app (pytest-qt, offscreen, the real models and pipeline): a camera
that raises, stalls, sends empty or odd frames or changes resolution (a fake camera object at the capture
boundary, Source.opener, fed by a real clip), a target photo deleted while it is being inverted, an output folder
that goes away or turns read-only while recording, a truncated model file. Each one gives one clear message in the
window, and the app keeps running: frames are processed after it (or, without an engine, still captured).

Also the recording in the window: its clock and limit notice, and a close while a recording is being saved.
No wall-clock thresholds: every wait is on a counter or a message, with a generous timeout."""
from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported

import shutil  # noqa: E402
import threading  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from tests.conftest import require  # noqa: E402

pytestmark = pytest.mark.slow  # the app with its real models, one window per fault
require("pytestqt", "dev")
from PySide6.QtCore import Qt  # noqa: E402

from celeblook_desktop.recorder import clock  # noqa: E402
from celeblook_desktop.window import MainWindow  # noqa: E402
from celeblook_desktop.workers import EngineConfig, Source  # noqa: E402
from engine.video import VideoReader  # noqa: E402

TIMEOUT_MS = 90_000  # generous: the 2-core machine is shared
FAULT_AT = 12  # the camera misbehaves from this read on (the engine has processed frames by then)


class FakeCamera:
    """cv2.VideoCapture's read/get/release over a real clip at `fps`, with `fault(n, image)` deciding what read
    number n returns instead (it may raise or block, like a driver)."""

    def __init__(self, clip, fault=None, fps: float = 25.0):
        self.reader = VideoReader(clip, loop=True)
        self.fault = fault or (lambda n, image: (True, image))
        self.period = 1.0 / fps
        self.reads = 0
        self.released = threading.Event()

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_WIDTH: self.reader.size[0], cv2.CAP_PROP_FRAME_HEIGHT: self.reader.size[1]}.get(prop, 0)

    def read(self):
        self.released.wait(self.period)  # a camera's read blocks until its next frame
        self.reads += 1
        return self.fault(self.reads, self.reader.read().image)

    def release(self) -> None:
        self.released.set()
        self.reader.close()


@pytest.fixture
def window(qtbot, tmp_path, landmarker_model):
    """make(source, wait_for_engine=True, **EngineConfig fields) -> a shown MainWindow writing into tmp_path."""
    defaults = {"threads": 2, "landmarker_model": str(landmarker_model), "builtin_seeds": (),
                "target_cache_dir": tmp_path / "targets", "calibrate_keyframes": 0, "target_quality_steps": 0}

    def make(source: Source, wait_for_engine: bool = True, **config) -> MainWindow:
        w = MainWindow(source, EngineConfig(**{**defaults, **config}), out_dir=tmp_path)
        qtbot.addWidget(w)  # closed (threads stopped) by pytest-qt at the end of the test
        w.show()
        if wait_for_engine:
            engine_started(qtbot, w)
        return w

    return make


def engine_started(qtbot, w: MainWindow) -> None:
    qtbot.waitUntil(lambda: w.engine.models is not None or w.engine.isFinished(), timeout=TIMEOUT_MS)
    assert w.engine.models is not None, w.errors


def processed(w: MainWindow) -> int:
    return w.last_output.processed if w.last_output is not None else 0


def keeps_processing(qtbot, w: MainWindow, frames: int = 5) -> None:
    """The app goes on: `frames` more frames come out of the engine."""
    start = processed(w)
    qtbot.waitUntil(lambda: processed(w) >= start + frames, timeout=TIMEOUT_MS)


def camera_window(window, qtbot, videos_dir, fault) -> tuple[MainWindow, FakeCamera]:
    camera = FakeCamera(videos_dir / "d18.mp4", fault)
    w = window(Source(camera=0, opener=lambda: camera))
    qtbot.waitUntil(lambda: processed(w) >= 1, timeout=TIMEOUT_MS)
    return w, camera


def messages(w: MainWindow) -> list[str]:
    return w.errors + w.notices


def test_camera_that_raises_is_one_message_and_another_source_runs(window, qtbot, videos_dir):
    def fault(n, image):
        if n >= FAULT_AT:
            raise OSError("VIDIOC_DQBUF: No such device")
        return True, image

    w, camera = camera_window(window, qtbot, videos_dir, fault)
    qtbot.waitUntil(lambda: any("Camera 0 failed" in e for e in w.errors), timeout=TIMEOUT_MS)
    assert [e for e in messages(w) if "Camera 0" in e] == [
        "Camera 0 failed (OSError: VIDIOC_DQBUF: No such device). Pick a source to continue."]
    assert camera.released.is_set(), "the capture thread let go of the camera"
    assert w.views.demo_button.isVisibleTo(w), "other sources are offered"
    w.set_source(Source(video=videos_dir / "d20.mp4"))  # the app goes on with another source
    keeps_processing(qtbot, w)


def test_camera_that_stalls_is_said_and_its_return_too(window, qtbot, videos_dir):
    def fault(n, image):
        if n == FAULT_AT:
            threading.Event().wait(4.0)  # read() hangs in the driver for 4 s, then the camera comes back
        return True, image

    w, _ = camera_window(window, qtbot, videos_dir, fault)
    qtbot.waitUntil(lambda: any("stalled?" in e for e in w.errors), timeout=TIMEOUT_MS)
    assert len(w.errors) == 1, "said once, not every half second"
    assert w.errors[0].startswith("Camera 0 sent no frame for ") and w.errors[0].endswith(
        " s (stalled?): waiting for it; pick another source if it does not come back")
    qtbot.waitUntil(lambda: "Camera 0 is sending frames again" in w.views.message.text(), timeout=TIMEOUT_MS)
    keeps_processing(qtbot, w)


def test_camera_empty_frames_are_skipped_with_one_message(window, qtbot, videos_dir):
    empties = [None, np.zeros((0, 0, 3), np.uint8)]

    def fault(n, image):
        if FAULT_AT <= n < FAULT_AT + 8:  # under a second of nothing: a hiccup, not an unplugged camera
            return True, empties[n % 2]
        return True, image

    w, camera = camera_window(window, qtbot, videos_dir, fault)
    qtbot.waitUntil(lambda: camera.reads >= FAULT_AT + 8, timeout=TIMEOUT_MS)
    keeps_processing(qtbot, w)
    assert messages(w) == ["Camera 0 sent an empty frame: skipped, the view goes on with the next good frame"]


def test_camera_odd_frames_are_converted_or_skipped_with_one_message_each(window, qtbot, videos_dir):
    def fault(n, image):
        if FAULT_AT <= n < FAULT_AT + 4:
            return True, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if FAULT_AT + 4 <= n < FAULT_AT + 8:
            return True, image[:16, :16]
        if FAULT_AT + 8 <= n < FAULT_AT + 12:
            return True, cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
        return True, image

    w, camera = camera_window(window, qtbot, videos_dir, fault)
    qtbot.waitUntil(lambda: camera.reads >= FAULT_AT + 12, timeout=TIMEOUT_MS)
    keeps_processing(qtbot, w)
    assert messages(w) == ["Camera 0 sent grey frames: converted, the view goes on",
                           "Camera 0 sent a 16×16 frame (too small): skipped, the view goes on with the next good "
                           "frame",
                           "Camera 0 sent 4-channel frames: converted, the view goes on"]
    assert w.last_output.source.image.shape == (480, 480, 3)


def test_camera_changing_resolution_restarts_tracking_at_the_new_size(window, qtbot, videos_dir):
    def fault(n, image):  # an odd size too: 641×361
        return (True, cv2.resize(image, (641, 361), interpolation=cv2.INTER_AREA)) if n >= FAULT_AT else (True, image)

    w, _ = camera_window(window, qtbot, videos_dir, fault)
    qtbot.waitUntil(lambda: processed(w) > 0 and w.last_output.source.image.shape[:2] == (361, 641),
                    timeout=TIMEOUT_MS)
    keeps_processing(qtbot, w)
    assert messages(w) == ["Camera 0 changed resolution from 480×480 to 641×361: tracking starts again"]
    out = w.last_output
    assert out.result.frame.shape == (361, 641, 3) and out.source.segment == 1
    qtbot.waitUntil(lambda: w.last_output.result.face_found, timeout=TIMEOUT_MS)  # the face is tracked again


def test_target_photo_deleted_while_being_inverted(window, qtbot, videos_dir, face_photo, tmp_path):
    w = window(Source(video=videos_dir / "d18.mp4"))
    photo = tmp_path / "friend.jpg"
    shutil.copy(face_photo("biden.jpg"), photo)
    # on the slow-job thread, the moment its inversion starts: the file goes
    w.engine.busy.connect(lambda text: photo.unlink() if "Inverting friend.jpg" in text else None,
                          Qt.ConnectionType.DirectConnection)
    w.open_file(photo)
    qtbot.waitUntil(lambda: bool(w.errors), timeout=TIMEOUT_MS)
    assert w.errors == [f"The target photo friend.jpg was deleted or moved before it could be inverted ({photo})"]
    qtbot.waitUntil(lambda: w.gallery_panel.pending() == [], timeout=TIMEOUT_MS)  # no tile left saying "inverting"
    assert w.target is None
    keeps_processing(qtbot, w)


@pytest.mark.parametrize("how", ["removed", "read-only"])
def test_output_folder_lost_while_recording(window, qtbot, videos_dir, tmp_path, how):
    if how == "read-only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders: the 'removed' case covers this machine")
    w = window(Source(video=videos_dir / "d18.mp4"))
    folder = tmp_path / "out"
    folder.mkdir()
    w.start_recording(folder / "take.gif")
    start = processed(w)
    qtbot.waitUntil(lambda: processed(w) >= start + 4 and w.recorder.spool.count >= 2, timeout=TIMEOUT_MS)
    if how == "removed":
        shutil.rmtree(folder)
    else:
        folder.chmod(0o555)
    spool = w.recorder.spool.folder
    w.stop_recording()
    qtbot.waitUntil(lambda: bool(w.errors), timeout=TIMEOUT_MS)
    reason = "does not exist" if how == "removed" else "is not writable"
    assert len(w.errors) == 1 and w.errors[0].startswith(f"could not write {folder / 'take.gif'}: output folder "
                                                         f"{reason}: {folder}; the ")
    assert w.errors[0].endswith(f"recorded frames are kept in {spool}")
    assert spool.is_dir() and list(spool.glob("*.jpg")), "nothing recorded is lost"
    shutil.rmtree(spool)  # kept in the system's temp folder for the user; not for a test
    keeps_processing(qtbot, w)
    w.start_recording(tmp_path / "again.gif")  # and recording elsewhere works
    start = processed(w)
    qtbot.waitUntil(lambda: processed(w) >= start + 3, timeout=TIMEOUT_MS)
    w.stop_recording()
    qtbot.waitUntil(lambda: (tmp_path / "again.gif").is_file(), timeout=TIMEOUT_MS)
    if how == "read-only":
        folder.chmod(0o755)


@pytest.mark.parametrize("model", ["landmarker", "encoder"])
def test_truncated_model_file_is_one_message_and_the_window_runs(window, qtbot, videos_dir, landmarker_model,
                                                                  repo_root, tmp_path, model):
    original = landmarker_model if model == "landmarker" else repo_root / "resources/models/inversion_encoder.onnx"
    truncated = tmp_path / original.name
    truncated.write_bytes(original.read_bytes()[: original.stat().st_size // 2])
    option = {"landmarker_model": str(truncated)} if model == "landmarker" else {"encoder": str(truncated)}
    w = window(Source(video=videos_dir / "d18.mp4"), wait_for_engine=False, **option)
    qtbot.waitUntil(lambda: bool(w.errors), timeout=TIMEOUT_MS)
    assert len(w.errors) == 1 and w.errors[0].startswith("The engine could not start: ")
    assert str(truncated) in w.errors[0] and "truncated" in w.errors[0]
    assert w.views.message.text() == w.errors[0]
    captured = w.mailbox.captured  # no engine, but the window and the capture go on
    qtbot.waitUntil(lambda: w.mailbox.captured >= captured + 5, timeout=TIMEOUT_MS)
    assert w.isVisible() and w.last_output is None


def test_recording_clock_limit_notice_and_close_while_saving(window, qtbot, videos_dir, tmp_path):
    w = window(Source(video=videos_dir / "d18.mp4"))
    w.start_recording(tmp_path / "short.gif")
    assert w.record_label.text() == "● recording 00:00 / limit 00:50"
    qtbot.waitUntil(lambda: w.recorder.spool.count >= 2, timeout=TIMEOUT_MS)
    w.recorder.limit_s = w.recorder.elapsed()  # the limit is now (not 50 s): the window's next tick ends the take
    limit = clock(w.recorder.limit_s)
    qtbot.waitUntil(lambda: (tmp_path / "short.gif").is_file(), timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: "Recording written" in w.views.message.text(), timeout=TIMEOUT_MS)
    assert w.views.message.text().startswith(f"Recording stopped at its {limit} limit (choose MP4 to record up to "
                                             "10 minutes). Recording written: ")
    assert w.notices and not w.recorder.recording and w.record_label.text() == ""
    assert not w.controls.record_button.isChecked()
    keeps_processing(qtbot, w)

    w.start_recording(tmp_path / "closing.mp4")
    start = processed(w)
    qtbot.waitUntil(lambda: processed(w) >= start + 4 and w.recorder.spool.count >= 2, timeout=TIMEOUT_MS)
    frames = w.recorder.spool.count
    w.stop_recording()  # saved on its own thread...
    w.close()  # ...which the window waits for: closing never cuts a save off
    capture = cv2.VideoCapture(str(tmp_path / "closing.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) >= frames
    capture.release()
