"""Int8 between int8 layers: a pure Network -> Network pass over quantized layers, as TensorRT does.

A quantized layer's float32 output t is written as grid integers (y_quantized=1, t's dtype
int8/uint8) when every reader of t is an int8/uint8 quantized layer that reads t as X (input 0)
or as QLinearConvFused's residual (input 3), and all X readers quantize on one grid (x_scale,
x_zero_point, x_dtype). A tensor read only as a residual (a ResNet projection shortcut) takes its
own calibrated int8 grid, where the calibration measured it (`scales`). A MaxPool between them is looked through
(a ResNet stem's pool): rounding to a grid is monotone, so the max of the integers is the integer
of the max, and the pool then moves int8 too. The producer then rounds to that grid
(y_scale/y_zero_point/y_dtype), X readers take the integers as they are and residual readers
dequantize them (r_scale/r_zero_point). Graph outputs, tensors read by any other layer, and
producers already rounding to another grid (explicit Q/DQ) keep float32; fp8 layers never chain.

Values: an X-only chain is bit-identical to the unchained network (the producer rounds exactly
as its readers would have quantized). A chained residual is the grid value of the float it was.

    >>> net = chain_int8(net, scales)    # after quantize_network / fold_qdq; scales: {tensor: int8 scale}
    >>> int8_grids(net)                  # {'conv1_out': (scale, zero_point), ...}
"""
from __future__ import annotations

import numpy as np

from ..ir.opdefs.quantized import GRID_TYPES
from .numerics import dequantize
from .quantize import is_quantized

X, RESIDUAL = 0, 3  # the input positions a chained tensor may be read at
PASS_THROUGH = ("MaxPool",)  # ops whose output is one of their input values: they commute with rounding


def chain_int8(net, scales: dict | None = None):
    """A copy of `net` whose tensors between int8 quantized layers are int8 where every reader allows it."""
    net = net.copy()
    readers = net.consumers()
    for layer in net.layers:
        grid = chain_grid(net, layer, readers, scales)
        if grid is not None:
            _chain(net, layer, grid, _reads(net, layer.outputs[0], readers))
    return net


def chain_grid(net, layer, readers: dict, scales: dict | None = None):
    """(scale, zero point, dtype) that `layer`'s output can be written on for its readers, or None."""
    if not _integer_recipe(layer) or layer.attrs.get("y_quantized") or len(layer.outputs) != 1:
        return None
    reads = _reads(net, layer.outputs[0], readers)
    if not reads or any(u is None for u, _ in reads):
        return None
    grids = {_grid(u) for u, name in reads if X in _positions(u, name)}
    if not grids and scales and scales.get(layer.outputs[0]):  # residual readers only: the tensor's own grid
        grids = {(float(np.float32(scales[layer.outputs[0]])), 0, "int8")}
    if len(grids) != 1:
        return None  # no X reader and no calibrated scale, or readers that disagree
    grid = grids.pop()
    if layer.attrs.get("y_scale") is not None and _grid(layer, "y") != grid:
        return None  # the model rounds this output to a grid of its own (explicit Q/DQ)
    return grid


def _reads(net, name: str, readers: dict) -> list:
    """[(reader, tensor it reads)] for the tensor `name`, looking through pass-through layers (listed
    as (layer, None)); a (None, name) entry marks a reader that cannot take integers, or a tensor
    that must stay float (a graph output). [] when nothing reads `name`."""
    if name in net.outputs or net.tensors[name].dtype != "float32":
        return [(None, name)]
    out = []
    for u in readers.get(name, []):
        positions = _positions(u, name)
        if _integer_recipe(u) and positions <= _allowed(u):
            out.append((u, name))
        elif _passes_through(u) and positions == {0}:
            out += [(u, None)] + _reads(net, u.outputs[0], readers)
        else:
            out.append((None, name))
    return out


def _passes_through(layer) -> bool:
    return layer.op in PASS_THROUGH and layer.domain in ("", "ai.onnx") and not any(layer.outputs[1:])


def _chain(net, layer, grid: tuple, reads: list) -> None:
    """Write `layer`'s output on `grid` as integers, and the pass-through layers after it; residual
    readers dequantize it."""
    scale, zero_point, dtype = grid
    layer.attrs.update(y_scale=scale, y_zero_point=zero_point, y_dtype=dtype, y_quantized=1)
    net.tensors[layer.outputs[0]].dtype = dtype
    for user, name in reads:
        if name is None:  # a pass-through layer: its output holds the same grid's integers
            net.tensors[user.outputs[0]].dtype = dtype
        elif RESIDUAL in _positions(user, name):
            user.attrs.update(r_scale=scale, r_zero_point=zero_point)


def _integer_recipe(layer) -> bool:
    return is_quantized(layer) and layer.attrs.get("x_dtype", "int8") in GRID_TYPES


def _positions(layer, name: str) -> set:
    """Where `layer` reads `name`: input positions, or -1 for a read by one of its subgraphs."""
    found = {i for i, n in enumerate(layer.inputs) if n == name}
    return found | ({-1} if name in layer.outer_reads() else set())


def _allowed(layer) -> set:
    return {X, RESIDUAL} if layer.op == "QLinearConvFused" else {X}


def _grid(layer, side: str = "x") -> tuple:
    """The grid a layer quantizes its X ("x") or rounds its output ("y") on, the scale as float32
    (how the kernels use it)."""
    a = layer.attrs
    return float(np.float32(a[f"{side}_scale"])), int(a.get(f"{side}_zero_point") or 0), a.get(f"{side}_dtype", "int8")


# ---- reading chained tensors ---------------------------------------------------------------------
def int8_grids(net) -> dict:
    """{tensor: (scale, zero point)} for the tensors of `net` held as grid integers, in layer order:
    chained layers' outputs and the pass-through layers' after them."""
    out = {}
    for layer in net.layers:
        if is_quantized(layer) and layer.attrs.get("y_quantized"):
            out[layer.outputs[0]] = (np.float32(layer.attrs["y_scale"]), layer.attrs.get("y_zero_point") or 0)
        elif _passes_through(layer) and layer.inputs[0] in out and net.tensors[layer.outputs[0]].dtype in GRID_TYPES:
            out[layer.outputs[0]] = out[layer.inputs[0]]
    return out


def float_value(grids: dict, name: str, value):
    """A tensor as the model's float32 values: grid integers (see int8_grids) dequantized.

    Per-layer tools (compare, capture) see the same values whether the engine chained or not.
    """
    if value is None or name not in grids:
        return value
    return dequantize(value, *grids[name])
