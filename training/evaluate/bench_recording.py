"""Saving a recording: the old GIF writer (all frames in memory, imageio -> Pillow's animated save) against the
new one (frames spooled to disk as JPEG, engine.gif.GifStream with one palette, or OpenCV's MP4 writer), on the
same frames: seconds, peak memory above what the process held before saving, file size, and mean absolute error
of the decoded file against the frames (0-255).

    python -m training.evaluate.bench_recording --video ../shared/data/video/d18.mp4 --frames 600 \\
        --json docs/results/recording_save.json

Each writer runs in a process of its own (peak memory is per process); the frames are the clip's, looped and
downscaled to the recorder's 480 px, which is what the desktop keeps of a 480-px output (no torch needed).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

WRITERS = ("old-gif", "new-gif", "new-mp4")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """The highest resident memory seen every 10 ms while the block runs (MB)."""

    def __enter__(self):
        self.peak, self._stop = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def load_frames(video: Path, count: int) -> list[np.ndarray]:
    from engine.gif import fit_size
    from engine.video import VideoReader

    with VideoReader(video, loop=True) as reader:
        return [fit_size(f.image, 480) for f in reader.frames(count)]


def old_gif(path: Path, frames_rgb: list[np.ndarray], fps: float) -> None:
    """The writer the desktop used before (engine/gif.py at ef33f8b): one imageio call on the stacked frames."""
    import imageio.v3 as iio

    from engine.atomic import atomic_path

    with atomic_path(path, suffix=".gif") as tmp:
        iio.imwrite(tmp, np.stack(frames_rgb), extension=".gif", duration=int(round(1000 / fps)), loop=0)


def decoded_error(path: Path, frames_bgr: list[np.ndarray]) -> float:
    """Mean |decoded - frame| over all frames and pixels (one decoded frame in memory at a time)."""
    total, n = 0.0, 0
    if path.suffix == ".gif":
        from PIL import Image, ImageSequence

        for i, fr in enumerate(ImageSequence.Iterator(Image.open(path))):
            rgb = cv2.cvtColor(frames_bgr[i], cv2.COLOR_BGR2RGB)
            total += float(np.abs(np.asarray(fr.convert("RGB"), np.int16) - rgb).mean())
            n += 1
    else:
        capture = cv2.VideoCapture(str(path))
        while n < len(frames_bgr):
            ok, image = capture.read()
            if not ok:
                break
            total += float(np.abs(image.astype(np.int16) - frames_bgr[n]).mean())
            n += 1
        capture.release()
    return round(total / max(1, n), 2)


def run_one(writer: str, video: Path, count: int, fps: float, out_dir: Path) -> dict:
    """One writer in this process: keep the frames as the recorder does, then save; what it cost."""
    frames = load_frames(video, count)
    path = out_dir / f"{writer}.{writer.split('-')[1]}"
    row: dict = {"writer": writer, "frames": len(frames), "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}"}
    if writer == "old-gif":
        kept = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]  # the old Recorder kept RGB frames
        row["keep_ms_per_frame"] = 0.0
        before = rss_mb()
        with PeakRss() as peak:
            t = time.perf_counter()
            old_gif(path, kept, fps)
            row["save_s"] = round(time.perf_counter() - t, 2)
        del kept
    else:
        from engine.recording import Spool, encode_take

        spool = Spool(out_dir)
        t = time.perf_counter()
        for f in frames:
            spool.add(f)
        row["keep_ms_per_frame"] = round(1000 * (time.perf_counter() - t) / len(frames), 2)
        row["spool_mb"] = round(spool.bytes_on_disk() / 1e6, 1)
        before = rss_mb()
        with PeakRss() as peak:
            t = time.perf_counter()
            encode_take(spool, path, fps)
            row["save_s"] = round(time.perf_counter() - t, 2)
        spool.discard()
    row["rss_before_mb"] = round(before)
    row["peak_extra_mb"] = round(peak.peak - before)
    row["file_mb"] = round(path.stat().st_size / 1e6, 1)
    row["mean_abs_error"] = decoded_error(path, frames)
    path.unlink()
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, required=True)
    p.add_argument("--frames", type=int, default=600, help="frames per recording (600: the GIF's 50 s at 12 fps)")
    p.add_argument("--fps", type=float, default=12.0)
    p.add_argument("--writers", nargs="+", choices=WRITERS, default=list(WRITERS))
    p.add_argument("--out-dir", type=Path, default=Path("/tmp"))
    p.add_argument("--json", type=Path)
    p.add_argument("--one", choices=WRITERS, help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.video, args.frames, args.fps, args.out_dir)))
        return 0
    rows = []
    for writer in args.writers:
        out = subprocess.run([sys.executable, "-m", "training.evaluate.bench_recording", "--video", str(args.video),
                              "--frames", str(args.frames), "--fps", str(args.fps), "--out-dir", str(args.out_dir),
                              "--one", writer], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    from engine.benchmark import format_table, machine_info, write_json

    print(format_table(rows, list(rows[-1].keys())))
    if args.json:
        write_json(args.json, {"benchmark": "recording save", "video": args.video.name, "fps": args.fps,
                               "machine": machine_info(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
