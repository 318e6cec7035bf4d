"""NumPy kernels of Softmax, LogSoftmax and Hardmax, with the semantics of the node's opset.

From opset 13 they normalize along one axis; before, over the input seen as 2-D
[prod(shape[:axis]), prod(shape[axis:])]. The parser passes the opset as `_opset`.
"""
from __future__ import annotations

import numpy as np

from ....ir.opdefs.softmax import NEW_SEMANTICS_OPSET, softmax_axis
from ..registry import kernel
from .elementwise import widen


def _softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis):
    """log(softmax(x)) along `axis`, computed stably (shifted by the maximum)."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _hardmax(x, axis):
    """1 at the first maximum along `axis`, 0 elsewhere."""
    first = np.expand_dims(np.argmax(x, axis=axis), axis)
    out = np.zeros_like(x)
    np.put_along_axis(out, first, 1, axis=axis)
    return out


def _normalizer(fn):
    """Kernel applying fn along the softmax axis, after flattening to 2-D for opsets < 13."""

    def run(x, *, axis=None, _opset=NEW_SEMANTICS_OPSET):
        a = softmax_axis(axis, _opset, x.ndim)
        (w,) = widen(x)
        if _opset < NEW_SEMANTICS_OPSET:
            w, a = w.reshape(int(np.prod(x.shape[:a])), -1), 1
        with np.errstate(all="ignore"):
            out = fn(w, a)
        return out.reshape(x.shape).astype(x.dtype, copy=False)

    return run


kernel("Softmax")(_normalizer(_softmax))
kernel("LogSoftmax")(_normalizer(log_softmax))
kernel("Hardmax")(_normalizer(_hardmax))
