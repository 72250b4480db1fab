"""The two threads behind the window: capture and engine, joined by a one-frame mailbox.

    CaptureWorker (QThread) --put--> LatestFrame (holds ONE frame) --take--> EngineWorker (QThread) --result_ready--> UI

The capture thread reads the camera (or a video file, or the built-in demo face of engine.demo_source, both paced
at their frame rate) and overwrites the mailbox;
the engine thread takes the newest frame when it is free, runs engine.live.LivePipeline.process on it and
emits the result. A frame overwritten before the engine took it is dropped and counted: when the engine is
slower than the camera, frames are dropped, never queued, so the output lags by at most one frame's processing.
The UI thread only draws: it peeks at the mailbox for the input view and receives results by queued signals.
The generator itself runs on a fourth thread owned by the pipeline (engine.background_render), so the engine
thread keeps tracking the head at frame rate while the face refreshes as fast as the generator can go.
Work besides the frames is one type, Job (a kind and a call), in two queues: the sweep GIF runs in the engine
thread between frames; target photos and the personal calibration's keyframes (engine.inversion.calibration.
KeyframeSchedule decides which frames and keeps the calibration: a few frames of the user refined once, seconds
each) on a thread of their own.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
from PySide6.QtCore import QThread, Signal

from engine.inversion.calibration import IdentityCalibration, KeyframeSchedule
from engine.inversion.refine import StudentFit
from engine.errors import CelebLookError
from engine.live import LiveModels, LivePipeline, LiveResult, LiveSettings

CAMERA_FAIL_SECONDS = 2.0  # no frame from an open camera for this long: it is gone
MIN_FRAME_SIDE = 32  # smaller frames from a camera are skipped: no face can be found in them


@dataclass(frozen=True)
class Source:
    """A camera index, a video file (looped) or the built-in demo face (`demo`, engine.demo_source).
    `opener` replaces cv2.VideoCapture(camera) for a camera: it returns an object with VideoCapture's read(),
    get() and release() (the capture boundary: tests put a faulty camera there, the real pipeline behind it)."""

    camera: int | None = None
    video: Path | None = None
    demo: bool = False
    opener: Callable[[], object] | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        if self.demo:
            return "demo face"
        return f"camera {self.camera}" if self.video is None else f"video {self.video.name}"


@dataclass(frozen=True)
class SourceFrame:
    """One captured frame: `stream` changes when the source does (the engine then restarts its filters and the
    calibration), `segment` when the same source changes resolution (the filters restart, the calibration stays)."""

    image: np.ndarray
    index: int
    timestamp_ms: int
    stream: int
    segment: int = 0


class LatestFrame:
    """A one-item mailbox: put() replaces the item; take() waits for one not yet taken. Thread-safe.
    `dropped` counts frames replaced before anyone took them; `captured` counts all frames put."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: SourceFrame | None = None
        self._fresh = False
        self.captured = 0
        self.dropped = 0
        self.last_put = 0.0  # time.monotonic() of the last put (the window's stall watchdog reads it)

    def put(self, item: SourceFrame) -> None:
        with self._cond:
            if self._fresh:
                self.dropped += 1
            self._item, self._fresh = item, True
            self.captured += 1
            self.last_put = time.monotonic()
            self._cond.notify_all()

    def take(self, timeout: float = 0.05) -> SourceFrame | None:
        """The newest frame not yet taken, waiting up to `timeout` s; None if none came."""
        with self._cond:
            if not self._fresh:
                self._cond.wait(timeout)
            if not self._fresh:
                return None
            self._fresh = False
            return self._item

    def peek(self) -> SourceFrame | None:
        """The newest frame, taken or not (for the input view)."""
        with self._cond:
            return self._item


def usable_frame(image) -> tuple[np.ndarray | None, str]:
    """A camera frame as the pipeline takes it (uint8 BGR, at least MIN_FRAME_SIDE px) and what was wrong with it:
    (frame, "") when fine, (converted frame, problem) for a grey, 4-channel or 16-bit frame, (None, problem) for an
    empty, tiny or unreadable one."""
    if image is None or not isinstance(image, np.ndarray) or image.size == 0:
        return None, "an empty frame"
    problem = ""
    if image.dtype == np.uint16:
        image, problem = (image >> 8).astype(np.uint8), "16-bit frames"
    elif image.dtype != np.uint8:
        return None, f"frames of type {image.dtype}"
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image, problem = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), "grey frames"
    elif image.ndim == 3 and image.shape[2] == 4:
        image, problem = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), "4-channel frames"
    elif image.ndim != 3 or image.shape[2] != 3:
        return None, f"a frame of shape {image.shape}"
    if min(image.shape[:2]) < MIN_FRAME_SIDE:
        return None, f"a {image.shape[1]}×{image.shape[0]} frame (too small)"
    return np.ascontiguousarray(image), problem


class CaptureWorker(QThread):
    """Reads one source into a LatestFrame until stopped; `failed` carries a plain message (no camera, camera
    unplugged or failing, unreadable video) and ends the thread; `opened` carries a description of the source;
    `notice` says what the camera did wrong while the stream goes on (empty, odd or tiny frames: once per kind)
    or that it changed resolution."""

    opened = Signal(str)
    failed = Signal(str)
    notice = Signal(str)

    def __init__(self, source: Source, mailbox: LatestFrame, stream: int, parent=None):
        super().__init__(parent)
        self.source, self.mailbox, self.stream = source, mailbox, stream
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        self.wait(5000)

    def run(self) -> None:
        try:
            if self.source.demo:
                self._run_demo()
            elif self.source.video is not None:
                self._run_video(self.source.video)
            else:
                self._run_camera(int(self.source.camera or 0))
        except CelebLookError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # never let a capture problem take the app down
            self.failed.emit(f"{self.source.label}: {type(exc).__name__}: {exc}")

    def _run_video(self, path: Path) -> None:
        from engine.video import VideoReader

        with VideoReader(path, loop=True) as reader:
            self.opened.emit(f"video {path.name} ({reader.size[0]}×{reader.size[1]}, {reader.fps:.0f} fps, looping)")

            def frames() -> Iterator[tuple[np.ndarray, int, int]]:
                while (frame := reader.read()) is not None:
                    yield frame.image, frame.index, frame.timestamp_ms
                self.failed.emit(f"video {path.name} has no frames to show")

            self._play(frames())

    def _run_demo(self) -> None:
        from engine.demo_source import DemoFace
        from engine.edits import DirectionSet
        from engine.generator import Generator
        from engine.live import preview_resolution

        self.opened.emit("Rendering the demo face (a few seconds, once)…")
        demo = DemoFace(Generator.load(1, resolution=preview_resolution()), DirectionSet.load())
        if len(demo.render(self._stop.is_set)) < demo.loop_frames:
            return  # stopped while rendering
        w, h = demo.size
        self.opened.emit(f"demo face ({w}×{h}, {demo.fps:.0f} fps, looping): a generated face, no camera needed")
        self._play((image, i, ms) for i, (image, ms) in enumerate(demo.stream()))

    def _play(self, frames: Iterator[tuple[np.ndarray, int, int]]) -> None:
        """Put (image, index, timestamp_ms) frames into the mailbox at their own rate, like a camera, until stopped."""
        start = time.monotonic()
        for image, index, timestamp_ms in frames:
            if self._stop.is_set():
                return
            delay = start + timestamp_ms / 1000.0 - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            self.mailbox.put(SourceFrame(image, index, timestamp_ms, self.stream))

    def _run_camera(self, index: int) -> None:
        capture = self.source.opener() if self.source.opener is not None else _open_camera(index)
        if capture is None:
            self.failed.emit(f"No camera found at index {index}. Show the demo face, pick another camera, "
                             "or open a video file.")
            return
        try:
            w, h = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            self.opened.emit(f"camera {index} ({w}×{h})")
            start = last_ok = time.monotonic()
            n = segment = 0
            size = None
            told: set[str] = set()  # problems already reported: once each, not per frame
            while not self._stop.is_set():
                try:
                    ok, image = capture.read()
                except Exception as exc:  # a driver error: the camera is unusable from here
                    self.failed.emit(f"Camera {index} failed ({type(exc).__name__}: {exc}). "
                                     "Pick a source to continue.")
                    return
                now = time.monotonic()
                image, problem = usable_frame(image) if ok else (None, "")
                if problem and problem not in told:
                    told.add(problem)
                    self.notice.emit(f"Camera {index} sent {problem}: " + ("converted, the view goes on" if image
                                     is not None else "skipped, the view goes on with the next good frame"))
                if image is None:
                    if now - last_ok > CAMERA_FAIL_SECONDS:
                        self.failed.emit(f"Camera {index} stopped sending frames (unplugged?). "
                                         "Pick a source to continue.")
                        return
                    self._stop.wait(0.05)
                    continue
                last_ok = now
                if size is not None and image.shape[:2] != size:
                    segment += 1  # the engine restarts its filters: landmarks in the old size mean nothing now
                    self.notice.emit(f"Camera {index} changed resolution from {size[1]}×{size[0]} to "
                                     f"{image.shape[1]}×{image.shape[0]}: tracking starts again")
                size = image.shape[:2]
                self.mailbox.put(SourceFrame(image, n, int(1000 * (now - start)), self.stream, segment))
                n += 1
        finally:
            capture.release()


def _open_camera(index: int):
    """cv2.VideoCapture for a camera index, or None; OpenCV's own warnings about a missing device are muted."""
    try:
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:
        level = None
    try:
        capture = cv2.VideoCapture(index)
        ok = capture.isOpened()
    finally:
        if level is not None:
            cv2.utils.logging.setLogLevel(level)
    if not ok:
        capture.release()
        return None
    return capture


@dataclass
class EngineOutput:
    """What the engine hands the UI per frame."""

    source: SourceFrame
    result: LiveResult
    processed: int  # frames processed so far
    captured: int
    dropped: int


@dataclass
class EngineConfig:
    threads: int = 1  # per model: the background generator and the per-frame models share the cores
    encoder: str | None = None
    landmarker_model: str | None = None
    builtin_seeds: tuple[int, ...] = (0, 3, 4, 7)
    target_cache_dir: Path | None = None
    background_render: bool = True  # generator on its own thread (engine.background_render)
    # dropped photos: quality-mode steps (engine/inversion/refine.py), once per photo in the background and cached:
    # the target is recognised as the person far more often live (docs/MORPH.md)
    target_quality_steps: int = 20
    # refined photo targets: the fit to the live student (engine.inversion.refine.match_student), after the target is
    # shown; until then the preview head renders it at about a third of the student's rate (docs/MORPH.md)
    target_fit: StudentFit | None = StudentFit()
    calibrate_keyframes: int = 3  # personal calibration (engine/inversion/calibration.py) from this many frames; 0: off
    calibration_steps: int = 20  # quality-mode steps per keyframe
    calibration: Path | None = None  # a saved calibration (`celeblook calibrate`): used as is, nothing collected


@dataclass(frozen=True)
class Job:
    """One piece of work for a worker thread besides the frames: `run(*args)`; `kind` names it in messages."""

    kind: str
    run: Callable[..., None]
    args: tuple = ()


class EngineWorker(QThread):
    """Loads the models, then processes the newest frame from the mailbox whenever it is free. Dropped target
    photos are inverted (with the quality mode, seconds each) on a thread of their own, so the live view runs on.

    Personal calibration: `schedule` (engine.inversion.calibration.KeyframeSchedule) says which processed frames
    are keyframes; they are refined on the slow-job thread, and every finished keyframe updates the calibration
    that the following frames get (LiveSettings.inversion.calibration). A new source starts it again.

    Signals: `ready(dict)` models loaded (directions info), `result_ready(EngineOutput)`, `target_ready(Target,
    bool select)`, `target_fitted(Target shown, Target fitted)` a shown photo target is fitted to the live student
    (engine.inversion.targets.TargetCache.fit_student), `target_failed(str name)` a dropped photo could not be
    inverted, `sweep_done(str path)`,
    `busy(str)` a slow job started, `error(str)` a message for the user, `calibrated(int keyframes, int wanted)`
    the calibration got a keyframe (or was loaded).
    """

    ready = Signal(object)
    result_ready = Signal(object)
    target_ready = Signal(object, bool)
    target_fitted = Signal(object, object)
    target_failed = Signal(str)
    sweep_done = Signal(str)
    busy = Signal(str)
    error = Signal(str)
    calibrated = Signal(int, int)

    def __init__(self, mailbox: LatestFrame, config: EngineConfig = EngineConfig(), parent=None):
        super().__init__(parent)
        self.mailbox, self.config = mailbox, config
        self._settings = LiveSettings()
        self._jobs: queue.Queue[Job] = queue.Queue()  # run by the engine thread between frames
        self._target_jobs: queue.Queue[Job] = queue.Queue()  # run by the slow-job thread (photos, keyframes)
        self._cache = self._refiner = None  # the slow-job thread's target cache and refiner, made on first use
        self.schedule = KeyframeSchedule(config.calibrate_keyframes, config.calibration_steps,
                                         on=config.calibrate_keyframes > 0 or config.calibration is not None)
        self._stop = threading.Event()
        self.models: LiveModels | None = None
        self._pipeline: LivePipeline | None = None  # the current stream's (the engine thread's)
        self.processed = 0
        self._last: SourceFrame | None = None

    # --- called from the UI thread -------------------------------------------------------------------------
    def set_settings(self, settings: LiveSettings) -> None:
        self._settings = settings  # one reference swap: atomic under the GIL

    def load_target(self, photo: str | os.PathLike, select: bool = True) -> None:
        self._target_jobs.put(Job("photo", self._invert_photo, (Path(photo), select)))

    @property
    def calibrating(self) -> bool:
        return self.schedule.on

    @property
    def calibration(self) -> IdentityCalibration | None:
        return self.schedule.calibration

    def set_calibrating(self, on: bool) -> None:
        """Use (and collect) the personal calibration, or not."""
        self.schedule.on = on

    def recalibrate(self) -> None:
        """Forget the calibration and collect it again from the next frames (a saved one is dropped too)."""
        self.schedule.restart()

    def sweep(self, out_path: str | os.PathLike, steps: int = 12) -> None:
        self._jobs.put(Job("sweep", self._sweep, (Path(out_path), steps)))

    def stop(self) -> None:
        self._stop.set()
        self.wait(30000)

    # --- the engine thread --------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            cfg = self.config
            self.models = LiveModels.load(cfg.threads, cfg.encoder, cfg.landmarker_model)
        except Exception as exc:
            self.error.emit(f"The engine could not start: {exc}")
            return
        if self.config.calibration is not None:
            try:
                self.schedule.use(IdentityCalibration.load(self.config.calibration, self.models.encoder_sha))
                self.calibrated.emit(self.calibration.keyframes, self.calibration.keyframes)
            except CelebLookError as exc:
                self.error.emit(str(exc))
        info = {name: (d.unit, d.max_units) for name, d in (self.models.directions.directions.items()
                                                              if self.models.directions else [])}
        self.ready.emit({"directions": info, "directions_error": self.models.directions_error,
                         "skin_tone_error": self.models.skin_tone_error,
                         "identity_feedback": self.models.encoder.feedback is not None})
        pipeline: LivePipeline | None = None
        stream = None
        builtins = list(self.config.builtin_seeds)
        targets = threading.Thread(target=self._run_target_jobs, name="celeblook-targets", daemon=True)
        targets.start()
        try:
            while not self._stop.is_set():
                self._run_jobs()
                if builtins:  # one built-in target per turn, so the live view starts at once
                    self._builtin_target(builtins.pop(0))
                if pipeline is not None and self._stop.wait(pipeline.frame_wait()):
                    break  # a paced loop leaves the generator its share of the CPU
                frame = self.mailbox.take(0.05)
                if frame is None:
                    continue
                if (frame.stream, frame.segment) != stream or pipeline is None:
                    # a new source or resolution: fresh landmarker and filters
                    if pipeline is not None:
                        pipeline.close()
                    pipeline = self._pipeline = LivePipeline(self.models,
                                                             background_render=self.config.background_render)
                    self.schedule.new_stream(frame.stream)  # another source may show someone else
                    stream = (frame.stream, frame.segment)
                self._last = frame
                settings = self._settings
                if self.schedule.applied is not None:
                    settings = settings.with_(calibration=self.schedule.applied)
                try:
                    result = pipeline.process(frame.image, frame.timestamp_ms, settings)
                except CelebLookError as exc:
                    self.error.emit(str(exc))
                    result = LiveResult(frame.image, False, {}, message=str(exc))
                except Exception as exc:  # show it, keep going
                    self.error.emit(f"engine error: {type(exc).__name__}: {exc}")
                    pipeline.reset()
                    result = LiveResult(frame.image, False, {}, message="engine error")
                keyframe = self.schedule.keyframe(result.face, result.crop, frame.timestamp_ms / 1000.0)
                if keyframe is not None:
                    self._target_jobs.put(Job("keyframe", self._keyframe, (keyframe,)))
                self.processed += 1
                self.result_ready.emit(EngineOutput(frame, result, self.processed, self.mailbox.captured,
                                                    self.mailbox.dropped))
        finally:
            self._stop.set()
            targets.join(timeout=30)
            if pipeline is not None:
                pipeline.close()
            if self._image_landmarker is not None:
                self._image_landmarker.close()

    _image_landmarker = None

    def _run_target_jobs(self) -> None:
        """The slow-job thread: inverts dropped photos and refines calibration keyframes, one at a time, with its
        own landmarker and cache (the models' onnxruntime sessions are safe to share), until the engine stops."""
        try:
            while not self._stop.is_set():
                try:
                    self._run_job(self._target_jobs.get(timeout=0.1))
                except queue.Empty:
                    continue
        finally:
            if self._cache is not None:
                self._cache.landmarker.close()

    def _keyframe(self, keyframe) -> None:
        """Refine one calibration keyframe (engine.inversion.calibration.KeyframeSchedule.refine, seconds)."""
        from engine.inversion.refine import Refiner

        cache, picker = self._cache, keyframe.picker
        try:
            if self._refiner is None:
                self._refiner = cache.inverter.refiner if cache is not None and cache.inverter.refiner else \
                    Refiner.load(self.config.threads)
        except Exception:
            self.schedule.pending = False  # no refinement: the next good frame may try again
            raise
        self.busy.emit(f"Calibrating to your face: keyframe {picker.taken}/{picker.wanted}…")
        if self.schedule.refine(keyframe, self.models.encoder, self._refiner, self.models.encoder_sha):
            self.calibrated.emit(self.calibration.keyframes, picker.wanted)

    def _invert_photo(self, photo: Path, select: bool) -> None:
        from engine.landmarks import FaceLandmarker
        from engine.inversion.inverter import InversionOptions

        m = self.models
        try:
            if self._cache is None:
                photos = FaceLandmarker(m.landmarker_model, max_faces=4, expressions=True)  # and their expressions
                self._cache = m.target_cache(photos, InversionOptions(
                    quality_steps=self.config.target_quality_steps), self.config.target_cache_dir,
                    self.config.target_fit)
            self.busy.emit(f"Inverting {photo.name}…")
            target = self._cache.load(photo, fit=False)
        except Exception as exc:
            self.target_failed.emit(photo.stem)  # its gallery tile goes; the message follows (_run_job)
            if not photo.exists():  # deleted or moved after it was dropped, whichever step noticed it
                raise CelebLookError(f"The target photo {photo.name} was deleted or moved before it could be "
                                     f"inverted ({photo})") from exc
            raise
        self.target_ready.emit(target, select)
        if self._cache.fits_student and target.live is None:  # shown with the preview head meanwhile
            def progress(step: int, steps: int) -> None:
                if step % max(1, steps // 10) == 0 and step < steps:
                    self.busy.emit(f"Fitting {photo.name} to the live generator… {100 * step // steps} %")

            self.busy.emit(f"Fitting {photo.name} to the live generator…")
            try:
                fitted = self._cache.fit_student(photo, target, progress)
            except Exception as exc:  # the target stays usable as shown (the preview head renders it)
                self.error.emit(f"{photo.name} could not be fitted to the live generator ({type(exc).__name__}: "
                                f"{exc}); it stays on the slower preview generator")
                return
            self.target_fitted.emit(target, fitted)

    def _landmarker(self):
        from engine.landmarks import FaceLandmarker

        if self._image_landmarker is None:
            self._image_landmarker = FaceLandmarker(self.models.landmarker_model, max_faces=4, expressions=True)
        return self._image_landmarker

    def _builtin_target(self, seed: int) -> None:
        from engine.inversion.targets import builtin_targets

        try:
            for target in builtin_targets(self.models.generator, (seed,), landmarker=self._landmarker()):
                self.target_ready.emit(target, False)
        except Exception as exc:
            self.error.emit(f"could not make the built-in target of seed {seed}: {exc}")

    def _run_jobs(self) -> None:
        """The engine thread's queued jobs, all of them, between two frames."""
        while True:
            try:
                self._run_job(self._jobs.get_nowait())
            except queue.Empty:
                return

    def _run_job(self, job: Job) -> None:
        """Run one job; its failure becomes one message for the user, never the thread's end."""
        try:
            job.run(*job.args)
        except CelebLookError as exc:
            self.error.emit(str(exc))
        except Exception as exc:
            self.error.emit(f"{job.kind} failed: {type(exc).__name__}: {exc}")

    def _sweep(self, out_path: Path, steps: int) -> None:
        """A GIF of the current edit from none to full on the current source frame (boomerang)."""
        from engine.gif import write_gif
        from engine.inversion.inverter import InversionOptions, Inverter
        from engine.photo_edit import PhotoEditor

        if self._last is None or self._pipeline is None:
            self.error.emit("Sweep GIF: no source frame yet")
            return
        self.busy.emit(f"Rendering a {steps}-frame sweep GIF…")
        s, m, pipeline = self._settings, self.models, self._pipeline
        editor = PhotoEditor.open(self._last.image, self._landmarker(), Inverter(m.encoder, m.generator, m.skin_tone),
                                  InversionOptions(match_skin=s.inversion.match_skin), source="the current frame")
        editor.paste_options = replace(editor.paste_options, colours=s.paste_skin)
        # each frame's latent by the live view's own edit (pose lock and all), t of the way, with its colours
        frames = editor.sweep(lambda t: pipeline.edit(editor.wplus, s.partial(t)),
                              np.linspace(0.0, 1.0, max(2, steps)), colours=lambda t: s.partial(t).paste_colours)
        write_gif(out_path, [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames], fps=10, max_side=480,
                  boomerang=True)
        self.sweep_done.emit(str(out_path))
