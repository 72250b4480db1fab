"""ONNX export of trained models for the engine, and the model manifest they are recorded in."""
