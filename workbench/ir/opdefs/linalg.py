"""Matrix products: Gemm, MatMul, MatMulInteger, QLinearMatMul, Einsum."""
from __future__ import annotations

import re

from .. import dims
from ..ops import Info, op
from ...errors import ShapeError


@op("Gemm", since=13, alpha=1.0, beta=1.0, transA=0, transB=0)
def gemm(a, b, c=None, *, alpha, beta, transA, transB):
    """Y (M, N) = alpha * A' B' + beta * C."""
    if a.shape is None or b.shape is None:
        return Info(a.dtype, (dims.fresh("m"), dims.fresh("n")))
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise ShapeError(f"Gemm: A {a.shape} and B {b.shape} must both be 2-D")
    m, ka = a.shape[::-1] if transA else a.shape
    kb, n = b.shape[::-1] if transB else b.shape
    _check_inner(ka, kb, "Gemm", a.shape, b.shape)
    return Info(a.dtype, (m, n))


def _check_inner(ka, kb, what, sa, sb):
    if isinstance(ka, int) and isinstance(kb, int) and ka != kb:
        raise ShapeError(f"{what}: inner dims differ: A {sa} has {ka}, B {sb} has {kb}")


def matmul_shape(a: Info, b: Info, dtype: str, what: str = "MatMul") -> Info:
    """numpy.matmul shape semantics: 1-D operands promoted then squeezed, batch dims broadcast."""
    if a.shape is None or b.shape is None:
        return Info(dtype, None)
    if not a.shape or not b.shape:
        raise ShapeError(f"{what}: operands must be at least 1-D, got {a.shape} and {b.shape}")
    sa = (1, *a.shape) if len(a.shape) == 1 else a.shape
    sb = (*b.shape, 1) if len(b.shape) == 1 else b.shape
    _check_inner(sa[-1], sb[-2], what, a.shape, b.shape)
    batch = dims.broadcast(sa[:-2], sb[:-2])
    out = batch + ((sa[-2],) if len(a.shape) > 1 else ()) + ((sb[-1],) if len(b.shape) > 1 else ())
    return Info(dtype, out)


@op("MatMul", since=13)
def matmul(a, b):
    """numpy.matmul shapes, A's dtype."""
    return matmul_shape(a, b, a.dtype)


@op("MatMulInteger", since=10)
def matmul_integer(a, b, a_zero_point=None, b_zero_point=None):
    """numpy.matmul shapes, int32."""
    return matmul_shape(a, b, "int32", "MatMulInteger")


@op("QLinearMatMul", since=21)
def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    """numpy.matmul shapes, y_zero_point's dtype."""
    return matmul_shape(a, b, y_zero_point.dtype, "QLinearMatMul")


def parse_einsum(equation: str, ranks: list) -> tuple:
    """(input terms, output term) with '...' replaced by '.' per broadcast dim, right-aligned.

    >>> parse_einsum("bij,bjk->bik", [3, 3])  # (['bij', 'bjk'], 'bik')
    """
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ShapeError(f"Einsum: equation {equation!r} has {len(terms)} operands, got {len(ranks)} inputs")
    if not all(re.fullmatch(r"[A-Za-z]*(\.\.\.)?[A-Za-z]*", t) for t in terms + [rhs]):
        raise ShapeError(f"Einsum: cannot parse equation {equation!r}")
    n_ell = max((r - len(t) + 3 for t, r in zip(terms, ranks) if "..." in t), default=0)
    if not arrow:
        letters = "".join(terms).replace(".", "")
        rhs = ("..." if n_ell or any("..." in t for t in terms) else "") + \
            "".join(sorted(ch for ch in set(letters) if letters.count(ch) == 1))
    return terms, rhs, n_ell


@op("Einsum", since=12, equation=None)
def einsum(*inputs, equation):
    """Output dims from the letters' sizes; '...' dims broadcast across operands."""
    if equation is None:
        raise ShapeError("Einsum: attribute equation is required")
    if any(x.shape is None for x in inputs):
        return Info(inputs[0].dtype, None)
    terms, rhs, n_ell = parse_einsum(equation, [len(x.shape) for x in inputs])
    sizes, ell_shapes = {}, []
    for term, x in zip(terms, inputs):
        shape = list(x.shape)
        if "..." in term:
            head, tail = term.split("...")
            k = len(shape) - len(head) - len(tail)
            ell_shapes.append(tuple(shape[len(head):len(head) + k]))
            shape = shape[:len(head)] + shape[len(head) + k:]
            term = head + tail
        if len(term) != len(shape):
            raise ShapeError(f"Einsum: term {term!r} does not fit input of shape {x.shape}")
        for ch, d in zip(term, shape):
            if ch not in sizes or (not isinstance(sizes[ch], int) and isinstance(d, int)):
                sizes[ch] = d
    head, _, tail = rhs.partition("...")
    ell = dims.broadcast(*ell_shapes) if "..." in rhs else ()
    if "..." in rhs and len(ell) < n_ell:
        ell = (1,) * (n_ell - len(ell)) + ell
    try:
        out = tuple(sizes[ch] for ch in head) + tuple(ell) + tuple(sizes[ch] for ch in tail)
    except KeyError as e:
        raise ShapeError(f"Einsum: output letter {e} of {equation!r} appears in no input") from None
    return Info(inputs[0].dtype, out)
