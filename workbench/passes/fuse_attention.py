"""Multi-head attention written out in ONNX ops becomes one FusedAttention layer (domain "workbench").

    q = Transpose(Reshape(Q, (B, S, H, D)), [0, 2, 1, 3])          the head split of each projection
    k = Transpose(Reshape(K, (B, S, H, D)), [0, 2, 3, 1])          (K already transposed for Q Kᵀ)
    v = Transpose(Reshape(V, (B, S, H, D)), [0, 2, 1, 3])
    p = Softmax(MatMul(q, k) [Div|Mul c] [+ mask], axis=-1)
    out = Reshape(Transpose(MatMul(p, v), [0, 2, 1, 3]), (B, S, H*D))
        -> FusedAttention(Q, K, V, mask, num_heads=H, scale=c, scale_op="Div"|"Mul")

A chain of Transposes counts by its composed permutation (K's [0,2,3,1] may be [0,2,1,3] then
[0,1,3,2]). Every intermediate must be private to the pattern. Backends then run attention as one
kernel (cuDNN SDPA on the GPU reads Q, K and V straight from the projections, no head transposes).
"""
from __future__ import annotations

from ..ir import Layer
from ..ir.opdefs.fused import DOMAIN
from .match import Graph, Rewriter, trim_inputs

SPLIT = (0, 2, 1, 3)    # (B, S, H, D) -> (B, H, S, D)
SPLIT_T = (0, 2, 3, 1)  # (B, S, H, D) -> (B, H, D, S)


def fuse_attention(net):
    """Replace written-out multi-head attention by FusedAttention layers; returns (new net, changed).

    >>> net, changed = fuse_attention(net)
    """
    rw = Rewriter(net)
    g = rw.graph
    for softmax in g.layers_of("Softmax"):
        found = _match(g, softmax)
        if found is not None and rw.available(*found[2]):
            inputs, out, layers, attrs = found
            rw.replace(layers, Layer(layers[-1].name, "FusedAttention", trim_inputs(inputs), [out], attrs, DOMAIN))
    return rw.finish()


def _match(g: Graph, softmax):
    """(inputs [Q, K, V, mask], output, matched layers in order, attributes) around a Softmax, or None."""
    if not _last_axis(g, softmax):
        return None
    pv = g.only_reader(softmax.outputs[0])
    if pv is None or pv.op != "MatMul" or pv.domain or pv.inputs[0] != softmax.outputs[0]:
        return None
    layers = [softmax, pv]
    scores, mask = _mask(g, softmax.inputs[0], layers)
    scores, scale, scale_op = _scale(g, scores, layers)
    qk = g.producer(scores, "MatMul")
    if qk is None:
        return None
    layers.append(qk)
    heads = [_split(g, qk.inputs[0], SPLIT, layers), _split(g, qk.inputs[1], SPLIT_T, layers),
             _split(g, pv.inputs[1], SPLIT, layers)]
    merged = _merge(g, pv.outputs[0], layers)
    if None in heads or merged is None:
        return None
    (q, hq, dq), (k, hk, dk), (v, hv, dv) = heads
    out, ho, do = merged
    if not (hq == hk == hv == ho) or dq != dk or dv != do:
        return None
    if not _same_batch_and_length(g, q, k, v, out):
        return None
    layers = g.in_order(layers)
    if not all(g.private_to(o, *layers) for layer in layers for o in layer.outputs if o != out):
        return None
    return [q, k, v, mask or ""], out, layers, {"num_heads": int(hq), "scale": scale, "scale_op": scale_op}


def _last_axis(g: Graph, softmax) -> bool:
    shape = g.shape(softmax.inputs[0])
    axis = softmax.attrs.get("axis", -1)
    return shape is not None and len(shape) == 4 and axis in (-1, 3)


def _mask(g: Graph, name: str, layers: list) -> tuple:
    """(scores, mask or None): `name` = Add(scores, mask) in either order, when the Add does not broadcast."""
    add = g.producer(name, "Add")
    if add is None or len(add.inputs) != 2:
        return name, None
    for scores, mask in (add.inputs, add.inputs[::-1]):
        inner = g.producer(scores, ("MatMul", "Div", "Mul"))
        if inner is not None and g.shape(scores) == g.shape(add.outputs[0]) and scores != mask:
            mask_shape = g.shape(mask)
            if mask_shape is not None and len(mask_shape) <= 4:
                layers.append(add)
                return scores, mask
    return name, None


def _scale(g: Graph, name: str, layers: list) -> tuple:
    """(scores, scale constant or None, "Div"|"Mul"): `name` = scores / c or scores * c (c a scalar)."""
    layer = g.producer(name, ("Div", "Mul"))
    split = g.split_const(layer) if layer is not None else None
    if split is None or (layer.op == "Div" and layer.inputs[1] != split[1]):
        return name, None, "Mul"
    value = g.scalar(split[1])
    if value is None or g.shape(name) != g.shape(split[0]):
        return name, None, "Mul"
    layers.append(layer)
    return split[0], value, layer.op


def _transposes(g: Graph, name: str) -> tuple:
    """(tensor before a chain of Transposes ending in `name`, composed permutation, the chain)."""
    perm, chain = None, []
    layer = g.producer(name, "Transpose")
    while layer is not None and layer.attrs.get("perm") is not None:
        p = tuple(int(i) for i in layer.attrs["perm"])
        perm = p if perm is None else tuple(p[i] for i in perm)
        chain.append(layer)
        name = layer.inputs[0]
        layer = g.producer(name, "Transpose")
    return name, perm, chain


def _split(g: Graph, name: str, want: tuple, layers: list):
    """(3-D source, heads, head dim) when `name` is the source's heads split and permuted by `want`."""
    source, perm, chain = _transposes(g, name)
    reshape = g.producer(source, "Reshape")
    if perm != want or reshape is None:
        return None
    before, after = g.shape(reshape.inputs[0]), g.shape(source)
    if before is None or after is None or len(before) != 3 or len(after) != 4:
        return None
    h, d = after[2], after[3]
    if not (isinstance(h, int) and isinstance(d, int) and before[2] == h * d and tuple(before[:2]) == tuple(after[:2])):
        return None
    layers.extend([*chain, reshape])
    return reshape.inputs[0], h, d


def _merge(g: Graph, name: str, layers: list):
    """(3-D output, heads, head dim) when `name` (B, H, S, D) is transposed back and its heads merged."""
    transpose = g.only_reader(name)
    if transpose is None or transpose.op != "Transpose" or tuple(transpose.attrs.get("perm") or ()) != SPLIT:
        return None
    reshape = g.only_reader(transpose.outputs[0])
    if reshape is None or reshape.op != "Reshape" or reshape.inputs[0] != transpose.outputs[0]:
        return None
    before, after = g.shape(name), g.shape(reshape.outputs[0])
    if before is None or after is None or len(before) != 4 or len(after) != 3:
        return None
    h, d = before[1], before[3]
    if not (isinstance(h, int) and isinstance(d, int) and after[2] == h * d
            and tuple(after[:2]) == (before[0], before[2])):
        return None
    layers.extend([transpose, reshape])
    return reshape.outputs[0], h, d


def _same_batch_and_length(g: Graph, q: str, k: str, v: str, out: str) -> bool:
    """Q and the output agree on (B, Sq); K and V on (B, Skv)."""
    sq, sk, sv, so = (g.shape(n) for n in (q, k, v, out))
    return None not in (sq, sk, sv, so) and sq[0] == sk[0] == sv[0] == so[0] and sq[1] == so[1] and sk[1] == sv[1]
