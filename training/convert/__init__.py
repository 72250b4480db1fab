"""Import of third-party weights (OpenVINO IR, TF.js) into our torch modules and ONNX files."""
