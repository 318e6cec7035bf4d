"""GELU written out elementwise becomes one ONNX Gelu layer.

    exact:  x * 0.5 * (1 + Erf(x / sqrt(2)))                         -> Gelu(x)
    tanh:   x * 0.5 * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))  -> Gelu(x, approximate="tanh")

The three factors x, 0.5 and (1 + ...) may be multiplied in any grouping and order; the division
by sqrt(2) may be a multiplication by 1/sqrt(2); x^3 may be Pow(x, 3) or x * x * x.
"""
from __future__ import annotations

import math

from ..ir import Layer
from .match import Graph, Rewriter

SQRT2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715
# Constants written with fewer digits (1.4142, 0.7978845) still mean GELU; rounding-level change only.
CONST_RTOL = 1e-4


def fuse_gelu(net):
    """Replace decomposed GELUs by Gelu layers; returns (new net, changed).

    >>> net, changed = fuse_gelu(net)
    """
    rw = Rewriter(net)
    g = rw.graph
    for inner in g.layers_of(("Erf", "Tanh")):
        match = _match(g, inner)
        if match is not None and rw.available(*match[2]):
            x, out, layers = match
            attrs = {"approximate": "tanh"} if inner.op == "Tanh" else {}
            rw.replace(layers, Layer(layers[-1].name, "Gelu", [x], [out], attrs))
    return rw.finish()


def _match(g: Graph, inner):
    """(x, output, matched layers in network order) of the GELU around an Erf/Tanh layer, or None."""
    argument = _erf_argument(g, inner) if inner.op == "Erf" else _tanh_argument(g, inner)
    if argument is None:
        return None
    x, layers = argument
    outer = _times_half_x(g, _plus_one(g, inner, layers), x, layers)
    if outer is None or g.shape(outer) is None or g.shape(outer) != g.shape(x):
        return None
    layers = g.in_order(layers)
    if not all(g.private_to(o, *layers) for layer in layers for o in layer.outputs if o != outer):
        return None
    return x, outer, layers


def _scaled(g: Graph, name: str, factor: float):
    """(t, layer) when `name` = t * factor (Mul, either order) or t / (1/factor) (Div); else None."""
    layer = g.producer(name, ("Mul", "Div"))
    split = g.split_const(layer) if layer is not None else None
    if split is None:
        return None
    t, c = split
    if layer.op == "Mul" and g.is_scalar(c, factor, CONST_RTOL):
        return t, layer
    if layer.op == "Div" and layer.inputs[1] == c and g.is_scalar(c, 1.0 / factor, CONST_RTOL):
        return t, layer
    return None


def _erf_argument(g: Graph, erf):
    """(x, [layers]) when the Erf reads x / sqrt(2)."""
    found = _scaled(g, erf.inputs[0], 1.0 / SQRT2)
    return None if found is None else (found[0], [found[1], erf])


def _tanh_argument(g: Graph, tanh):
    """(x, [layers]) when the Tanh reads sqrt(2/pi) * (x + 0.044715 * x^3)."""
    found = _scaled(g, tanh.inputs[0], SQRT_2_OVER_PI)
    add = g.producer(found[0], "Add") if found is not None else None
    if add is None or len(add.inputs) != 2:
        return None
    for x, q in (add.inputs, add.inputs[::-1]):
        cubic = _scaled(g, q, CUBIC)
        cube = _cube_of(g, cubic[0], x) if cubic is not None else None
        if cube is not None:
            return x, [*cube, cubic[1], add, found[1], tanh]
    return None


def _cube_of(g: Graph, name: str, x: str):
    """[layers] when `name` = Pow(x, 3) or x * (x * x) in either order; else None."""
    layer = g.producer(name, ("Pow", "Mul"))
    if layer is None or len(layer.inputs) != 2:
        return None
    if layer.op == "Pow":
        return [layer] if layer.inputs[0] == x and g.is_scalar(layer.inputs[1], 3.0) else None
    other = g.other_input(layer, x)
    square = g.producer(other, "Mul") if other is not None else None
    return [square, layer] if square is not None and square.inputs == [x, x] else None


def _plus_one(g: Graph, inner, layers: list) -> str | None:
    """The output of Add(inner's output, 1), appending that Add to `layers`; None if absent."""
    add = g.only_reader(inner.output)
    split = g.split_const(add) if add is not None and add.op == "Add" else None
    if split is None or split[0] != inner.output or not g.is_scalar(split[1], 1.0):
        return None
    layers.append(add)
    return add.output


def _times_half_x(g: Graph, name: str | None, x: str, layers: list) -> str | None:
    """The tensor equal to `name` * x * 0.5, following Mul readers; matched Muls are appended to `layers`."""
    factors: list = []
    while name is not None and len(factors) < 2:
        mul = g.only_reader(name)
        other = g.other_input(mul, name) if mul is not None and mul.op == "Mul" else None
        if other is None or other == name:
            return None
        half_x = g.producer(other, "Mul")
        if other == x:
            factors.append("x")
        elif g.is_scalar(other, 0.5):
            factors.append("half")
        elif half_x is not None and _is_half_x(g, half_x, x):
            factors += ["x", "half"]
            layers.append(half_x)
        else:
            return None
        layers.append(mul)
        name = mul.output
    return name if sorted(factors) == ["half", "x"] else None


def _is_half_x(g: Graph, mul, x: str) -> bool:
    other = g.other_input(mul, x)
    return other is not None and other != x and g.is_scalar(other, 0.5)
