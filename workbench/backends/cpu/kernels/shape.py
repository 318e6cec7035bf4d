"""Shape plumbing kernels: Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Expand, Identity.

Reshape-like kernels return NumPy views (no copy), as an engine aliases such layers' buffers.
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import kernel


@kernel("Shape")
def shape(data, *, start=0, end=None):
    # Python slicing clamps start/end into [0, rank] exactly as ONNX asks
    return np.array(data.shape[start:end], dtype=np.int64)


@kernel("Size")
def size(data):
    return np.array(data.size, dtype=np.int64)


@kernel("Reshape")
def reshape(data, shape_input=None, *, allowzero=0, shape=None, consumed_inputs=None):
    target = [int(d) for d in (shape_input if shape_input is not None else shape)]
    if not allowzero:
        target = [data.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return data.reshape(target)


@kernel("Flatten")
def flatten(x, *, axis=1):
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _axes(axes_input, axes_attr):
    """Axes from the input (opset >= 13) or the attribute (older)."""
    axes = axes_input if axes_input is not None else axes_attr
    return None if axes is None else tuple(int(a) for a in np.ravel(axes))


@kernel("Squeeze")
def squeeze(data, axes_input=None, *, axes=None):
    return np.squeeze(data, axis=_axes(axes_input, axes))


@kernel("Unsqueeze")
def unsqueeze(data, axes_input=None, *, axes=None):
    return np.expand_dims(data, axis=_axes(axes_input, axes))


@kernel("Expand")
def expand(x, shape):
    out_shape = np.broadcast_shapes(x.shape, tuple(int(d) for d in shape))
    # a real array, not a read-only broadcast view: consumers may write into their inputs' buffers
    return np.array(np.broadcast_to(x, out_shape))


@kernel("Identity")
def identity(x):
    return x
