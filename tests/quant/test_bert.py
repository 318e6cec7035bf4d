"""The BERT-style zoo encoder (BERT-base shape, 12 layers) at INT8: outputs stay close to fp32 on inputs
the calibration did not see (issue 4's accuracy criterion, on the CPU's bit-faithful integer kernels)."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from tests.quant.helpers import encoder_batch
from workbench.quant.mixed import cosine

pytestmark = pytest.mark.slow


def test_bert_encoder_int8_cosine(tmp_path):
    from workbench.zoo import bert

    net = wb.load_onnx(bert(tmp_path / "bert.onnx"))
    rng = np.random.default_rng(0)
    cal = wb.quant.EntropyCalibrator([encoder_batch(rng) for _ in range(3)], progress=False)
    x = encoder_batch(rng)
    int8 = wb.build(net, wb.BuilderConfig(device="cpu", precision="int8", calibrator=cal, max_batch=2))
    fp32 = wb.build(net, wb.BuilderConfig(device="cpu", max_batch=2))
    products = [l for l in int8.network.layers if l.op in ("QGemm", "QLinearConvFused")]
    # 4 a layer (Q, K and V packed into one product, attention out, FFN1, FFN2) + the pooler
    assert len(products) == 49 and all(int8.precisions[l.name] == "int8" for l in products)
    y8 = int8.create_execution_context().execute(x)
    y32 = fp32.create_execution_context().execute(x)
    for name in y32:
        assert cosine({name: y8[name]}, {name: y32[name]}) >= 0.99, name
