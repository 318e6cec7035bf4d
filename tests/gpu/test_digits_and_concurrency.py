"""On the GPU: the shipped digits CNN at int8/fp8 keeps its accuracy, and many contexts on many
streams at once give exactly what one context gives alone."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import workbench as wb

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def digits():
    return wb.zoo.digits()


def _accuracy(engine, d) -> float:
    logits = engine.create_execution_context().execute({"input": d.x_test})["logits"]
    return float((logits.argmax(1) == d.y_test).mean())


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_digits_quantized_on_the_gpu_keeps_accuracy(digits, tmp_path, precision):
    net = wb.load_onnx(digits.model)
    fp32 = wb.build(net, wb.BuilderConfig(device="cuda", max_batch=len(digits.x_test)))
    cal = wb.quant.EntropyCalibrator(digits.x_calib, cache=str(tmp_path / f"{precision}.calib"))
    quant = wb.build(net, wb.BuilderConfig(device="cuda", precision=precision, calibrator=cal,
                                           max_batch=len(digits.x_test)))
    assert precision in quant.precisions.values()
    assert _accuracy(quant, digits) >= _accuracy(fp32, digits) - 0.005


def test_eight_contexts_on_eight_streams_match_serial_runs(digits):
    engine = wb.build(wb.load_onnx(digits.model), wb.BuilderConfig(device="cuda", precision="fp16", max_batch=16))
    rng = np.random.default_rng()
    batches = [digits.x_test[rng.choice(len(digits.x_test), 16)] for _ in range(8)]
    serial = engine.create_execution_context()
    want = [serial.execute({"input": b})["logits"] for b in batches]
    results: dict = {}

    def worker(i):
        ctx = engine.create_execution_context()  # its own stream
        results[i] = [ctx.execute({"input": batches[i]})["logits"] for _ in range(200)]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mismatches = sum(not np.array_equal(out, want[i]) for i in range(8) for out in results[i])
    assert len(results) == 8 and mismatches == 0
