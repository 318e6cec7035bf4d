"""Zoo encoder FP8 on the GPU: held-out cosine to fp32 with every product in FP8, and with the layers that
`wb.quant.search(..., "cosine", 0.993, precision="fp8")` kept at fp16 on the CPU (names given on the command
line), for a few fresh inputs. Calibration and inputs as in tests/gpu/test_zoo_encoder.py.

    python benchmarks/probe_fp8_encoder.py Gemm_0 MatMul_21 ...
"""
import sys
import tempfile

import numpy as np

import workbench as wb
from tests.quant.helpers import encoder_batch
from workbench.quant.mixed import cosine
from workbench.zoo import bert


def main(kept_fp16: list) -> None:
    net = wb.load_onnx(bert(tempfile.mkdtemp() + "/bert.onnx"))
    rng = np.random.default_rng(0)
    cal = wb.quant.MinMaxCalibrator([encoder_batch(rng) for _ in range(3)], progress=False)
    inputs = [encoder_batch(rng)] + [encoder_batch(np.random.default_rng(100 + s)) for s in range(1, 4)]
    fp32 = wb.build(net, wb.BuilderConfig(device="cpu", max_batch=2)).create_execution_context()
    want = [fp32.execute(x) for x in inputs]
    for label, constraints in (("all fp8", {}), ("searched", {name: "fp16" for name in kept_fp16})):
        engine = wb.build(net, wb.BuilderConfig(device="cuda", precision="fp8", calibrator=cal, max_batch=2,
                                                layer_precisions=constraints))
        ctx = engine.create_execution_context()
        fp8 = sum(p == "fp8" for p in engine.precisions.values())
        for x, ref in zip(inputs, want):
            got = {n: np.asarray(getattr(a, "get", lambda: a)(), np.float64) for n, a in ctx.execute(x).items()}
            print(label, f"{fp8} fp8 products", {n: round(cosine({n: got[n]}, {n: ref[n]}), 5) for n in ref},
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
