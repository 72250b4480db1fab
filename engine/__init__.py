"""CelebLook runtime engine: numpy, onnxruntime, mediapipe and opencv only (no torch, no Qt)."""
import os

# The engine runs one thread per model (the generator on its own); numpy's OpenBLAS would add a pool of its own for
# every small matrix product and spin it against them: in the app's mode one BLAS thread takes fps from 16.5 to
# 24.8 and face refreshes from 5.9 to 7.4 a second (docs/BENCHMARKS.md). It only counts before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
