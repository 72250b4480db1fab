"""The main window: the views, gallery and controls panels (celeblook_desktop/panels), recording. Thin: the
engine does the work; this connects the panels to it.

Every problem is shown in the window (the message bar under the views, and the status bar), never raised.
"""
from __future__ import annotations

import os
import time
import urllib.request
from collections import deque
from pathlib import Path

from PySide6.QtCore import Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import QApplication, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QVBoxLayout, \
    QWidget

from engine.edits import Reenactment
from engine.errors import CelebLookError
from engine.inversion.inverter import InversionOptions
from engine.live import LiveSettings
from engine.models import Fetch, ModelEntry, download_model, missing_download, user_cache_dir
from engine.inversion.targets import IMAGE_SUFFIXES, Target

from celeblook_desktop.panels.controls import ControlsPanel
from celeblook_desktop.panels.gallery import GalleryPanel
from celeblook_desktop.panels.views import ViewsPanel
from celeblook_desktop.refcounts import guard as guard_refcounts
from celeblook_desktop.recorder import LIMIT_S, Recorder, Take, clock, default_record_path, limit_for, save_take, \
    side_by_side
from celeblook_desktop.workers import CaptureWorker, EngineConfig, EngineOutput, EngineWorker, LatestFrame, Source

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
STALL_SECONDS = 2.0  # a source that sent frames and then none for this long is said to have stalled


class MainWindow(QMainWindow):
    """CelebLook's window. `frames_done` is emitted once after `stop_after` processed frames (headless runs).
    `fetch` opens a URL for the face landmarker's download (urllib's urlopen; tests pass a fake)."""

    frames_done = Signal()
    recording_saved = Signal(str, str, bool)  # path, the message for the user, whether the limit ended the take
    recording_failed = Signal(str)
    recording_progress = Signal(str, int, int)  # path, frames written, frames in all

    def __init__(self, source: Source | None = None, engine_config: EngineConfig = EngineConfig(),
                 side_by_side_view: bool = True, out_dir: str | os.PathLike = ".", stop_after: int | None = None,
                 fetch: Fetch = urllib.request.urlopen):
        guard_refcounts()  # PySide6 6.12.0 would otherwise abort the app after minutes (refcounts.py)
        super().__init__()
        self.setWindowTitle("CelebLook")
        self.setAcceptDrops(True)
        self.out_dir = Path(out_dir)
        self.stop_after = stop_after
        self.fetch = fetch
        self.mailbox = LatestFrame()
        self.engine = EngineWorker(self.mailbox, engine_config)
        self.capture: CaptureWorker | None = None
        self.source: Source | None = None
        self._stream = 0
        self.recorder = Recorder()
        self.record_side_by_side = False
        self.record_path: Path | None = None
        self.targets: list[Target] = []
        self.target: Target | None = None
        self.last_output: EngineOutput | None = None
        self.errors: list[str] = []
        self.notices: list[str] = []
        self._stalled = False
        self._result_times: deque[tuple[float, int]] = deque(maxlen=20)  # (time, generator runs so far)
        self._shown_index: tuple[int, int] | None = None
        self._writers: list[QThread] = []
        self.saved: list[Path] = []  # recordings written (appended by the saving thread)
        self.save_log: list[dict] = []  # each of them: path, frames, seconds to encode, whether the limit ended it
        self._build_ui(side_by_side_view)
        self.engine.ready.connect(self._on_engine_ready)
        self.engine.result_ready.connect(self._on_result)
        self.engine.target_ready.connect(self._on_target)
        self.engine.target_fitted.connect(self._on_target_fitted)
        self.engine.target_failed.connect(self.gallery_panel.drop_pending)
        self.engine.sweep_done.connect(lambda p: self.show_info(f"Sweep GIF written: {p}"))
        self.engine.busy.connect(self.show_info)
        self.engine.calibrated.connect(self._on_calibrated)
        self.engine.error.connect(self.show_error)
        self.recording_saved.connect(lambda path, text, limit: (self.save_label.setText(""),
                                                                (self.show_notice if limit else self.show_info)(text)))
        self.recording_failed.connect(lambda text: (self.save_label.setText(""), self.show_error(text)))
        self.recording_progress.connect(lambda path, done, total: self.save_label.setText(
            f"saving {Path(path).name}: {done}/{total} frames" if done < total else ""))
        self._input_timer = QTimer(self)
        self._input_timer.timeout.connect(self._refresh_input)
        self._input_timer.start(33)
        self._watchdog = QTimer(self)
        self._watchdog.timeout.connect(self._watch_capture)
        self._watchdog.start(500)
        self._start_engine()
        if source is not None:
            self.set_source(source)

    # --- layout ---------------------------------------------------------------------------------------------
    def _build_ui(self, side_by_side_view: bool) -> None:
        self.views = ViewsPanel(side_by_side_view)
        self.gallery_panel = GalleryPanel()
        self.controls = c = ControlsPanel(side_by_side_view, self.engine.calibrating)
        left = QVBoxLayout()
        left.addWidget(self.views, 1)
        left.addWidget(self.gallery_panel)
        root = QHBoxLayout()
        root.addLayout(left, 1)
        root.addWidget(c)
        central = QWidget()
        central.setLayout(root)
        self.setCentralWidget(central)

        self.views.open_video_button.clicked.connect(self.choose_video)
        self.views.demo_button.clicked.connect(lambda: self.set_source(Source(demo=True)))
        self.gallery_panel.gallery.currentRowChanged.connect(self._on_gallery_row)
        self.gallery_panel.add_photo_button.clicked.connect(self.choose_photo)
        c.source_box.activated.connect(self._on_source_box)
        c.side_by_side_box.toggled.connect(self.views.input_view.setVisible)
        for signal in c.settings_changed_signals():
            signal.connect(self._settings_changed)
        c.calib_box.toggled.connect(lambda on: self.engine.set_calibrating(on))
        c.recalibrate_button.clicked.connect(self._recalibrate)
        c.save_calibration_button.clicked.connect(lambda: self.save_calibration())
        c.record_button.toggled.connect(self._on_record_toggled)
        c.sweep_button.clicked.connect(lambda: self.sweep_gif())

        self.fps_label = QLabel("— fps")
        self.record_label = QLabel("")
        self.save_label = QLabel("")
        self.statusBar().addPermanentWidget(self.record_label)
        self.statusBar().addPermanentWidget(self.save_label)
        self.stage_label = QLabel("")
        self.drop_label = QLabel("")
        self.statusBar().addPermanentWidget(self.stage_label)
        self.statusBar().addPermanentWidget(self.drop_label)
        self.statusBar().addPermanentWidget(self.fps_label)
        self.resize(1180, 700)

    # --- the engine -----------------------------------------------------------------------------------------
    def _start_engine(self) -> None:
        """Start the engine thread; when the face landmarker model is found nowhere, first offer its download
        (asked, checksum-pinned). Headless runs (stop_after) ask nothing: the engine then says what is missing."""
        entry = missing_download("face_landmarker", self.engine.config.landmarker_model)
        if entry is not None and self.stop_after is None and not self.offer_download(entry):
            self.views.output_view.setText("no face landmarker model")
            return
        self.engine.start()

    def offer_download(self, entry: ModelEntry) -> bool:
        """Ask, then download `entry` into the user cache (checked against its sha256, written atomically);
        True when it is there. A refusal or a failed download is one message in the window."""
        folder = user_cache_dir() / "models"
        answer = QMessageBox.question(
            self, "Download the face model?",
            f"CelebLook finds faces with MediaPipe's face landmarker ({entry.file}, {entry.bytes / 1e6:.1f} MB, "
            f"{entry.licence}), which is not installed.\n\nDownload it once from\n{entry.url}\ninto {folder}?\n"
            "It is checked against its pinned checksum before it is used.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            self.show_error(f"No face landmarker model, so the engine did not start. Set {entry.env}=/path/to/"
                            f"{entry.file}, or restart CelebLook and let it download the model.")
            return False
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            path = download_model(entry, folder, fetch=self.fetch)
        except CelebLookError as exc:
            self.show_error(f"The face landmarker model could not be downloaded: {exc}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.show_info(f"Face landmarker model downloaded and checked: {path}")
        return True

    # --- messages -------------------------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        self.errors.append(text)
        self.views.message.setStyleSheet("padding: 4px; background: #5a1d1d; color: #fff;")
        self.views.message.setText(text)
        self.statusBar().showMessage(text, 10000)

    def show_notice(self, text: str) -> None:
        """Something the user must notice that is not a failure (a recording ended by its limit, a camera's odd
        frames)."""
        self.notices.append(text)
        self.views.message.setStyleSheet("padding: 4px; background: #6b5300; color: #fff;")
        self.views.message.setText(text)
        self.statusBar().showMessage(text, 10000)

    def show_info(self, text: str) -> None:
        self.views.message.setStyleSheet("padding: 4px; color: palette(text);")
        self.views.message.setText(text)
        self.statusBar().showMessage(text, 5000)

    # --- sources --------------------------------------------------------------------------------------------
    def set_source(self, source: Source) -> None:
        """Switch to a camera or a video file; the old capture thread stops, the engine restarts its filters."""
        if self.capture is not None:
            self.capture.stop()
        self._stream += 1
        self.source = source
        self.views.offer_sources(False)
        self.capture = CaptureWorker(source, self.mailbox, self._stream)
        self.capture.opened.connect(self.show_info)
        self.capture.failed.connect(self._on_capture_failed)
        self.capture.notice.connect(self.show_notice)
        self._stalled = False
        self.capture.start()
        self._sync_source_box()

    def _sync_source_box(self) -> None:
        box = self.controls.source_box
        box.blockSignals(True)
        for i in range(box.count() - 1, -1, -1):
            if isinstance(box.itemData(i), Source) and box.itemData(i).video is not None:
                box.removeItem(i)
        if self.source is not None and self.source.video is not None:
            box.insertItem(box.count() - 1, f"Video: {self.source.video.name}", self.source)
            box.setCurrentIndex(box.count() - 2)
        elif self.source is not None:  # a camera or the demo face
            box.setCurrentIndex(next((i for i in range(box.count()) if box.itemData(i) == self.source), -1))
        box.blockSignals(False)

    def _on_source_box(self, index: int) -> None:
        data = self.controls.source_box.itemData(index)
        if data == "video":
            self.choose_video()
        elif isinstance(data, Source) and data != self.source:
            self.set_source(data)

    def _on_capture_failed(self, text: str) -> None:
        self.show_error(text)
        self.views.offer_sources(True)
        self.views.output_view.setText("no source")

    def _watch_capture(self) -> None:
        """A source that sent frames and then stalls (a camera whose read() hangs) is said so once, and that it
        came back; the capture thread cannot say it while it is stuck in the driver."""
        frame = self.mailbox.peek()
        if self.capture is None or not self.capture.isRunning() or frame is None or frame.stream != self._stream:
            return
        quiet = time.monotonic() - self.mailbox.last_put
        if quiet > STALL_SECONDS and not self._stalled:
            self._stalled = True
            self.show_error(f"{self.source.label.capitalize()} sent no frame for {quiet:.0f} s (stalled?): waiting "
                            "for it; pick another source if it does not come back")
        elif quiet <= STALL_SECONDS and self._stalled:
            self._stalled = False
            self.show_info(f"{self.source.label.capitalize()} is sending frames again")

    def choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video file", "",
                                              "Videos (" + " ".join("*" + s for s in VIDEO_SUFFIXES) + ")")
        if path:
            self.set_source(Source(video=Path(path)))
        else:
            self._sync_source_box()

    # --- targets --------------------------------------------------------------------------------------------
    def choose_photo(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a target photo", "",
                                              "Images (" + " ".join("*" + s for s in IMAGE_SUFFIXES) + ")")
        if path:
            self.open_file(path)

    def open_file(self, path: str | os.PathLike) -> None:
        """A dropped or chosen file: a photo becomes the target, a video the source; anything else is refused."""
        path = Path(path)
        suffix = path.suffix.lower()
        if not path.is_file():
            self.show_error(f"Not a file: {path}")
        elif suffix in VIDEO_SUFFIXES:
            self.set_source(Source(video=path))
        elif suffix not in IMAGE_SUFFIXES:
            self.show_error(f"{path.name} is not an image: drop a photo ({', '.join(IMAGE_SUFFIXES)}) "
                            f"or a video ({', '.join(VIDEO_SUFFIXES)})")
        else:
            self.gallery_panel.add_pending(path.stem)
            self.engine.load_target(path)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if not urls:
            self.show_error("Drop a photo file from this computer")
            return
        event.acceptProposedAction()
        self.open_file(urls[0].toLocalFile())

    def _on_target(self, target: Target, select: bool) -> None:
        self.gallery_panel.drop_pending(target.name)
        self.targets.append(target)
        # a user's photo goes first (most recent), after "you"
        item = self.gallery_panel.add(target, len(self.targets) - 1, first=select)
        if select or self.target is None:
            self.gallery_panel.gallery.setCurrentItem(item)
            if select:
                self.show_info(f"Target: {target.name}")

    def _on_target_fitted(self, shown: Target, fitted: Target) -> None:
        """The photo target, fitted to the live student, replaces the one shown (same tile): the live view renders it
        at the student's rate from now on."""
        index = next((i for i, t in enumerate(self.targets) if t is shown), None)
        if index is None:
            return
        self.targets[index] = fitted
        self.show_info(f"Target {fitted.name}: fitted to the live generator")
        if self.target is shown:
            self.target = fitted
            self._settings_changed()

    def _on_gallery_row(self, row: int) -> None:
        index = self.gallery_panel.index_at(row)
        self.target = self.targets[index] if index is not None else None
        self._settings_changed()

    # --- settings -------------------------------------------------------------------------------------------
    def _on_calibrated(self, keyframes: int, wanted: int) -> None:
        self.calibration_keyframes = keyframes
        self.controls.save_calibration_button.setEnabled(keyframes > 0)
        done = "calibrated to your face" if keyframes >= wanted else "calibrating to your face"
        self.show_info(f"{done.capitalize()} ({keyframes}/{wanted} keyframes)")

    calibration_keyframes = 0

    def _recalibrate(self) -> None:
        self.engine.recalibrate()
        self.calibration_keyframes = 0
        self.controls.save_calibration_button.setEnabled(False)
        self.controls.calib_box.setChecked(True)
        self.show_info("Calibrating to your face again from the next frames…")

    def _on_engine_ready(self, info: dict) -> None:
        directions = info.get("directions", {})
        for name, (slider, label) in self.controls.edit_sliders.items():
            if name in directions:
                unit, max_units = directions[name]
                slider.setEnabled(True)
                slider.setToolTip(f"{name}: ±{max_units:.2f} {unit}")
            else:
                slider.setToolTip(info.get("directions_error") or f"no '{name}' direction in resources/directions.npz")
        self._directions = directions
        if info.get("skin_tone_error"):
            self.controls.skin_box.setChecked(False)
            self.controls.skin_box.setEnabled(False)
            self.controls.skin_box.setToolTip(info["skin_tone_error"])
        if not info.get("identity_feedback", True):
            self.controls.likeness_box.setChecked(False)
            self.controls.likeness_box.setEnabled(False)
            self.controls.likeness_box.setToolTip("This encoder has no identity feedback model "
                                                  "(python -m training.fit.identity_feedback)")
        self.views.output_view.setText("waiting for frames…")
        self._settings_changed()

    _directions: dict = {}

    def settings(self) -> LiveSettings:
        """LiveSettings from the controls."""
        c = self.controls
        amounts = {}
        for name, (slider, label) in c.edit_sliders.items():
            if name in self._directions and slider.isEnabled():
                value = slider.value() / 100.0 * self._directions[name][1]
                amounts[name] = value
                unit = self._directions[name][0]
                label.setText(f"{value:+.0f}°" if unit == "degrees" else f"{value:+.0f} y" if unit == "years"
                              else f"{value:+.2f}")
        strength = c.strength.value() / 100.0
        c.strength_label.setText(f"{strength:.2f}")
        target = self.target.live_settings() if self.target is not None else {}
        return LiveSettings(**target, strength=strength,
                            preset=c.preset.currentText(), target_colours=c.target_colours_box.isChecked(),
                            reenactment=Reenactment() if c.your_smile_box.isChecked() else Reenactment(rest=()),
                            amounts=amounts,
                            smooth_latents=c.smoothing_box.isChecked(),
                            smooth_landmarks=c.smoothing_box.isChecked(), reuse=c.reuse_box.isChecked(),
                            inversion=InversionOptions(match_skin=c.skin_box.isChecked(),
                                                       identity_feedback=c.likeness_box.isChecked()))

    def _settings_changed(self, *_) -> None:
        self.engine.set_settings(self.settings())

    # --- frames ---------------------------------------------------------------------------------------------
    def _refresh_input(self) -> None:
        r = self.recorder
        if r.recording and r.elapsed() >= r.limit_s:  # the limit ends a take even when no frame comes to say so
            r.limit_reached = True
            self.stop_recording()
        self._refresh_record_label()
        frame = self.mailbox.peek()
        if frame is not None and self.views.input_view.isVisible() and (frame.stream, frame.index) != self._shown_index:
            self._shown_index = (frame.stream, frame.index)
            self.views.input_view.show_frame(frame.image)

    def _on_result(self, out: EngineOutput) -> None:
        self.last_output = out
        r = out.result
        self.views.output_view.show_frame(r.frame)
        now = time.monotonic()
        self._result_times.append((now, r.renders))
        if len(self._result_times) > 1:
            (t0, n0), (t1, n1) = self._result_times[0], self._result_times[-1]
            span = max(1e-6, t1 - t0)
            refresh = max(0, n1 - n0) / span  # a new pipeline (new source) restarts the count
            self.fps_label.setText(f"{(len(self._result_times) - 1) / span:.1f} fps · face {refresh:.1f}/s")
        if r.face_found:
            self.controls.face_indicator.setText("face found")
            self.controls.face_indicator.setStyleSheet("color: #2a2;")
        else:
            self.controls.face_indicator.setText("no face: showing the input unchanged")
            self.controls.face_indicator.setStyleSheet("color: #c60;")
        if r.timings:
            self.stage_label.setText(" · ".join(f"{k} {v:.0f}" if v >= 10 else f"{k} {v:.1f}"
                                                for k, v in r.timings.items() if k != "total") + " ms")
        dropped_pct = 100.0 * out.dropped / max(1, out.captured)
        self.drop_label.setText(f"dropped {out.dropped}/{out.captured} frames ({dropped_pct:.0f}%)")
        if self.recorder.recording:
            self._record(side_by_side(out.source.image, r.frame) if self.record_side_by_side else r.frame)
        if self.stop_after is not None and out.processed == self.stop_after:
            self.frames_done.emit()

    # --- recording ------------------------------------------------------------------------------------------
    def start_recording(self, path: str | os.PathLike | None = None, side_by_side_frames: bool | None = None,
                        limit_s: float | None = None) -> None:
        """Start a take: .gif or .mp4 by `path`'s suffix (default: the controls' format), limited to `limit_s`
        (default: the format's limit, LIMIT_S)."""
        try:
            limit = limit_for(path) if path else LIMIT_S[self.controls.record_format.currentData()]
            limit = limit if limit_s is None else min(limit, limit_s)
            self.recorder.start(limit)
        except CelebLookError as exc:
            self.show_error(str(exc))
            self._set_record_button(False)
            return
        self.record_path = Path(path) if path else None
        self.record_side_by_side = self.controls.record_sbs_box.isChecked() if side_by_side_frames is None \
            else side_by_side_frames
        self._set_record_button(True)
        self.show_info(f"Recording (up to {clock(limit)})…")

    def _set_record_button(self, on: bool) -> None:
        b = self.controls.record_button
        b.blockSignals(True)
        b.setChecked(on)
        b.setText("■ Stop recording" if on else "● Record")
        b.blockSignals(False)
        self.controls.record_format.setEnabled(not on)
        self._refresh_record_label()

    def _refresh_record_label(self) -> None:
        r = self.recorder
        text = f"● recording {clock(r.elapsed())} / limit {clock(r.limit_s)}" if r.recording else ""
        if self.record_label.text() != text:
            self.record_label.setText(text)

    def _record(self, frame) -> None:
        """Spool a frame; at the limit (or when the disk refuses frames) the take ends and is saved, with a notice."""
        try:
            self.recorder.add(frame)
        except CelebLookError as exc:
            self.stop_recording()
            self.show_error(f"Recording stopped: {exc}")
            return
        if self.recorder.limit_reached:
            self.stop_recording()  # the notice that the limit ended it comes with the saved file (_save)

    def stop_recording(self, wait: bool = False) -> Path | None:
        """Stop and save the take off the UI thread (or now, with `wait`); returns its path (None when not recording,
        or with `wait` when saving failed)."""
        self._set_record_button(False)
        take = self.recorder.stop()
        if take is None:
            return None
        path = self.record_path or default_record_path(self.out_dir, "celeblook",
                                                       self.controls.record_format.currentData())
        if wait:
            return path if self._save(take, path) else None
        writer = _TakeWriter(take, path, self)
        self._writers.append(writer)
        writer.finished.connect(lambda: self._writers.remove(writer) if writer in self._writers else None)
        writer.start()
        if take.limit_reached:
            self.show_notice(f"Recording stopped at its {clock(take.limit_s)} limit; saving {take.frames} frames "
                             f"to {path}…")
        else:
            self.show_info(f"Saving {take.frames} frames to {path}…")
        return path

    def _save(self, take: Take, path: Path) -> bool:
        """Encode the take (any thread); the outcome is a signal, and `saved` lists the files written."""
        last = [-1]

        def progress(done: int, total: int) -> None:  # about every 5 %, not per frame
            if done == total or done * 20 // total != last[0]:
                last[0] = done * 20 // total
                self.recording_progress.emit(str(path), done, total)

        t0, frames = time.monotonic(), take.frames
        try:
            save_take(take, path, progress)
        except CelebLookError as exc:
            self.recording_failed.emit(str(exc))
            return False
        except Exception as exc:  # never let a save take the app down
            self.recording_failed.emit(f"could not write {path}: {type(exc).__name__}: {exc}")
            return False
        seconds = time.monotonic() - t0
        self.save_log.append({"path": path.name, "frames": frames, "seconds": round(seconds, 2),
                              "limit": take.limit_reached})
        self.saved.append(path)
        note = ""
        if take.limit_reached:
            note = f"Recording stopped at its {clock(take.limit_s)} limit" + \
                (" (choose MP4 to record up to 10 minutes)" if path.suffix.lower() == ".gif" else "") + ". "
        self.recording_saved.emit(str(path), f"{note}Recording written: {path} ({frames} frames in {seconds:.1f} s)",
                                  take.limit_reached)
        return True

    def wait_for_saves(self) -> None:
        """Block until every recording being saved is written (or has failed)."""
        for writer in list(self._writers):
            writer.wait()

    def _on_record_toggled(self, on: bool) -> None:
        if on:
            self.start_recording()
        else:
            self.stop_recording()

    def sweep_gif(self, path: str | os.PathLike | None = None, steps: int = 12) -> Path:
        """Queue a sweep GIF of the current edit (none -> full, boomerang) on the current frame; returns its path."""
        path = Path(path) if path else default_record_path(self.out_dir, "celeblook-sweep")
        self.engine.sweep(path, steps)
        return path

    def save_calibration(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write the engine's calibration (atomically) to `path` (default: calibration.npz in the output folder)."""
        cal = self.engine.calibration
        if cal is None:
            self.show_error("No calibration yet: it is collected from the first frames with your face")
            return None
        path = Path(path) if path else self.out_dir / "calibration.npz"
        try:
            cal.save(path)
        except (CelebLookError, OSError) as exc:
            self.show_error(f"Could not save the calibration: {exc}")
            return None
        self.show_info(f"Calibration saved: {path} (celeblook-desktop --calibration {path})")
        return path

    # --- shutdown -------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the threads (idempotent)."""
        self._input_timer.stop()
        self._watchdog.stop()
        if self.capture is not None:
            self.capture.stop()
        self.engine.stop()
        self.wait_for_saves()  # a recording being saved is finished, never cut off (saves take seconds)

    def closeEvent(self, event) -> None:
        if self.recorder.recording:
            self.stop_recording(wait=True)
        self.shutdown()
        super().closeEvent(event)


class _TakeWriter(QThread):
    """Saves one take off the UI thread (MainWindow._save)."""

    def __init__(self, take: Take, path: Path, window: MainWindow):
        super().__init__(window)
        self.take, self.path, self.window = take, path, window

    def run(self) -> None:
        self.window._save(self.take, self.path)
