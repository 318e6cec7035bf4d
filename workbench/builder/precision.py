"""Which precision each layer runs at, from the config's lowest allowed precision and per-layer constraints."""
from __future__ import annotations

import numpy as np

from ..backends.cpu.precision import storage_dtype, store
from ..dtypes import is_float

MATMUL_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum", "Attention", "FusedConv", "FusedGemm",
              "FusedMatMul", "FusedAttention"}
QUANTIZED_PRECISIONS = ("int8", "fp8")
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
    # first: a quantized layer may write int8 (a chained output) and still computes at its precision
    if precision in QUANTIZED_PRECISIONS and layer.name in quantizable:
        return precision
    if not _computes_in_float(layer, net):
        return "fp32"
    p = _FLOAT_FALLBACK[precision]
    if p == "tf32" and layer.op not in MATMUL_OPS:
        return "fp32"
    return p


def _computes_in_float(layer, net) -> bool:
    outs = [net.tensors[o] for o in layer.outputs if o]
    return bool(outs) and all(t.dtype == "float32" for t in outs)


def storage_dtypes(net, precisions: dict) -> dict:
    """tensor -> dtype it is stored in: float32 activations of fp16/bf16 layers are stored low.

    A quantized (int8/fp8) layer's float output is stored in fp16 when every reader runs at fp16 or
    is quantized itself (which rounds it far coarser): the readers then move half the bytes, as they
    would from an fp16 layer. Graph outputs stay float32.
    """
    readers = net.consumers()
    out = {}
    for layer in net.layers:
        for name in layer.outputs:
            if name and name not in net.outputs:
                p = precisions[layer.name]
                if p in QUANTIZED_PRECISIONS:
                    p = _quantized_output_precision(readers.get(name, []), precisions)
                out[name] = storage_dtype(net.tensors[name].dtype, p)
    return out


def _quantized_output_precision(readers: list, precisions: dict) -> str:
    kinds = {precisions[r.name] for r in readers}
    return "fp16" if kinds and kinds <= {"fp16", *QUANTIZED_PRECISIONS} else "fp32"


def stored_weights(net, precisions: dict) -> dict:
    """Weights read only by fp16/bf16 layers are stored rounded to that precision (half the bytes)."""
    readers: dict = {}
    for layer in net.layers:
        for name in layer.reads():
            if name in net.weights:
                readers.setdefault(name, set()).add(precisions[layer.name])
    weights = {}
    for name, w in net.weights.items():
        kinds = readers.get(name, set())
        target = storage_dtype(np.asarray(w).dtype.name, kinds.pop()) if len(kinds) == 1 else None
        weights[name] = store(np.asarray(w), target) if target else w
    return weights
