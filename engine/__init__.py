"""CelebLook runtime engine: numpy, onnxruntime, mediapipe and opencv only (no torch, no Qt)."""
