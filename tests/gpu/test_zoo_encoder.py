"""On the GPU: the BERT-style zoo encoder (BERT-base shape, 12 layers) at INT8 and FP8 keeps cosine >= 0.99 to
the fp32 CPU engine on inputs the calibration did not see (issue 4's accuracy criterion, on the GPU's kernels)."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from tests.quant.helpers import encoder_batch
from workbench.quant.mixed import cosine

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("precision,calibrator", [("int8", wb.quant.EntropyCalibrator),
                                                  ("fp8", wb.quant.MinMaxCalibrator)])
def test_zoo_encoder_quantized_on_the_gpu(tmp_path, precision, calibrator):
    from workbench.zoo import bert

    net = wb.load_onnx(bert(tmp_path / "bert.onnx"))
    rng = np.random.default_rng(0)
    cal = calibrator([encoder_batch(rng) for _ in range(3)], progress=False)
    x = encoder_batch(rng)
    quant = wb.build(net, wb.BuilderConfig(device="cuda", precision=precision, calibrator=cal, max_batch=2))
    assert precision in quant.precisions.values()
    fp32 = wb.build(net, wb.BuilderConfig(device="cpu", max_batch=2))
    got = quant.create_execution_context().execute(x)
    want = fp32.create_execution_context().execute(x)
    for name in want:
        out = got[name].get() if hasattr(got[name], "get") else got[name]  # device arrays come back as CuPy's
        assert cosine({name: np.asarray(out, np.float64)}, {name: want[name]}) >= 0.99, name
