"""Which precision each layer runs at, from the config's lowest allowed precision and per-layer constraints."""
from __future__ import annotations

from ..dtypes import is_float

MATMUL_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum", "Attention", "FusedConv", "FusedGemm",
              "FusedMatMul"}
# What a build at precision P runs a float layer at, before int8/fp8 tactics exist for it.
_FLOAT_FALLBACK = {"fp32": "fp32", "tf32": "tf32", "fp16": "fp16", "bf16": "bf16", "int8": "fp16", "fp8": "fp16"}


def assign_precisions(net, cfg, quantizable=frozenset()) -> dict:
    """layer name -> precision. Non-float layers run exact ("fp32"); tf32 applies to matrix ops only.

    `quantizable`: layer names that have an int8/fp8 implementation (given by the quantizer).
    """
    out = {}
    for layer in net.layers:
        if layer.name in cfg.layer_precisions:
            out[layer.name] = cfg.layer_precisions[layer.name]
            continue
        out[layer.name] = _default(layer, net, cfg.precision, quantizable)
    return out


def _default(layer, net, precision: str, quantizable) -> str:
    if not _computes_in_float(layer, net):
        return "fp32"
    if precision in ("int8", "fp8") and layer.name in quantizable:
        return precision
    p = _FLOAT_FALLBACK[precision]
    if p == "tf32" and layer.op not in MATMUL_OPS:
        return "fp32"
    return p


def _computes_in_float(layer, net) -> bool:
    outs = [net.tensors[o] for o in layer.outputs if o]
    return bool(outs) and all(t.dtype == "float32" for t in outs)
