"""Odds and ends: Dropout (inference), Det, Col2Im."""
from __future__ import annotations

import numpy as np

from .. import dims
from ...errors import ShapeError
from ..ops import Info, op
from ..rules import static_ints, unknown


@op("Dropout", since=13, seed=None, ratio=0.5, is_test=0, consumed_inputs=None)
def dropout(data, ratio_input=None, training_mode=None, *, seed, ratio, is_test, consumed_inputs):
    """(output, bool mask), both of data's shape; at inference the output is data itself."""
    inference = training_mode is None or (training_mode.value is not None and not np.any(training_mode.value))
    return Info(data.dtype, data.shape, data.value if inference else None), Info("bool", data.shape)


@op("Det", since=11)
def det(x):
    """Determinants of the trailing square matrices: shape[:-2]."""
    if x.shape is None:
        return Info(x.dtype, None)
    if len(x.shape) < 2:
        raise ShapeError(f"Det needs matrices (rank >= 2), got shape {x.shape}")
    return Info(x.dtype, x.shape[:-2])


@op("Col2Im", since=18, dilations=None, pads=None, strides=None)
def col2im(x, image_shape, block_shape, *, dilations, pads, strides):
    """(N, C·prod(block) , L) columns -> (N, C, *image_shape)."""
    image, block = static_ints(image_shape), static_ints(block_shape)
    if x.shape is None or block is None:
        n_spatial = image_shape.shape[0] if image_shape.shape and isinstance(image_shape.shape[0], int) else None
        return unknown(x.dtype, None if n_spatial is None else 2 + n_spatial, "col2im")
    n, c = x.shape[0], x.shape[1]
    size = 1
    for b in block:
        size *= b
    if isinstance(c, int) and c % size:
        raise ShapeError(f"Col2Im: dim 1 ({c}) is not divisible by the block size {size}")
    spatial = tuple(image) if image is not None else tuple(dims.fresh("col2im") for _ in block)
    return Info(x.dtype, (n, dims.floordiv(c, size)) + spatial)
