"""The builder's quantization step: explicit Q/DQ folding, calibration, then implicit quantization.

The builder calls `check` while validating (bad calibration data fails before any work) and
`lower` after optimizing (its "calibrate" stage). A layer is quantized when its target
precision, `layer_precisions[name]` or else the build's precision, is int8 or fp8. Last, the
tensors between int8 layers become int8 (chain.py), so every int8 build moves int8 between them.

    >>> net, quantized, info = lower(net, cfg, progress=lambda f: ..., cancel=None)
"""
from __future__ import annotations

from ..errors import ConfigError
from .chain import chain_int8, int8_grids
from .numerics import is_integer
from .qdq import fold_qdq
from .quantize import PRECISIONS, eligibility, is_matrix, is_quantized, quantize_network


def targets(net, cfg) -> dict:
    """{layer name: "int8"/"fp8"} for the matrix layers the config asks to quantize."""
    out = {}
    for layer in net.layers:
        p = cfg.layer_precisions.get(layer.name, cfg.precision)
        if p in PRECISIONS and is_matrix(layer):
            out[layer.name] = p
    return out


def wants_quantization(cfg) -> bool:
    return cfg.precision in PRECISIONS or any(p in PRECISIONS for p in cfg.layer_precisions.values())


def check(network, cfg) -> None:
    """Validate the calibrator's cache and data against the network now, before any work."""
    if cfg.calibrator is None or not wants_quantization(cfg):
        return
    if not all(callable(getattr(cfg.calibrator, m, None)) for m in ("check", "calibrate")):
        raise ConfigError(f"calibrator must be a workbench calibrator (wb.quant.EntropyCalibrator(data), "
                          f"MinMaxCalibrator, PercentileCalibrator), got {type(cfg.calibrator).__name__}")
    cfg.calibrator.check(network)


def lower(net, cfg, progress=None, cancel=None):
    """(network with quantized layers, {quantized layer: precision}, report dict).

    Explicitly quantized layers (Q/DQ in the model) are folded first; the calibrator then
    measures the network as it stands and the remaining matrix layers are quantized; then the
    tensors between int8 layers are chained (report: "int8_tensors", how many).
    """
    info: dict = {}
    if not wants_quantization(cfg):
        return net, {}, info
    net, info["explicit"] = fold_qdq(net, layers=set(targets(net, cfg)))
    wanted = targets(net, cfg)
    scales = {}
    if wanted and cfg.calibrator is not None:
        scales = cfg.calibrator.calibrate(net, progress=progress, cancel=cancel)
        info["calibrator"] = cfg.calibrator.kind
        info["cache"] = None if cfg.calibrator.cache is None else \
            {"path": str(cfg.calibrator.cache), "reused": cfg.calibrator.from_cache}
    elif wanted:
        info["note"] = ("no calibrator: layers without Q/DQ stay in floating point; give "
                        "BuilderConfig(calibrator=wb.quant.EntropyCalibrator(data))")
    for precision in PRECISIONS:
        names = [n for n, p in wanted.items() if p == precision]
        if names:
            net = quantize_network(net, scales, precision, layers=names)
    net = chain_int8(net, scales)
    info["int8_tensors"] = len(int8_grids(net))
    quantized = {l.name: layer_precision(l) for l in net.layers if is_quantized(l)}
    info["not_quantized"] = {n: why for n, why in eligibility(net, scales).items()
                             if n in wanted and why is not None}
    return net, quantized, info


def layer_precision(layer) -> str:
    """"int8" or "fp8": what a quantized layer computes in (its input's quantized type)."""
    return "int8" if is_integer(layer.attrs.get("x_dtype", "int8")) else "fp8"
