"""ResNet-50 (zoo) at INT8, int8 between its int8 layers: outputs stay close to fp32 on fresh inputs."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench.quant.mixed import cosine

from .helpers import needs_kernels

pytestmark = [pytest.mark.slow, needs_kernels("Conv", "BatchNormalization", "MaxPool", "Add",
                                              "GlobalAveragePool", "Flatten", "Gemm", "Relu")]


def test_resnet50_int8_cosine(tmp_path):
    from workbench.zoo import resnet50

    net = wb.load_onnx(resnet50(tmp_path / "r50.onnx", batch="batch"))
    rng = np.random.default_rng(0)
    calib = [{"input": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)} for _ in range(3)]
    x = rng.standard_normal((2, 3, 224, 224)).astype(np.float32)
    cal = wb.quant.EntropyCalibrator(calib, progress=False)
    int8 = wb.build(net, wb.BuilderConfig(device="cpu", precision="int8", calibrator=cal, max_batch=2))
    fp32 = wb.build(net, wb.BuilderConfig(device="cpu", max_batch=2))
    matrix = [l for l in int8.network.layers if l.op in ("QLinearConvFused", "QGemm")]
    assert len(matrix) == 54 and all(int8.precisions[l.name] == "int8" for l in matrix)  # 53 convs + the fc
    # int8 between int8 layers: all but the last block (-> GlobalAveragePool) and the fc (the output); the
    # 4 projection convs (read only as residuals) on their own calibrated grids; the stem's MaxPool pools
    # int8; 12 identity residuals and 4 projections
    chained = [l for l in matrix if l.attrs.get("y_quantized")]
    assert len(chained) == 52 and int8.report["quantization"]["int8_tensors"] == 53
    assert [int8.storage_dtypes[l.outputs[0]] for l in int8.network.layers if l.op == "MaxPool"] == ["int8"]
    assert all(int8.network.tensors[l.outputs[0]].dtype == "int8" for l in chained)
    assert sum(l.attrs.get("r_scale") is not None for l in matrix) == 16
    y8 = int8.create_execution_context().execute({"input": x})
    y32 = fp32.create_execution_context().execute({"input": x})
    assert cosine(y8, y32) >= 0.99
