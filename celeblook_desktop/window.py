"""The main window: input and output views, controls, gallery strip, recording. Thin: the engine does the work.

Every problem is shown in the window (the message bar under the views, and the status bar), never raised.
"""
from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QListView, QListWidget, QListWidgetItem, QMainWindow, QPushButton, QSizePolicy,
                               QSlider, QVBoxLayout, QWidget)

from engine.edits import MORPH_PRESETS
from engine.errors import CelebLookError
from engine.inversion.inverter import InversionOptions
from engine.live import LiveSettings
from engine.models import MODELS_DIR
from engine.inversion.targets import IMAGE_SUFFIXES, Target

from celeblook_desktop.recorder import Recorder, default_gif_path, save_gif, side_by_side
from celeblook_desktop.workers import CaptureWorker, EngineConfig, EngineOutput, EngineWorker, LatestFrame, Source

# Text prompts need a CLIP text encoder and the CLIP -> W+ mapper exported to ONNX (docs/DESIGN.md, section 6).
TEXT_MODEL_FILES = ("clip_text_encoder.onnx", "clip_wplus_mapper.onnx")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
SLIDER_EDITS = (("yaw", "Head yaw"), ("pitch", "Head pitch"), ("smile", "Expression (smile)"))
GALLERY_MAX = 12
CAMERA_CHOICES = 4


def bgr_to_pixmap(image: np.ndarray, size: QSize | None = None) -> QPixmap:
    """uint8 BGR array -> QPixmap, optionally fitted into `size` (aspect kept)."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    qimage = QImage(image.data, w, h, image.strides[0], QImage.Format.Format_BGR888).copy()
    pixmap = QPixmap.fromImage(qimage)
    if size is not None and size.width() > 0 and size.height() > 0:
        pixmap = pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return pixmap


def missing_text_models(models_dir: Path = MODELS_DIR) -> list[str]:
    return [f for f in TEXT_MODEL_FILES if not (Path(models_dir) / f).is_file()]


class VideoView(QLabel):
    """A label that shows frames scaled to fit."""

    def __init__(self, title: str):
        super().__init__(title)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(240, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setStyleSheet("background: #111; color: #aaa;")
        self.frame: np.ndarray | None = None

    def show_frame(self, image: np.ndarray) -> None:
        self.frame = image
        self.setPixmap(bgr_to_pixmap(image, self.size()))


class MainWindow(QMainWindow):
    """CelebLook's window. `frames_done` is emitted once after `stop_after` processed frames (headless runs)."""

    frames_done = Signal()
    gif_written = Signal(str)
    gif_failed = Signal(str)

    def __init__(self, source: Source | None = None, engine_config: EngineConfig = EngineConfig(),
                 side_by_side_view: bool = True, out_dir: str | os.PathLike = ".", stop_after: int | None = None):
        super().__init__()
        self.setWindowTitle("CelebLook")
        self.setAcceptDrops(True)
        self.out_dir = Path(out_dir)
        self.stop_after = stop_after
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
        self._result_times: deque[tuple[float, int]] = deque(maxlen=20)  # (time, generator runs so far)
        self._shown_index: tuple[int, int] | None = None
        self._writers: list[QThread] = []
        self._build_ui(side_by_side_view)
        self.engine.ready.connect(self._on_engine_ready)
        self.engine.result_ready.connect(self._on_result)
        self.engine.target_ready.connect(self._on_target)
        self.engine.sweep_done.connect(lambda p: self.show_info(f"Sweep GIF written: {p}"))
        self.engine.busy.connect(self.show_info)
        self.engine.calibrated.connect(self._on_calibrated)
        self.engine.error.connect(self.show_error)
        self.gif_written.connect(lambda p: self.show_info(f"Recording written: {p}"))
        self.gif_failed.connect(self.show_error)
        self._input_timer = QTimer(self)
        self._input_timer.timeout.connect(self._refresh_input)
        self._input_timer.start(33)
        self.engine.start()
        if source is not None:
            self.set_source(source)

    # --- layout ---------------------------------------------------------------------------------------------
    def _build_ui(self, side_by_side_view: bool) -> None:
        self.input_view = VideoView("input")
        self.output_view = VideoView("starting the engine…")
        views = QHBoxLayout()
        views.addWidget(self.input_view)
        views.addWidget(self.output_view)
        self.input_view.setVisible(side_by_side_view)

        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("padding: 4px;")
        self.open_video_button = QPushButton("Open video file…")
        self.open_video_button.clicked.connect(self.choose_video)
        self.open_video_button.setVisible(False)
        message_row = QHBoxLayout()
        message_row.addWidget(self.message, 1)
        message_row.addWidget(self.open_video_button)

        self.gallery = QListWidget()
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery.setFlow(QListView.Flow.LeftToRight)
        self.gallery.setWrapping(False)
        self.gallery.setIconSize(QSize(72, 72))
        self.gallery.setFixedHeight(112)
        self.gallery.setMovement(QListView.Movement.Static)
        self.gallery.setToolTip("Targets: drop a photo on the window (or Add photo…) to add one")
        none_item = QListWidgetItem("you\n(no morph)")
        none_item.setData(Qt.ItemDataRole.UserRole, None)
        self.gallery.addItem(none_item)
        self.gallery.currentRowChanged.connect(self._on_gallery_row)
        add_photo = QPushButton("Add photo…")
        add_photo.clicked.connect(self.choose_photo)
        gallery_row = QHBoxLayout()
        gallery_row.addWidget(self.gallery, 1)
        gallery_row.addWidget(add_photo)

        left = QVBoxLayout()
        left.addLayout(views, 1)
        left.addLayout(message_row)
        left.addLayout(gallery_row)

        controls = QFormLayout()
        self.source_box = QComboBox()
        for i in range(CAMERA_CHOICES):
            self.source_box.addItem(f"Camera {i}", Source(camera=i))
        self.source_box.addItem("Video file…", "video")
        self.source_box.setCurrentIndex(-1)
        self.source_box.activated.connect(self._on_source_box)
        controls.addRow("Source", self.source_box)
        self.side_by_side_box = QCheckBox("Input beside output")
        self.side_by_side_box.setChecked(side_by_side_view)
        self.side_by_side_box.toggled.connect(self.input_view.setVisible)
        controls.addRow("View", self.side_by_side_box)

        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(0, 100)
        self.strength.setValue(80)
        self.strength_label = QLabel("0.80")
        self.strength.valueChanged.connect(self._settings_changed)
        controls.addRow("Morph strength", _with_label(self.strength, self.strength_label))
        self.preset = QComboBox()
        self.preset.addItems(list(MORPH_PRESETS))
        self.preset.setToolTip("identity: keep your head pose and expression; full: take everything from the target")
        self.preset.currentIndexChanged.connect(self._settings_changed)
        controls.addRow("Morph preset", self.preset)

        self.edit_sliders: dict[str, tuple[QSlider, QLabel]] = {}
        for name, title in SLIDER_EDITS:
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(-100, 100)
            slider.setValue(0)
            slider.setEnabled(False)
            slider.setToolTip("waiting for the engine")
            label = QLabel("0")
            slider.valueChanged.connect(self._settings_changed)
            self.edit_sliders[name] = (slider, label)
            controls.addRow(title, _with_label(slider, label))

        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("a face described in words, e.g. man with glasses")
        missing = missing_text_models()
        self.prompt.setEnabled(not missing)
        if missing:
            self.prompt.setToolTip("Text prompts need the CLIP text models, not installed: "
                                   + ", ".join(str(MODELS_DIR / f) for f in missing) + " missing")
        controls.addRow("Prompt", self.prompt)

        self.smoothing_box = QCheckBox("Smooth over time")
        self.smoothing_box.setChecked(True)
        self.smoothing_box.setToolTip("One-Euro filters on the landmarks and the latent (less flicker, a little lag)")
        self.smoothing_box.toggled.connect(self._settings_changed)
        self.reuse_box = QCheckBox("Reuse face when still")
        self.reuse_box.setChecked(False)
        self.reuse_box.setToolTip("Skip the generator while the latent barely changes (saves CPU and battery; the "
                                  "face then stops following small expression changes)")
        self.reuse_box.toggled.connect(self._settings_changed)
        self.skin_box = QCheckBox("Match skin tone")
        self.skin_box.setChecked(True)
        self.skin_box.setToolTip("Move your reconstructed face's skin colour to the camera's (the encoder alone "
                                 "pulls skin chroma toward the average face)")
        self.skin_box.toggled.connect(self._settings_changed)
        self.likeness_box = QCheckBox("Check likeness")
        self.likeness_box.setChecked(True)
        self.likeness_box.setToolTip("Every 32 frames, render your reconstruction and let the face recogniser "
                                     "compare it with you; move it toward what it misses (looks more like you; "
                                     "costs about 2 fps on a 2-core laptop; off while calibrated)")
        self.likeness_box.toggled.connect(self._settings_changed)
        controls.addRow("Engine", self.smoothing_box)
        self.calib_box = QCheckBox("Calibrate to my face")
        self.calib_box.setChecked(self.engine.calibrating)
        self.calib_box.setToolTip("Refine a few frames of you once (seconds each, in the background) and add what "
                                  "they learned to every frame: your reconstruction looks more like you "
                                  "(docs/ENCODER.md, personal calibration)")
        self.calib_box.toggled.connect(lambda on: self.engine.set_calibrating(on))
        self.recalibrate_button = QPushButton("Recalibrate")
        self.recalibrate_button.setToolTip("Forget the calibration and take it again from the next frames "
                                           "(someone else in front of the camera)")
        self.recalibrate_button.clicked.connect(self._recalibrate)
        self.save_calibration_button = QPushButton("Save calibration")
        self.save_calibration_button.setToolTip("Write the calibration to the output folder (calibration.npz), to "
                                                "start with it next time: celeblook-desktop --calibration FILE")
        self.save_calibration_button.setEnabled(False)
        self.save_calibration_button.clicked.connect(lambda: self.save_calibration())
        controls.addRow("", self.reuse_box)
        controls.addRow("", self.skin_box)
        controls.addRow("", self.likeness_box)
        controls.addRow(self.recalibrate_button, self.calib_box)
        controls.addRow("", self.save_calibration_button)

        self.record_button = QPushButton("● Record GIF")
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self._on_record_toggled)
        self.record_sbs_box = QCheckBox("record input beside output")
        self.sweep_button = QPushButton("Sweep GIF of this edit")
        self.sweep_button.setToolTip("Render the current edit from none to full on the current frame")
        self.sweep_button.clicked.connect(lambda: self.sweep_gif())
        controls.addRow("Record", self.record_button)
        controls.addRow("", self.record_sbs_box)
        controls.addRow("", self.sweep_button)
        self.face_indicator = QLabel("—")
        controls.addRow("Face", self.face_indicator)

        panel = QWidget()
        panel.setLayout(controls)
        panel.setFixedWidth(330)
        root = QHBoxLayout()
        root.addLayout(left, 1)
        root.addWidget(panel)
        central = QWidget()
        central.setLayout(root)
        self.setCentralWidget(central)

        self.fps_label = QLabel("— fps")
        self.stage_label = QLabel("")
        self.drop_label = QLabel("")
        self.statusBar().addPermanentWidget(self.stage_label)
        self.statusBar().addPermanentWidget(self.drop_label)
        self.statusBar().addPermanentWidget(self.fps_label)
        self.resize(1180, 700)

    # --- messages -------------------------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        self.errors.append(text)
        self.message.setStyleSheet("padding: 4px; background: #5a1d1d; color: #fff;")
        self.message.setText(text)
        self.statusBar().showMessage(text, 10000)

    def show_info(self, text: str) -> None:
        self.message.setStyleSheet("padding: 4px; color: palette(text);")
        self.message.setText(text)
        self.statusBar().showMessage(text, 5000)

    # --- sources --------------------------------------------------------------------------------------------
    def set_source(self, source: Source) -> None:
        """Switch to a camera or a video file; the old capture thread stops, the engine restarts its filters."""
        if self.capture is not None:
            self.capture.stop()
        self._stream += 1
        self.source = source
        self.open_video_button.setVisible(False)
        self.capture = CaptureWorker(source, self.mailbox, self._stream)
        self.capture.opened.connect(self.show_info)
        self.capture.failed.connect(self._on_capture_failed)
        self.capture.start()
        self._sync_source_box()

    def _sync_source_box(self) -> None:
        box = self.source_box
        box.blockSignals(True)
        for i in range(box.count() - 1, -1, -1):
            if isinstance(box.itemData(i), Source) and box.itemData(i).video is not None:
                box.removeItem(i)
        if self.source is not None and self.source.video is not None:
            box.insertItem(box.count() - 1, f"Video: {self.source.video.name}", self.source)
            box.setCurrentIndex(box.count() - 2)
        elif self.source is not None:
            box.setCurrentIndex(int(self.source.camera or 0))
        box.blockSignals(False)

    def _on_source_box(self, index: int) -> None:
        data = self.source_box.itemData(index)
        if data == "video":
            self.choose_video()
        elif isinstance(data, Source) and data != self.source:
            self.set_source(data)

    def _on_capture_failed(self, text: str) -> None:
        self.show_error(text)
        self.open_video_button.setVisible(True)
        self.output_view.setText("no source")

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
        self.targets.append(target)
        item = QListWidgetItem(QIcon(bgr_to_pixmap(target.thumbnail)), target.name)
        item.setData(Qt.ItemDataRole.UserRole, len(self.targets) - 1)
        item.setToolTip(f"{target.name} (its reconstruction by the encoder)")
        if select:  # a user's photo goes first (most recent), after "you"
            self.gallery.insertItem(1, item)
        else:
            self.gallery.addItem(item)
        while self.gallery.count() > GALLERY_MAX + 1:
            self.gallery.takeItem(self.gallery.count() - 1)
        if select or self.target is None:
            self.gallery.setCurrentItem(item)
            if select:
                self.show_info(f"Target: {target.name}")

    def _on_gallery_row(self, row: int) -> None:
        item = self.gallery.item(row)
        index = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        self.target = self.targets[index] if index is not None else None
        self._settings_changed()

    # --- settings -------------------------------------------------------------------------------------------
    def _on_calibrated(self, keyframes: int, wanted: int) -> None:
        self.calibration_keyframes = keyframes
        self.save_calibration_button.setEnabled(keyframes > 0)
        done = "calibrated to your face" if keyframes >= wanted else "calibrating to your face"
        self.show_info(f"{done.capitalize()} ({keyframes}/{wanted} keyframes)")

    calibration_keyframes = 0

    def _recalibrate(self) -> None:
        self.engine.recalibrate()
        self.calibration_keyframes = 0
        self.save_calibration_button.setEnabled(False)
        self.calib_box.setChecked(True)
        self.show_info("Calibrating to your face again from the next frames…")

    def _on_engine_ready(self, info: dict) -> None:
        directions = info.get("directions", {})
        for name, (slider, label) in self.edit_sliders.items():
            if name in directions:
                unit, max_units = directions[name]
                slider.setEnabled(True)
                slider.setToolTip(f"{name}: ±{max_units:.2f} {unit}")
            else:
                slider.setToolTip(info.get("directions_error") or f"no '{name}' direction in resources/directions.npz")
        self._directions = directions
        if info.get("skin_tone_error"):
            self.skin_box.setChecked(False)
            self.skin_box.setEnabled(False)
            self.skin_box.setToolTip(info["skin_tone_error"])
        if not info.get("identity_feedback", True):
            self.likeness_box.setChecked(False)
            self.likeness_box.setEnabled(False)
            self.likeness_box.setToolTip("This encoder has no identity feedback model "
                                         "(python -m training.fit_identity_feedback)")
        self.output_view.setText("waiting for frames…")
        self._settings_changed()

    _directions: dict = {}

    def settings(self) -> LiveSettings:
        """LiveSettings from the controls."""
        amounts = {}
        for name, (slider, label) in self.edit_sliders.items():
            if name in self._directions and slider.isEnabled():
                value = slider.value() / 100.0 * self._directions[name][1]
                amounts[name] = value
                label.setText(f"{value:+.2f}" if abs(self._directions[name][1]) < 5 else f"{value:+.0f}°")
        strength = self.strength.value() / 100.0
        self.strength_label.setText(f"{strength:.2f}")
        return LiveSettings(target=self.target.wplus if self.target is not None else None, strength=strength,
                            preset=self.preset.currentText(), amounts=amounts,
                            smooth_latents=self.smoothing_box.isChecked(),
                            smooth_landmarks=self.smoothing_box.isChecked(), reuse=self.reuse_box.isChecked(),
                            inversion=InversionOptions(match_skin=self.skin_box.isChecked(),
                                                       identity_feedback=self.likeness_box.isChecked()))

    def _settings_changed(self, *_) -> None:
        self.engine.set_settings(self.settings())

    # --- frames ---------------------------------------------------------------------------------------------
    def _refresh_input(self) -> None:
        frame = self.mailbox.peek()
        if frame is not None and self.input_view.isVisible() and (frame.stream, frame.index) != self._shown_index:
            self._shown_index = (frame.stream, frame.index)
            self.input_view.show_frame(frame.image)

    def _on_result(self, out: EngineOutput) -> None:
        self.last_output = out
        r = out.result
        self.output_view.show_frame(r.frame)
        now = time.monotonic()
        self._result_times.append((now, r.renders))
        if len(self._result_times) > 1:
            (t0, n0), (t1, n1) = self._result_times[0], self._result_times[-1]
            span = max(1e-6, t1 - t0)
            refresh = max(0, n1 - n0) / span  # a new pipeline (new source) restarts the count
            self.fps_label.setText(f"{(len(self._result_times) - 1) / span:.1f} fps · face {refresh:.1f}/s")
        if r.face_found:
            self.face_indicator.setText("face found")
            self.face_indicator.setStyleSheet("color: #2a2;")
        else:
            self.face_indicator.setText("no face: showing the input unchanged")
            self.face_indicator.setStyleSheet("color: #c60;")
        if r.timings:
            self.stage_label.setText(" · ".join(f"{k} {v:.0f}" if v >= 10 else f"{k} {v:.1f}"
                                                for k, v in r.timings.items() if k != "total") + " ms")
        dropped_pct = 100.0 * out.dropped / max(1, out.captured)
        self.drop_label.setText(f"dropped {out.dropped}/{out.captured} frames ({dropped_pct:.0f}%)")
        if self.recorder.recording:
            frame = side_by_side(out.source.image, r.frame) if self.record_side_by_side else r.frame
            self.recorder.add(frame)
        if self.stop_after is not None and out.processed == self.stop_after:
            self.frames_done.emit()

    # --- recording ------------------------------------------------------------------------------------------
    def start_recording(self, path: str | os.PathLike | None = None, side_by_side_frames: bool | None = None) -> None:
        self.record_path = Path(path) if path else None
        self.record_side_by_side = self.record_sbs_box.isChecked() if side_by_side_frames is None else side_by_side_frames
        self.recorder.start()
        self.record_button.blockSignals(True)
        self.record_button.setChecked(True)
        self.record_button.setText("■ Stop recording")
        self.record_button.blockSignals(False)
        self.show_info("Recording…")

    def stop_recording(self, wait: bool = False) -> Path | None:
        """Stop and write the GIF off the UI thread (or now, with `wait`); returns its path."""
        self.record_button.blockSignals(True)
        self.record_button.setChecked(False)
        self.record_button.setText("● Record GIF")
        self.record_button.blockSignals(False)
        if not self.recorder.recording:
            return None
        frames, fps = self.recorder.stop()
        path = self.record_path or default_gif_path(self.out_dir, "celeblook")
        if wait:
            try:
                save_gif(path, frames, fps)
            except Exception as exc:
                self.show_error(f"could not write {path}: {exc}")
                return None
            self.gif_written.emit(str(path))
            return path
        writer = _GifWriter(path, frames, fps, self)
        self._writers.append(writer)
        writer.finished.connect(lambda: self._writers.remove(writer) if writer in self._writers else None)
        writer.start()
        self.show_info(f"Writing {len(frames)} frames to {path}…")
        return path

    def _on_record_toggled(self, on: bool) -> None:
        if on:
            self.start_recording()
        else:
            self.stop_recording()

    def sweep_gif(self, path: str | os.PathLike | None = None, steps: int = 12) -> Path:
        """Queue a sweep GIF of the current edit (none -> full, boomerang) on the current frame; returns its path."""
        path = Path(path) if path else default_gif_path(self.out_dir, "celeblook-sweep")
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
        if self.capture is not None:
            self.capture.stop()
        self.engine.stop()
        for writer in list(self._writers):
            writer.wait(60000)

    def closeEvent(self, event) -> None:
        if self.recorder.recording:
            self.stop_recording(wait=True)
        self.shutdown()
        super().closeEvent(event)


class _GifWriter(QThread):
    def __init__(self, path: Path, frames: list, fps: float, window: MainWindow):
        super().__init__(window)
        self.path, self.frames, self.fps, self.window = path, frames, fps, window

    def run(self) -> None:
        try:
            save_gif(self.path, self.frames, self.fps)
            self.window.gif_written.emit(str(self.path))
        except Exception as exc:
            self.window.gif_failed.emit(f"could not write {self.path}: {exc}")


def _with_label(slider: QSlider, label: QLabel) -> QWidget:
    label.setMinimumWidth(44)
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(slider, 1)
    row.addWidget(label)
    return box
