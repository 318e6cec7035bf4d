"""Shape rules of Softmax, LogSoftmax and Hardmax.

Their meaning changed at opset 13 (one axis, default -1; before: the input is seen as 2-D
[prod(shape[:axis]), prod(shape[axis:])], default axis 1), so the parser passes the node's
opset as the hidden attribute `_opset`, and `axis` defaults to None ("the opset's default").
"""
from __future__ import annotations

from .. import dims
from ..ops import Info, op
from ..rules import same_as

NEW_SEMANTICS_OPSET = 13


def softmax_axis(axis, opset: int, rank: int) -> int:
    """The normalized axis: the given one, else -1 (opset >= 13) or 1 (before)."""
    if axis is None:
        axis = -1 if opset >= NEW_SEMANTICS_OPSET else 1
    return dims.normalize_axis(axis, rank, "softmax axis")


def _softmax_rule(x: Info, *, axis, _opset) -> Info:
    """Normalizes along one axis (or the flattened trailing dims before opset 13): output like x."""
    if x.shape is not None:
        softmax_axis(axis, _opset, len(x.shape))  # validates the axis
    return same_as(x)


for _name in ("Softmax", "LogSoftmax", "Hardmax"):
    op(_name, since=1, axis=None, _opset=NEW_SEMANTICS_OPSET)(_softmax_rule)
