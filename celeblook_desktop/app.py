"""`celeblook-desktop`: live webcam (or video) face morphing in a window.

    celeblook-desktop                      # camera 0; says so and offers a video file when there is none
    celeblook-desktop --video clip.mp4     # a looping video instead of a camera
    celeblook-desktop --demo               # a built-in moving face made by our generator: no camera, no files
    celeblook-desktop --video clip.mp4 --target friend.jpg --frames 60 --record out.gif --screenshot window.png
                                           # headless: offscreen when there is no display; records and exits
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.cli import OneLineParser


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="celeblook-desktop", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, help="camera index (default 0)")
    src.add_argument("--video", type=Path, help="video file to use instead of a camera (loops)")
    src.add_argument("--demo", action="store_true",
                     help="a built-in face made by CelebLook's generator that turns, smiles and talks (no camera)")
    p.add_argument("--target", type=Path, help="target photo to morph toward (default: a built-in generated face)")
    p.add_argument("--strength", type=float, default=1.0,
                   help="morph strength 0..1 (default 1: the target, moving like you)")
    p.add_argument("--frames", type=int, help="process this many frames, then exit (headless runs, demos, tests)")
    p.add_argument("--record", type=Path, help="record the output as this .gif (up to 50 s) or .mp4 (up to 10 min), "
                   "written when the run ends or the limit is reached")
    p.add_argument("--screenshot", type=Path, help="save a screenshot of the window (.png/.jpg) at the end")
    p.add_argument("--side-by-side", action="store_true", help="record input | output side by side")
    p.add_argument("--single-view", action="store_true", help="show only the output (toggle in the window)")
    p.add_argument("--threads", type=int, default=1,
                   help="onnxruntime threads per model (default 1: the generator runs beside the other models)")
    p.add_argument("--encoder", type=Path, help="inversion encoder ONNX (default: the shipped one, or $CELEBLOOK_ENCODER)")
    p.add_argument("--out-dir", type=Path, default=Path("."), help="folder for recordings and sweep GIFs (default .)")
    p.add_argument("--builtin", type=int, default=4, help="how many built-in generated targets to offer (default 4)")
    p.add_argument("--target-quality", type=int, default=20, metavar="STEPS",
                   help="quality-mode steps for a dropped photo, once per photo in the background and cached "
                        "(default 20, a few seconds; 0: the one pass only)")
    p.add_argument("--calibrate", type=int, default=3, metavar="KEYFRAMES",
                   help="personal calibration from this many frames of you, refined once in the background "
                        "(default 3, seconds each; 0: off)")
    p.add_argument("--calibration", type=Path, metavar="FILE",
                   help="a saved calibration (`celeblook calibrate`) to use instead of collecting one")
    return p


def _headless_platform(args: argparse.Namespace) -> None:
    """With --frames and no display, run Qt offscreen (unless the user chose a platform)."""
    if args.frames is not None and not os.environ.get("QT_QPA_PLATFORM") \
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    err = lambda msg: (print(f"celeblook-desktop: error: {msg}", file=sys.stderr), 2)[1]  # noqa: E731
    if args.frames is not None and args.frames < 1:
        return err("--frames must be at least 1")
    if not 0.0 <= args.strength <= 1.0:
        return err(f"--strength must be in [0, 1], got {args.strength}")
    if args.video is not None and not args.video.is_file():
        return err(f"video not found: {args.video}")
    if args.calibration is not None and not args.calibration.is_file():
        return err(f"calibration file not found: {args.calibration}")
    if args.target is not None and not args.target.is_file():
        return err(f"target photo not found: {args.target}")
    for out in (args.record, args.screenshot):
        if out is not None and not (out.parent if str(out.parent) else Path(".")).is_dir():
            return err(f"output folder does not exist: {out.parent}")
    if args.record is not None and args.record.suffix.lower() not in (".gif", ".mp4"):
        return err("--record must end in .gif or .mp4")
    if args.screenshot is not None and args.screenshot.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        return err("--screenshot must end in .png or .jpg")
    _headless_platform(args)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from celeblook_desktop.window import MainWindow
    from celeblook_desktop.workers import EngineConfig, Source

    app = QApplication.instance() or QApplication(sys.argv[:1])
    source = Source(video=args.video) if args.video else Source(demo=True) if args.demo else \
        Source(camera=args.camera or 0)
    seeds = (0, 3, 4, 7, 9, 12, 15, 21)[:max(0, args.builtin)]
    config = EngineConfig(threads=args.threads, encoder=str(args.encoder) if args.encoder else None,
                          builtin_seeds=seeds if args.target is None else seeds[:2],
                          target_quality_steps=max(0, args.target_quality),
                          calibrate_keyframes=max(0, args.calibrate), calibration=args.calibration)
    window = MainWindow(source, config, side_by_side_view=not args.single_view, out_dir=args.out_dir,
                        stop_after=args.frames)
    window.controls.strength.setValue(round(args.strength * 100))
    if args.target is not None:
        window.open_file(args.target)
    if args.record is not None:
        window.start_recording(args.record, side_by_side_frames=args.side_by_side)
    window.show()
    status = {"code": 0, "done": False}

    def finish() -> None:
        if status["done"]:
            return
        status["done"] = True
        if args.record is not None:
            window.stop_recording(wait=True)  # a take its limit ended is being saved already
            window.wait_for_saves()
            if args.record not in window.saved:
                status["code"] = 2
        if args.screenshot is not None:
            if not window.grab().save(str(args.screenshot)):
                print(f"celeblook-desktop: error: could not write {args.screenshot}", file=sys.stderr)
                status["code"] = 2
        window.close()
        app.quit()

    if args.frames is not None:
        window.frames_done.connect(lambda: QTimer.singleShot(0, finish))
        window.engine.error.connect(lambda msg: print(f"celeblook-desktop: {msg}", file=sys.stderr))
        window.recording_failed.connect(lambda msg: print(f"celeblook-desktop: error: {msg}", file=sys.stderr))
        window.capture.failed.connect(lambda msg: (print(f"celeblook-desktop: error: {msg}", file=sys.stderr),
                                                   status.update(code=2), QTimer.singleShot(0, finish)))
        window.engine.finished.connect(lambda: None if window.engine.models is not None else
                                       (status.update(code=2), QTimer.singleShot(0, finish)))
    app.exec()
    if args.frames is not None and window.last_output is not None:
        out = window.last_output
        print(f"processed {out.processed} frames; dropped {out.dropped} of {out.captured} captured"
              + (f"; wrote {args.record}" if args.record and status["code"] == 0 else "")
              + (f"; screenshot {args.screenshot}" if args.screenshot and status["code"] == 0 else ""))
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
