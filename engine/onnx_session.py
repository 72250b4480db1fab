"""onnxruntime sessions with explicit thread settings (CPU)."""
from __future__ import annotations

import os

import onnxruntime as ort


def make_session(path: str | os.PathLike, threads: int = 0, spin: bool = True) -> ort.InferenceSession:
    """CPU InferenceSession with all graph optimisations; `threads` = intra-op threads (0: onnxruntime's default).
    `spin` False: its threads sleep as soon as a run ends instead of spinning, for a session that runs right
    before or after another one on the same cores (engine.inversion.encoder's recogniser: spinning threads of one session
    tripled the other's time at 2 threads, `celeblook bench encoder`)."""
    opts = ort.SessionOptions()
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
