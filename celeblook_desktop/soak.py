"""`python -m celeblook_desktop.soak`: the headless app for N minutes on a looping clip, recording switched on and
off, reporting what hours in the app would show: peak and final resident memory, frames and face refreshes per
second minute by minute (drift: the last full minute against the first), dropped frames and how long each recording took to save.

    python -m celeblook_desktop.soak --video ../shared/data/video/d18.mp4 --minutes 10 --record-every 60 \\
        --json docs/results/soak.json

Recording: on at 0, off at --record-every s, on again at twice that, and so on; a GIF take also stops at its 50-s
limit, which is then saved while the app runs on. Memory is the process's (VmRSS, peak VmHWM from /proc, Linux):
models, Qt, the capture and engine threads, the recordings and their saves, all of it.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

from engine.cli import OneLineParser


def memory_mb() -> tuple[float, float]:
    """(resident, peak resident) of this process in MB (0, 0 where /proc is not there)."""
    values = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds this process has used, CPU seconds the whole machine has been busy), (0, 0) without /proc:
    their difference over a minute is what other programs took, which tells an fps drop of the app from one
    caused by a neighbour."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        own = sum(int(x) for x in Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[11:13]) / ticks
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / ticks  # all but idle and iowait
        return own, busy
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0


PROBE = bytes(range(256)) * (8 << 12)  # 8 MB of fixed work for speed_probe_ms


def speed_probe_ms(repeats: int = 3) -> float:
    """How long this machine takes for a fixed piece of single-threaded work (sha256 of 8 MB; the best of
    `repeats`), in ms. Cloud machines change speed by tens of percent over minutes with nothing else running
    (the host's other tenants, clocks): an fps change that the probe shows too is the machine's, not the app's."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        hashlib.sha256(PROBE).digest()
        best = min(best, time.perf_counter() - t0)
    return 1000.0 * best


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m celeblook_desktop.soak", description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, required=True, help="clip to loop (a talking head)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--record-every", type=float, default=60.0, metavar="S",
                   help="switch recording on or off every S seconds (0: never record)")
    p.add_argument("--format", choices=(".gif", ".mp4"), default=".gif")
    p.add_argument("--sample", type=float, default=5.0, metavar="S", help="memory sample period (default 5 s)")
    p.add_argument("--out-dir", type=Path, help="where the recordings go (default: a temporary folder, removed)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calibrate", type=int, default=3, metavar="KEYFRAMES",
                   help="personal calibration keyframes as in the app (default 3: seconds of work each in the first "
                        "minutes, which the first minute's fps shows; 0: the steady state alone)")
    p.add_argument("--json", type=Path, help="write the report here")
    return p


def per_minute(samples: list[dict], key: str) -> list[float]:
    """The increase of samples[key] over each full minute since the first sample (linear between samples)."""
    import numpy as np

    t = np.array([s["t"] for s in samples])
    v = np.array([s[key] for s in samples], float)
    edges = np.arange(0.0, t[-1] + 2.0, 60.0)  # a timer may fire a little early: 599 s is ten minutes
    at = np.interp(edges, t, v)
    return [float(x) for x in np.diff(at)]


def count_renders(total: int, last: int, now: int) -> tuple[int, int]:
    """(face refreshes so far, the pipeline's count now) after reading the pipeline's generator runs `now`
    (LiveResult.renders), `last` at the reading before: a new pipeline (a new source, the clip's next segment)
    restarts its count, so a count that went down is all new."""
    return total + (now - last if now >= last else now), now


def probe_per_minute(samples: list[dict]) -> list[float]:
    """The median speed probe (ms) of the samples in each full minute."""
    import numpy as np

    t = np.array([s["t"] for s in samples])
    p = np.array([s.get("probe_ms", np.nan) for s in samples], float)
    return [float(np.nanmedian(p[(t >= a) & (t < a + 60)])) if ((t >= a) & (t < a + 60)).any() else float("nan")
            for a in np.arange(0.0, t[-1] - 59.0, 60.0)]


def recording_minutes(samples: list[dict]) -> list[bool]:
    """Per full minute: was recording on for most of it (its frames were spooled, and a save may have run)."""
    import numpy as np

    t = np.array([s["t"] for s in samples])
    on = np.array([s["recording"] for s in samples], float)
    return [bool(on[(t >= a) & (t < a + 60)].mean() > 0.5) if ((t >= a) & (t < a + 60)).any() else False
            for a in np.arange(0.0, t[-1] - 59.0, 60.0)]


def like_for_like_drift(fps: list[float], recording: list[bool]) -> dict[str, float | None]:
    """The last minute against the first of the same kind (recording or not): a recording minute spools frames and
    saves, so comparing it with a quiet one would measure the recorder, not drift."""
    out = {}
    for kind, flag in (("recording", True), ("quiet", False)):
        xs = [f for f, r in zip(fps, recording) if r == flag]
        out[kind] = round(xs[-1] / xs[0] - 1.0, 3) if len(xs) >= 2 and xs[0] > 0 else None
    return out


def report(samples: list[dict], saves: list[dict], args: argparse.Namespace) -> dict:
    from engine.benchmark import machine_info

    fps = [round(n / 60.0, 2) for n in per_minute(samples, "processed")]
    refreshes = [round(n / 60.0, 2) for n in per_minute(samples, "renders")] if "renders" in samples[0] else []
    drops = per_minute(samples, "dropped")
    caught = per_minute(samples, "captured")
    own, busy = per_minute(samples, "cpu_own_s"), per_minute(samples, "cpu_busy_s")
    recording = recording_minutes(samples)[:len(fps)]
    probe = probe_per_minute(samples)[:len(fps)]
    # fps at the first minute's machine speed: fps x (this minute's probe time / the first minute's)
    fps_at_speed = [round(f * p / probe[0], 2) for f, p in zip(fps, probe)] if probe and probe[0] > 0 else []
    last = samples[-1]
    return {
        "benchmark": "soak", "video": args.video.name, "minutes": args.minutes, "record_every_s": args.record_every,
        "format": args.format, "threads": args.threads, "calibrate": args.calibrate, "machine": machine_info(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "peak_rss_mb": round(max(s["peak_mb"] for s in samples)), "final_rss_mb": round(last["rss_mb"]),
        "rss_after_first_minute_mb": round(next((s["rss_mb"] for s in samples if s["t"] >= 60), last["rss_mb"])),
        "fps_per_minute": fps, "face_refreshes_per_minute": refreshes,
        "fps_drift": round(fps[-1] / fps[0] - 1.0, 3) if len(fps) >= 2 and fps[0] > 0 else None,
        "fps_drift_like_for_like": like_for_like_drift(fps, recording), "recording_minutes": recording,
        "probe_ms_per_minute": [round(p, 2) for p in probe], "fps_at_first_minute_speed": fps_at_speed,
        "fps_at_speed_drift": round(fps_at_speed[-1] / fps_at_speed[0] - 1.0, 3) if len(fps_at_speed) >= 2 else None,
        "fps_at_speed_drift_like_for_like": like_for_like_drift(fps_at_speed, recording) if fps_at_speed else None,
        # CPU per minute, in cores: the app's, and everything else's on the machine (a neighbour's load)
        "cpu_cores_app": [round(x / 60.0, 2) for x in own],
        "cpu_cores_others": [round(max(0.0, b - o) / 60.0, 2) for b, o in zip(busy, own)],
        "dropped_per_minute_pct": [round(100 * d / max(1.0, c), 1) for d, c in zip(drops, caught)],
        "processed": last["processed"], "captured": last["captured"], "dropped": last["dropped"],
        "saves": saves, "samples": samples,
    }


def print_report(r: dict) -> None:
    print(f"soak: {r['minutes']} min on {r['video']}, recording {r['format']} toggled every {r['record_every_s']} s")
    print(f"memory: peak {r['peak_rss_mb']} MB, after the first minute {r['rss_after_first_minute_mb']} MB, "
          f"final {r['final_rss_mb']} MB")
    print("minute  fps    face/s  dropped %  recording  cores: app  others  probe ms  fps at minute 1's speed")
    refreshes = r["face_refreshes_per_minute"] or [float("nan")] * len(r["fps_per_minute"])
    for i, row in enumerate(zip(r["fps_per_minute"], refreshes, r["dropped_per_minute_pct"], r["recording_minutes"],
                                r["cpu_cores_app"], r["cpu_cores_others"], r["probe_ms_per_minute"],
                                r["fps_at_first_minute_speed"])):
        f, face, d, rec, app, others, probe, at_speed = row
        print(f"{i + 1:>6}  {f:<5}  {face:<6}  {d:<9}  {'yes' if rec else 'no':<9}  {app:<10} {others:<7} {probe:<9} "
              f"{at_speed}")

    def pct(x):
        return "n/a" if x is None else f"{100 * x:+.1f} %"

    like = r["fps_drift_like_for_like"]
    print(f"fps drift (last minute vs first): {pct(r['fps_drift'])}; like for like: recording minutes "
          f"{pct(like['recording'])}, quiet minutes {pct(like['quiet'])}; dropped {r['dropped']} of {r['captured']}")
    if r["fps_at_speed_drift"] is not None:
        like = r["fps_at_speed_drift_like_for_like"]
        print(f"at the first minute's machine speed: {pct(r['fps_at_speed_drift'])}; like for like: recording "
              f"{pct(like['recording'])}, quiet {pct(like['quiet'])}")
    for s in r["saves"]:
        print(f"saved {s['frames']} frames in {s['seconds']} s{' (limit)' if s['limit'] else ''}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.video.is_file():
        print(f"soak: error: video not found: {args.video}", file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from celeblook_desktop.window import MainWindow
    from celeblook_desktop.workers import EngineConfig, Source

    app = QApplication.instance() or QApplication(sys.argv[:1])
    scratch = None if args.out_dir else tempfile.TemporaryDirectory(prefix="celeblook-soak-")
    out_dir = args.out_dir or Path(scratch.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    # stop_after makes the window headless-friendly (no download question); it is never reached
    config = EngineConfig(threads=args.threads, builtin_seeds=(0,), calibrate_keyframes=max(0, args.calibrate))
    window = MainWindow(Source(video=args.video), config, out_dir=out_dir, stop_after=10 ** 9)
    window.show()
    samples: list[dict] = []
    state = {"t0": None, "toggles": 0, "renders": 0, "pipeline_renders": 0}
    window.recording_failed.connect(lambda text: print(f"soak: {text}", file=sys.stderr))
    window.engine.error.connect(lambda text: print(f"soak: {text}", file=sys.stderr))

    def now() -> float:
        return time.monotonic() - state["t0"]

    def sample() -> None:
        out = window.last_output
        rss, peak = memory_mb()
        own, busy = cpu_seconds()
        state["renders"], state["pipeline_renders"] = count_renders(state["renders"], state["pipeline_renders"],
                                                                    out.result.renders if out is not None else 0)
        samples.append({"t": round(now(), 2), "rss_mb": round(rss, 1), "peak_mb": round(peak, 1),
                        "cpu_own_s": round(own, 2), "cpu_busy_s": round(busy, 2),
                        "probe_ms": round(speed_probe_ms(), 3),
                        "processed": out.processed, "captured": out.captured, "dropped": out.dropped,
                        "renders": state["renders"], "recording": window.recorder.recording})

    def toggle() -> None:
        state["toggles"] += 1
        if window.recorder.recording:
            window.stop_recording()
        elif state["toggles"] % 2 == 1 and now() < args.minutes * 60 - 5:
            # odd toggles start, even ones stop (a take its limit ended stays off); none starts as the run ends
            window.start_recording(out_dir / f"soak-{state['toggles']:03d}{args.format}")

    def finish() -> None:
        sample()
        if window.recorder.recording:
            window.stop_recording(wait=True)
        window.wait_for_saves()
        app.processEvents()
        window.close()
        app.quit()

    def first_result() -> None:  # the clock starts once the models are loaded and frames come out
        if state["t0"] is not None:
            return
        state["t0"] = time.monotonic()
        sample()
        timer = QTimer(window)
        timer.timeout.connect(sample)
        timer.start(int(args.sample * 1000))
        if args.record_every > 0:
            toggle()
            rec = QTimer(window)
            rec.timeout.connect(toggle)
            rec.start(int(args.record_every * 1000))
        end = QTimer(window)
        end.setTimerType(Qt.TimerType.PreciseTimer)  # a coarse timer may end a minute 5 % early
        end.setSingleShot(True)
        end.timeout.connect(finish)
        end.start(int(args.minutes * 60_000))

    window.engine.result_ready.connect(lambda _: first_result())
    window.engine.finished.connect(lambda: None if window.engine.models is not None else app.quit())
    app.exec()
    if not samples:
        print("soak: error: the engine produced no frames", file=sys.stderr)
        return 2
    r = report(samples, window.save_log, args)
    print_report(r)
    if args.json:
        from engine.benchmark import write_json

        write_json(args.json, r)
    if scratch is not None:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
