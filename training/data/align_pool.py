"""MediaPipe alignment and augmentation of rendered faces on CPU worker processes (the online GPU recipe).

On a GPU the generator renders a batch far faster than one CPU core can run MediaPipe on it, so the batch goes
to `workers` processes through shared memory: each takes sample indices, runs the same FFHQ-style
aligned crop a real photo gets (training.data.samples.aligned_crop) and the training augmentation
(training.data.augment), and writes the encoder input back into shared memory. Two buffer slots let
the workers prepare the next batch while the GPU trains on the current one:

    pool = AlignPool(workers=15, batch=64, input_size=160)
    pool.submit(images_uint8)        # (B, H, W, 3) RGB renders; returns at once
    x, crops, aligned = pool.collect()   # waits; x (B, 3, S, S) float32 in [0, 1]

Only indices cross the process boundary. Workers are spawned, not forked: a fork would copy the parent's CUDA,
OpenMP and MediaPipe threads' locks mid-use (a MediaPipe landmarker in the parent hangs a forked child's).
"""
from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from training.data.samples import CROP

_WORKER: dict = {}  # worker-process state, set once by _init_worker


@dataclass(frozen=True)
class _Layout:
    batch: int
    res: int
    input_size: int

    def shapes(self) -> dict[str, tuple[tuple[int, ...], type]]:
        """Shape and dtype of each shared buffer (two slots each)."""
        b, r, s = self.batch, self.res, self.input_size
        return {"images": ((2, b, r, r, 3), np.uint8), "crops": ((2, b, CROP, CROP, 3), np.uint8),
                "inputs": ((2, b, 3, s, s), np.float32)}

    def views(self, shm: dict[str, SharedMemory], slot: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(renders, crops, inputs) of one buffer slot as numpy views of the shared memory."""
        return tuple(np.ndarray(shape, dtype, buffer=shm[name].buf)[slot]
                     for name, (shape, dtype) in self.shapes().items())


def _init_worker(names: dict[str, str], layout: _Layout, seed: int, strength: float, colour: float | None) -> None:
    import cv2

    from engine.landmarks import FaceLandmarker

    cv2.setNumThreads(1)
    shm = {k: SharedMemory(name=v) for k, v in names.items()}
    _WORKER.update(shm=shm, layout=layout, strength=strength, colour=colour, landmarker=FaceLandmarker(),
                   rng=np.random.default_rng([seed, os.getpid()]))


def _align_one(job: tuple[int, int]) -> bool:
    from training.data.samples import aligned_crop
    from training.data.augment import augment

    slot, i = job
    w = _WORKER
    images, crops, inputs = w["layout"].views(w["shm"], slot)
    crop, ok, _ = aligned_crop(w["landmarker"], images[i])
    crops[i] = crop
    inputs[i] = augment(crop[None], w["layout"].input_size, w["rng"], w["strength"], w["colour"])[0].numpy()
    return ok


class AlignPool:
    """Spawned workers that turn (B, res, res, 3) uint8 renders into aligned, augmented encoder inputs."""

    def __init__(self, workers: int, batch: int, input_size: int, res: int = 1024, seed: int = 0,
                 strength: float = 1.0, colour: float | None = None):
        self.layout = _Layout(batch, res, input_size)
        self.shm = {name: SharedMemory(create=True, size=int(np.prod(shape)) * np.dtype(dtype).itemsize)
                    for name, (shape, dtype) in self.layout.shapes().items()}
        names = {k: v.name for k, v in self.shm.items()}
        self.pool = mp.get_context("spawn").Pool(workers, _init_worker, (names, self.layout, seed, strength, colour))
        self.slot, self.pending = 0, None

    def submit(self, images: np.ndarray) -> None:
        """Start aligning a batch of renders (copied into the next free slot); at most one batch in flight."""
        if self.pending is not None:
            raise RuntimeError("collect() the batch in flight first")
        n = len(images)
        if n > self.layout.batch or images.shape[1:] != (self.layout.res, self.layout.res, 3):
            raise ValueError(f"expected at most {self.layout.batch} renders of {self.layout.res} px, "
                             f"got {images.shape}")
        self.slot ^= 1
        self.layout.views(self.shm, self.slot)[0][:n] = images
        self.pending = (n, self.pool.map_async(_align_one, [(self.slot, i) for i in range(n)], chunksize=1))

    def collect(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Wait for the batch in flight: (inputs (n, 3, S, S) float32, crops (n, 256, 256, 3) uint8, aligned (n,))."""
        n, result = self.pending
        aligned = np.array(result.get(), bool)
        self.pending = None
        _, crops, inputs = self.layout.views(self.shm, self.slot)
        return inputs[:n].copy(), crops[:n].copy(), aligned

    def close(self) -> None:
        """Stop the workers and free the shared memory."""
        self.pool.terminate()
        self.pool.join()
        for block in self.shm.values():
            block.close()
            block.unlink()
        self.shm = {}

    def __enter__(self) -> "AlignPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
