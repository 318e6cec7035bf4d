"""Model parsers: ONNX today. Only these modules import onnx."""
