"""LayerNorm written out elementwise (torch's exporter before opset 17) becomes LayerNormalization.

    mean = ReduceMean(x, trailing axes)        d = x - mean
    var  = ReduceMean(d ** 2 or d * d)         y = d / Sqrt(var + eps) [* gamma] [+ beta]
"""
from __future__ import annotations

import numpy as np

from ..ir import Layer, dims
from .match import Graph, Rewriter


def fuse_layernorm(net):
    """Replace decomposed layer normalizations by LayerNormalization layers; returns (new net, changed).

    >>> net, changed = fuse_layernorm(net)
    """
    rw = Rewriter(net)
    g = rw.graph
    for div in g.layers_of("Div"):
        match = _match(g, div)
        if match is None or not rw.available(*match["layers"]):
            continue
        params = _parameters(g, match)
        if params is None:
            continue
        names = [rw.add_weight(p, f"{div.name}_{what}") for p, what in zip(params, ("scale", "bias"))]
        inputs = [match["x"], *names]
        attrs = {"axis": -len(match["norm_shape"]), "epsilon": match["eps"]}
        rw.replace(match["layers"], Layer(div.name, "LayerNormalization", inputs, [match["out"]], attrs))
    return rw.finish()


def _parameters(g: Graph, match: dict) -> list | None:
    """[scale] or [scale, bias] of the normalized shape; scale is ones when there is no gamma."""
    norm, (gamma, beta) = match["norm_shape"], match["affine"]
    dtype = np.dtype(g.dtype(match["x"]))
    if gamma is None and not dims.is_static(norm):
        return None
    scale = _as_normalized(g.const(gamma), norm) if gamma is not None else np.ones(norm, dtype)
    bias = _as_normalized(g.const(beta), norm) if beta is not None else None
    if scale is None or (beta is not None and bias is None):
        return None
    return [scale] if bias is None else [scale, bias]


def _match(g: Graph, div) -> dict | None:
    """The parts of the LayerNorm whose normalising Div is `div`, or None."""
    d, std = div.inputs
    sub, sqrt = g.producer(d, "Sub"), g.producer(std, "Sqrt")
    add_eps = g.producer(sqrt.inputs[0], "Add") if sqrt is not None else None
    split = g.split_const(add_eps) if add_eps is not None else None
    if sub is None or split is None or g.scalar(split[1]) is None or g.scalar(split[1]) < 0:
        return None
    x, mean = sub.inputs
    mean_layer, var_layer = g.producer(mean, "ReduceMean"), g.producer(split[0], "ReduceMean")
    square = g.producer(var_layer.inputs[0], ("Pow", "Mul")) if var_layer is not None else None
    if mean_layer is None or square is None or mean_layer.inputs[0] != x or not _squares(g, square, d):
        return None
    shape = g.shape(x)
    axes = _trailing_axes(g, mean_layer, shape)
    if axes is None or _trailing_axes(g, var_layer, shape) != axes:
        return None
    layers = [mean_layer, sub, square, var_layer, add_eps, sqrt, div]
    out, affine = _affine(g, div.output, layers)
    if g.shape(out) != shape or not all(g.private_to(o, *layers) for layer in layers
                                         for o in layer.outputs if o != out):
        return None
    return {"x": x, "out": out, "layers": g.in_order(layers),
            "affine": affine, "eps": g.scalar(split[1]), "norm_shape": tuple(shape[len(shape) - axes:])}


def _squares(g: Graph, layer, d: str) -> bool:
    """True when `layer` is Pow(d, 2) or Mul(d, d)."""
    if layer.op == "Pow":
        return layer.inputs[0] == d and g.is_scalar(layer.inputs[1], 2.0)
    return layer.inputs == [d, d]


def _trailing_axes(g: Graph, reduce, shape) -> int | None:
    """k when the ReduceMean keeps dims and folds exactly the last k axes of `shape`; else None."""
    if shape is None or not reduce.attrs.get("keepdims", 1):
        return None
    rank = len(shape)
    if len(reduce.inputs) > 1 and reduce.inputs[1]:
        axes = g.const(reduce.inputs[1])
        if axes is None:
            return None
    else:
        axes = reduce.attrs.get("axes")
    if axes is None or len(np.atleast_1d(axes)) == 0:
        if reduce.attrs.get("noop_with_empty_axes", 0):
            return None
        axes = range(rank)
    try:
        folded = sorted({dims.normalize_axis(int(a), rank) for a in np.atleast_1d(np.asarray(list(axes)))})
    except Exception:  # noqa: BLE001 - an out-of-range axis: not our pattern, the layer will report it
        return None
    k = len(folded)
    return k if k and folded == list(range(rank - k, rank)) else None


def _affine(g: Graph, name: str, layers: list):
    """Follow an optional Mul by a constant gamma, then an optional Add of a constant beta.

    Returns (final output, (gamma weight name or None, beta weight name or None)); matched
    layers are appended to `layers`.
    """
    gamma = beta = None
    for op in ("Mul", "Add"):
        reader = g.only_reader(name)
        split = g.split_const(reader) if reader is not None and reader.op == op else None
        if split is None or split[0] != name:
            continue
        layers.append(reader)
        name = reader.output
        gamma, beta = (split[1], beta) if op == "Mul" else (gamma, split[1])
    return name, (gamma, beta)


def _as_normalized(value: np.ndarray, norm: tuple) -> np.ndarray | None:
    """gamma or beta with the normalized shape, when it varies over the normalized axes only."""
    k = len(norm)
    if value.ndim > k:
        if any(d != 1 for d in value.shape[:value.ndim - k]):
            return None
        value = value.reshape(value.shape[value.ndim - k:])
    if tuple(value.shape) == tuple(norm):
        return value
    if not dims.is_static(norm):
        return None
    try:
        return np.broadcast_to(value, norm).copy()
    except ValueError:
        return None
