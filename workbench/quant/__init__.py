"""Quantization: INT8/FP8 calibration, the calibration cache, explicit Q/DQ, sensitivity and search.

    >>> import workbench as wb
    >>> cal = wb.quant.EntropyCalibrator(batches, cache="model.calib")
    >>> engine = wb.build(net, wb.BuilderConfig(precision="int8", calibrator=cal))
    >>> wb.quant.export_qdq(net, cal.scales, "model.qdq.onnx")

Names load on first use, so the kernels can import `workbench.quant.numerics` cheaply.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "EntropyCalibrator": "calibrators", "MinMaxCalibrator": "calibrators", "PercentileCalibrator": "calibrators",
    "Calibrator": "calibrators", "CalibrationData": "data", "read_cache": "cache", "write_cache": "cache",
    "quantize_network": "quantize", "fold_qdq": "qdq", "export_qdq": "export", "chain_int8": "chain",
    "sensitivity": "mixed", "search": "mixed", "SearchResult": "mixed", "METRICS": "mixed",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'workbench.quant' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


__all__ = sorted(_LAZY)
