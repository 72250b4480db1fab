"""Model code, weight conversion, training, fits, evaluation and ONNX export behind the engine (the `train` extra)."""
