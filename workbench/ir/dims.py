"""Symbolic dimensions: a Dim is an int (known) or a str (a name such as "batch", or an expression).

Shape rules combine dims with these helpers so that a dynamic batch flows through a whole network
as "batch", "batch*3", ... while static dims stay ints.
"""
from __future__ import annotations

import ast
import itertools
import math
import operator
from typing import Union

Dim = Union[int, str]
Shape = tuple  # tuple[Dim, ...]

_fresh = itertools.count()


def fresh(prefix: str = "d") -> str:
    """A new unknown dim, for shapes a rule cannot decide (e.g. a data-dependent size)."""
    return f"{prefix}_{next(_fresh)}"


def is_static(shape) -> bool:
    """True when every dim of `shape` is a known int.  >>> is_static((1, 3))"""
    return shape is not None and all(isinstance(d, (int,)) for d in shape)


def _wrap(d: Dim) -> str:
    s = str(d)
    return s if s.isidentifier() or s.lstrip("-").isdigit() else f"({s})"


def add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if b == 0:
        return a
    if a == 0:
        return b
    if isinstance(b, int) and b < 0:
        return sub(a, -b)
    return f"{_wrap(a)}+{_wrap(b)}"


def sub(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    if b == 0:
        return a
    if isinstance(b, int) and b < 0:
        return add(a, -b)
    return f"{_wrap(a)}-{_wrap(b)}"


def mul(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    if a == 1:
        return b
    if b == 1:
        return a
    return f"{_wrap(a)}*{_wrap(b)}"


def floordiv(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    if b == 1:
        return a
    return f"{_wrap(a)}//{_wrap(b)}"


def ceildiv(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return -(-a // b)
    if b == 1:
        return a
    return f"ceil({_wrap(a)}/{_wrap(b)})"


def prod(dims) -> Dim:
    """Product of dims; symbolic ones are kept as a flat product with one int factor last.

    >>> prod(("batch", 3, "seq*4"))  # 'batch*seq*12'
    """
    coefficient, names = 1, []
    for d in dims:
        for f in factors(d):
            if isinstance(f, int):
                coefficient *= f
            else:
                names.append(f)
    if coefficient == 0 or not names:
        return coefficient
    return "*".join([_wrap(n) for n in names] + ([str(coefficient)] if coefficient != 1 else []))


def factors(d: Dim) -> list:
    """The multiplicative factors of a dim: "b*seq*4" -> ["b", "seq", 4]; other expressions stay whole."""
    if isinstance(d, int):
        return [d]
    parts = d.split("*")
    if "**" in d or not all(p.isidentifier() or p.isdigit() for p in parts):
        return [d]
    return [int(p) if p.isdigit() else p for p in parts]


def broadcast(*shapes) -> tuple:
    """Numpy-style broadcast of shapes whose dims may be symbolic.

    >>> broadcast(("batch", 1, 4), (3, 1))  # ('batch', 3, 4)
    """
    from ..errors import ShapeError

    rank = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        known = {d for d in dims if d != 1}
        if not known:
            out.append(1)
        elif len(known) == 1:
            out.append(known.pop())
        else:
            ints = {d for d in known if isinstance(d, int)}
            if len(ints) > 1:
                raise ShapeError(f"shapes {list(shapes)} cannot be broadcast together (dims {sorted(ints)})")
            # a symbolic dim against a known one must equal it at run time
            out.append(ints.pop() if ints else sorted(map(str, known))[0])
    return tuple(out)


def substitute(shape, bindings: dict) -> tuple:
    """Replace named dims by the ints bound to them; expressions are evaluated when all names are bound."""
    return tuple(evaluate(d, bindings) for d in shape)


def evaluate(d: Dim, bindings: dict) -> Dim:
    """The int value of `d` under `bindings` (name -> int), or `d` itself while a name is unbound.

    Expressions are parsed, never eval'ed: dim names come from untrusted model files.
    """
    if isinstance(d, int):
        return d
    if d in bindings:
        return int(bindings[d])
    if len(d) > MAX_EXPRESSION:
        return d  # no real dim is this long; parsing absurd input would only cost time and memory
    try:
        value = _eval_node(ast.parse(d, mode="eval").body, bindings)
        return int(value)
    # MemoryError: the parser's own stack overflowing on deep nesting (e.g. "------1"), not the machine's
    except (SyntaxError, KeyError, ValueError, TypeError, ZeroDivisionError, RecursionError, OverflowError,
            MemoryError):
        return d


MAX_EXPRESSION = 10_000  # characters

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Div: operator.truediv}


def _eval_node(node, bindings):
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        return int(bindings[node.id])
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval_node(node.operand, bindings)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval_node(node.left, bindings), _eval_node(node.right, bindings))
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ceil" and len(node.args) == 1:
        return math.ceil(_eval_node(node.args[0], bindings))
    raise ValueError("not a dim expression")


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    from ..errors import ShapeError

    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def quotient(numerator, denominator) -> Dim:
    """prod(numerator) / prod(denominator), cancelling equal symbolic factors first.

    Used for Reshape's -1, where "batch" appears on both sides:
    >>> quotient(("batch", 128, 768), ("batch", 768))  # 128
    """
    from ..errors import ShapeError

    num = [f for d in numerator for f in factors(d)]
    den = [f for d in denominator for f in factors(d)]
    for f in [f for f in den if not isinstance(f, int)]:
        if f in num:
            num.remove(f)
            den.remove(f)
    num_int = math.prod(f for f in num if isinstance(f, int))
    den_int = math.prod(f for f in den if isinstance(f, int))
    num_sym = [f for f in num if not isinstance(f, int)]
    den_sym = [f for f in den if not isinstance(f, int)]
    if not num_sym and not den_sym:
        if den_int == 0 or num_int % den_int:
            raise ShapeError(f"{num_int} elements cannot be split into parts of {den_int}")
        return num_int // den_int
    if den_int and num_int % den_int == 0:
        num_int, den_int = num_int // den_int, 1
    return floordiv(prod([*num_sym, num_int]), prod([*den_sym, den_int]))
