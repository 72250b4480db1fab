"""The generator on its own thread, so the per-frame loop never waits for it.

The live loop (landmarks, crop, encoder, paste) runs at the camera's rate; the generator is the one slow step
(tens of ms even at the 256-px preview). `BackgroundRenderer` keeps a one-slot mailbox of "latent to render":
`submit` replaces whatever is waiting (older requests are dropped, never queued), a worker thread renders the
newest request, and `latest` returns the newest finished face without blocking. The loop pastes that face with
the *current* frame's crop, so head motion follows every frame while the face's content (expression, identity)
refreshes as fast as the generator can go; while the generator renders frame t, the loop is already running
landmarks and the encoder on frames t+1, t+2, ...

`free_in()` says how long until the worker is expected to want its next latent (the running render's expected
remaining time), so a loop that makes latents can make only the ones the worker will take (LivePipeline paces
its encoder by it). `clear()` starts a new epoch (e.g. the face was lost): renders requested before it are discarded when they
finish. onnxruntime releases the GIL while it runs, so the worker really overlaps the loop.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

RENDER_TIME_WEIGHT = 0.2  # weight of the newest render in the running mean of render durations (free_in)


@dataclass(frozen=True)
class Rendered:
    """A finished render: the latent it came from, the face (whatever `render_fn` returns), its sequence number
    (1, 2, ... per renderer), how long the render took (ms) and the caller's `tag` of the request (e.g. the frame
    the latent came from, so a display can tell how old the face it shows is)."""

    latent: np.ndarray
    face: np.ndarray
    sequence: int
    ms: float
    tag: object = None


class BackgroundRenderer:
    """One worker thread running `render_fn(latent) -> face` on the newest submitted latent."""

    def __init__(self, render_fn):
        self._render_fn = render_fn
        self._cond = threading.Condition()
        self._pending: tuple[int, np.ndarray, object] | None = None  # (epoch, latent, tag)
        self._latest: Rendered | None = None
        self._epoch = 0
        self._count = 0
        self._busy = False
        self._started = 0.0  # when the running render began (time.perf_counter)
        self._mean_ms: float | None = None  # running mean of render durations (free_in's estimate)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="celeblook-render", daemon=True)
        self._thread.start()

    @property
    def renders(self) -> int:
        """Renders finished so far (including ones discarded by `clear`)."""
        return self._count

    def submit(self, latent: np.ndarray, tag: object = None) -> None:
        """Ask for `latent` to be rendered (`tag` comes back with it); replaces a request that has not started yet."""
        with self._cond:
            self._raise_error()
            self._pending = (self._epoch, np.array(latent, copy=True), tag)
            self._cond.notify_all()

    def latest(self) -> Rendered | None:
        """The newest finished render of this epoch, or None (never blocks)."""
        with self._cond:
            self._raise_error()
            return self._latest

    @property
    def mean_ms(self) -> float | None:
        """Running mean of render durations (ms; RENDER_TIME_WEIGHT on the newest), None before the first."""
        return self._mean_ms

    def free_in(self) -> float:
        """Seconds until the worker is expected to take its next request: 0 when it is idle (or has not finished a
        render yet to time), else the running render's expected remaining time (never below 0)."""
        with self._cond:
            if not self._busy or self._mean_ms is None:
                return 0.0
            return max(0.0, self._started + self._mean_ms / 1000.0 - time.perf_counter())

    def wait(self, timeout: float = 30.0) -> Rendered | None:
        """Block until nothing is pending or running (or `timeout` s), then return `latest()`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._pending is not None or self._busy) and self._error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._raise_error()
            return self._latest

    def clear(self) -> None:
        """Forget the last render and any waiting request; a render in flight is discarded when it ends."""
        with self._cond:
            self._epoch += 1
            self._pending = None
            self._latest = None

    def close(self) -> None:
        """Stop the worker (waits for a render in flight). Idempotent."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"the background render failed: {self._error}") from self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                epoch, latent, tag = self._pending
                self._pending = None
                self._busy = True
                self._started = t0 = time.perf_counter()
            try:
                face = self._render_fn(latent)
            except BaseException as exc:  # handed to the caller on its next call
                with self._cond:
                    self._error, self._busy = exc, False
                    self._cond.notify_all()
                return
            ms = 1000.0 * (time.perf_counter() - t0)
            with self._cond:
                self._count += 1
                self._busy = False
                self._mean_ms = ms if self._mean_ms is None else self._mean_ms + RENDER_TIME_WEIGHT * (ms - self._mean_ms)
                if epoch == self._epoch:
                    self._latest = Rendered(latent, face, self._count, ms, tag)
                self._cond.notify_all()
