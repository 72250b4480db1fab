"""Timing helpers for benchmark commands: medians over repeats, tables and JSON reports."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import date
from typing import Callable

from engine.atomic import atomic_path


def median_ms(fn: Callable[[], object], repeats: int = 10, warmup: int = 2) -> float:
    """Median wall time of fn() in milliseconds after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()
    mid = len(times) // 2
    return times[mid] if len(times) % 2 else 0.5 * (times[mid - 1] + times[mid])


def machine_info() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "date": date.today().isoformat()}


def provenance(module: str, argv: list[str] | None = None) -> dict:
    """The machine, its load and the command line that produced a results file (docs quote them)."""
    args = sys.argv[1:] if argv is None else argv
    return {"machine": machine_info(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "command": " ".join(["python -m", module, *args])}


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Plain-text table of `rows` (dicts) with the given column order."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def write_json(path: str | os.PathLike, report: dict) -> None:
    """Write a benchmark report as JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
