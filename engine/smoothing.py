"""Temporal smoothing of landmarks with the One-Euro filter (Casiez, Roussel & Vogel, CHI 2012).

A low-pass filter whose cutoff rises with speed: still faces are held steady, moving ones follow with
little lag. Everything is explicit: the state is a frozen dataclass passed in and returned, so a caller
keeps one per tracked face and nothing is hidden in globals. As in MediaPipe's landmark smoothing, the
speed that raises the cutoff is measured in face sizes per second, so one setting suits near and far faces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from engine.landmarks import Face


@dataclass(frozen=True)
class OneEuroParams:
    """`min_cutoff` (Hz): smoothing of a still signal, lower is steadier; `beta`: how fast the cutoff rises with
    speed (Hz per face size per second), higher lags less; `d_cutoff` (Hz): smoothing of the speed estimate.
    The defaults were chosen on the talking-head clips in docs/BENCHMARKS.md (## Alignment jitter)."""

    min_cutoff: float = 1.0
    beta: float = 3.0
    d_cutoff: float = 1.0


@dataclass(frozen=True)
class OneEuroState:
    """Filter memory: the last filtered value, its filtered derivative (units per second) and time (seconds)."""

    value: np.ndarray
    derivative: np.ndarray
    t: float


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro_step(state: OneEuroState | None, x: np.ndarray, t: float, params: OneEuroParams = OneEuroParams(),
                  scale: float = 1.0) -> OneEuroState:
    """Filter sample `x` (any array shape) taken at time `t` seconds; returns the new state, whose `value` is the
    filtered sample. `scale` divides the speed before it raises the cutoff (e.g. the face size in pixels)."""
    x = np.asarray(x, np.float64)
    if state is None or state.value.shape != x.shape:
        return OneEuroState(value=x.copy(), derivative=np.zeros_like(x), t=float(t))
    dt = float(t) - state.t
    if dt <= 0.0:
        return state
    derivative = state.derivative + _alpha(params.d_cutoff, dt) * ((x - state.value) / dt - state.derivative)
    cutoff = params.min_cutoff + params.beta * np.abs(derivative) / max(scale, 1e-9)
    value = state.value + _alpha(cutoff, dt) * (x - state.value)
    return OneEuroState(value=value, derivative=derivative, t=float(t))


def face_scale(face: Face) -> float:
    """Size of a face in pixels: the mean of its bounding box's width and height."""
    x0, y0, x1, y1 = face.bbox
    return 0.5 * ((x1 - x0) + (y1 - y0))


def smooth_face(state: OneEuroState | None, face: Face, t: float, params: OneEuroParams = OneEuroParams(),
                reset_fraction: float = 0.5) -> tuple[Face, OneEuroState]:
    """Smooth a tracked face's 478 landmarks; returns (smoothed face, new state). The filter restarts when the
    face jumps by more than `reset_fraction` of its size (a cut, or another person)."""
    scale = face_scale(face)
    if state is not None and state.value.shape == face.points.shape:
        jump = float(np.linalg.norm(face.points[:, :2].mean(axis=0) - state.value[:, :2].mean(axis=0)))
        if jump > reset_fraction * scale:
            state = None
    state = one_euro_step(state, face.points, t, params, scale=scale)
    return replace(face, points=state.value.astype(np.float32)), state
