"""The soak's report: minutes, like-for-like drift, the machine's share and speed, from samples as the app gives them."""
from __future__ import annotations

import argparse

import pytest

from celeblook_desktop.soak import count_renders, cpu_seconds, like_for_like_drift, report, speed_probe_ms


def samples(fps: list[float], probe: list[float], others: float = 0.0) -> list[dict]:
    """Samples every 5 s over len(fps) minutes: `fps` frames a second per minute, recording on in odd minutes,
    the app on 2 cores and `others` cores of someone else's load."""
    out, processed, t = [], 0.0, 0.0
    for minute, (f, p) in enumerate(zip(fps, probe)):
        for k in range(12):
            out.append({"t": t, "rss_mb": 650.0, "peak_mb": 700.0, "processed": processed, "captured": 30 * t,
                        "dropped": 30 * t - processed, "recording": minute % 2 == 0, "probe_ms": p,
                        "cpu_own_s": 2.0 * t, "cpu_busy_s": (2.0 + others) * t})
            processed += 5 * f
            t += 5.0
    out.append(dict(out[-1], t=t, processed=processed, captured=30 * t, dropped=30 * t - processed,
                    cpu_own_s=2.0 * t, cpu_busy_s=(2.0 + others) * t))
    return out


ARGS = argparse.Namespace(video=argparse.Namespace(name="clip.mp4"), minutes=4, record_every=60, format=".gif",
                          threads=1, calibrate=0)


def test_report_separates_the_apps_drift_from_the_machines():
    # the machine slows by a quarter in minutes 3-4 (the probe takes 4/3 as long) and the app's fps with it
    r = report(samples([12, 12, 9, 9], [6.0, 6.0, 8.0, 8.0], others=0.5), [], ARGS)
    assert r["fps_per_minute"] == pytest.approx([12, 12, 9, 9])
    assert r["recording_minutes"] == [True, False, True, False]
    assert r["fps_drift"] == pytest.approx(-0.25)
    assert r["fps_drift_like_for_like"] == {"recording": pytest.approx(-0.25), "quiet": pytest.approx(-0.25)}
    assert r["fps_at_speed_drift"] == pytest.approx(0.0, abs=1e-3)  # at the first minute's speed: no drift
    assert r["cpu_cores_app"] == pytest.approx([2.0] * 4) and r["cpu_cores_others"] == pytest.approx([0.5] * 4)


def test_like_for_like_compares_recording_minutes_with_recording_minutes():
    assert like_for_like_drift([10, 14, 11, 13], [True, False, True, False]) == \
        {"recording": pytest.approx(0.1), "quiet": pytest.approx(13 / 14 - 1, abs=1e-3)}
    assert like_for_like_drift([10, 14], [True, False]) == {"recording": None, "quiet": None}


def test_the_machine_readings_are_real_numbers():
    own, busy = cpu_seconds()
    assert 0 < own <= busy  # this process has used some CPU, the machine at least as much
    assert 0.1 < speed_probe_ms() < 1000


def test_face_refreshes_are_counted_across_a_new_pipeline():
    """The app's face count restarts with each pipeline (a new source or clip segment): the soak's total keeps
    growing, and the report gives refreshes a second per minute."""
    total, last = 0, 0
    for now in (5, 40, 3, 9):  # 5, +35, a new pipeline with 3, +6
        total, last = count_renders(total, last, now)
    assert (total, last) == (49, 9)
    rows = samples([12, 12], [6.0, 6.0])
    for s in rows:
        s["renders"] = 4.5 * s["t"]  # 4.5 refreshes a second throughout
    assert report(rows, [], ARGS)["face_refreshes_per_minute"] == pytest.approx([4.5, 4.5])
    assert report(samples([12, 12], [6.0, 6.0]), [], ARGS)["face_refreshes_per_minute"] == []  # older samples
