"""Dropout (inference, and seeded training like onnx.reference), Det, Col2Im."""
from __future__ import annotations

import itertools

import numpy as np

from ..registry import kernel


@kernel("Dropout")
def dropout(data, ratio_input=None, training_mode=None, *, seed=None, ratio=0.5, is_test=0,
            consumed_inputs=None):
    rate = float(ratio_input) if ratio_input is not None else float(ratio)
    if training_mode is None or not bool(training_mode) or rate == 0:
        # a read-only all-true view costs nothing when the mask output is unused
        return data, np.broadcast_to(np.True_, data.shape)
    keep = np.random.RandomState(seed).uniform(0, 1.0, data.shape) >= rate
    return keep * data * (1.0 / (1.0 - rate)), keep


@kernel("Det")
def det(x):
    # LAPACK has no float16/bfloat16 routine: compute in float32 and round back
    wide = x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)
    return np.asarray(np.linalg.det(wide)).astype(x.dtype)


@kernel("Col2Im")
def col2im(x, image_shape, block_shape, *, dilations=None, pads=None, strides=None):
    image, block = [int(d) for d in image_shape], [int(d) for d in block_shape]
    nd = len(image)
    dilations, strides = dilations or [1] * nd, strides or [1] * nd
    pads = pads or [0] * (2 * nd)
    padded = [image[i] + pads[i] + pads[i + nd] for i in range(nd)]
    blocks = [(padded[i] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1 for i in range(nd)]
    n, channels = x.shape[0], x.shape[1] // int(np.prod(block))
    cols = x.reshape(n, channels, *block, *blocks)
    out = np.zeros((n, channels, *padded), dtype=x.dtype)
    for tap in itertools.product(*(range(b) for b in block)):  # one strided add per kernel tap
        where = tuple(slice(t * d, t * d + (nb - 1) * s + 1, s)
                      for t, d, s, nb in zip(tap, dilations, strides, blocks))
        out[(slice(None), slice(None)) + where] += cols[(slice(None), slice(None)) + tap]
    crop = tuple(slice(pads[i], pads[i] + image[i]) for i in range(nd))
    return out[(slice(None), slice(None)) + crop]
