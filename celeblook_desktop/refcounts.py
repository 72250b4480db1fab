"""A guard against PySide6 6.12.0's reference-count bug, which ends long sessions on CPython < 3.12.

PySide6 6.12.0 returns None from void methods (QLabel.setText, QObject.setObjectName, processEvents…) and True
from Signal.emit without giving the caller a reference, so each such call made from Python takes one reference
away from None or True (6.11.3 does not: measured side by side). The app makes several such calls per frame; in
the running app None holds ~32 000 references and True ~8 600 (True lost one per processed frame), so after a
few thousand frames, minutes at 25 fps, one of them is freed and the interpreter aborts ("none_dealloc",
"bool_dealloc": the 10-minute soak ended that way). CPython 3.12 made these objects immortal, so it is safe there.

pyproject.toml excludes 6.12.0. For an install that has it anyway, `guard()` measures the leak once and, only when
it is there, adds 2**40 references to None, True and False (these singletons are never freed: only their count
changes), which outlasts 30 years of 1000 leaking calls a second.
"""
from __future__ import annotations

import ctypes
import sys

DONATION = 1 << 40
_PROBES = 50
_found: list[str] | None = None


def leaks() -> list[str]:
    """Which of None and True this PySide6 loses a reference to per call ([] when it does not)."""
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe, found = Probe(), []
    before = sys.getrefcount(None)
    for _ in range(_PROBES):
        probe.setObjectName("probe")
    if sys.getrefcount(None) <= before - _PROBES:
        found.append("None")
    before = sys.getrefcount(True)
    for _ in range(_PROBES):
        probe.ping.emit()
    if sys.getrefcount(True) <= before - _PROBES:
        found.append("True")
    return found


def guard() -> list[str]:
    """Once per process: when PySide6 leaks references to None or True (leaks()), give None, True and False
    DONATION references more. Returns what was found."""
    global _found
    if _found is None:
        mortal = sys.implementation.name == "cpython" and sys.version_info < (3, 12)
        _found = leaks() if mortal else []
        for obj in (None, True, False) if _found else ():
            ctypes.c_ssize_t.from_address(id(obj)).value += DONATION  # ob_refcnt is the object's first field
    return _found
