"""onnxruntime sessions with explicit thread settings (CPU)."""
from __future__ import annotations

import os

import onnxruntime as ort


def make_session(path: str | os.PathLike, threads: int = 0) -> ort.InferenceSession:
    """CPU InferenceSession with all graph optimisations; `threads` = intra-op threads (0: onnxruntime's default)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
