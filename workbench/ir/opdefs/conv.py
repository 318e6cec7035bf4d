"""Convolutions: Conv, ConvTranspose, ConvInteger, QLinearConv, DeformConv."""
from __future__ import annotations

from .. import dims, windows
from ..ops import Info, op
from ...errors import ShapeError

_CONV_ATTRS = dict(auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None)


def _kernel_dims(x: Info, w: Info, kernel_shape, what: str) -> tuple:
    """kernel_shape from the attribute, else from W's spatial dims (which must be known)."""
    if kernel_shape:
        return tuple(kernel_shape)
    if w.shape is None or not all(isinstance(d, int) for d in w.shape[2:]):
        raise ShapeError(f"{what}: kernel_shape is not given and W's spatial dims {w.shape} are not "
                         f"known; give kernel_shape or a constant W")
    return tuple(w.shape[2:])


def _check_channels(x: Info, w: Info, group: int, transpose: bool, what: str) -> None:
    """Input channels must match W (C == W.shape[1]*group, or W.shape[0] when transposed)."""
    if len(x.shape) != len(w.shape):
        raise ShapeError(f"{what}: X has rank {len(x.shape)} but W has rank {len(w.shape)}; "
                         f"they must be equal (N,C,spatial... and M,C/group,kernel...)")
    c_in = x.shape[1]
    expected = w.shape[0] if transpose else (w.shape[1] * group if isinstance(w.shape[1], int) else None)
    if isinstance(c_in, int) and isinstance(expected, int) and c_in != expected:
        raise ShapeError(f"{what}: X has {c_in} channels but W of shape {w.shape} with group={group} "
                         f"expects {expected}")
    if not transpose and isinstance(w.shape[0], int) and w.shape[0] % group:
        raise ShapeError(f"{what}: W has {w.shape[0]} output channels, not divisible by group={group}")


def conv_shape(x: Info, w: Info, dtype: str, *, auto_pad, dilations, group, kernel_shape, pads,
               strides, what: str = "Conv") -> Info:
    """Output Info of a (possibly quantized) convolution: (N, M, *out_spatial)."""
    if x.shape is None or w.shape is None:
        return Info(dtype, None)
    _check_channels(x, w, group, False, what)
    kernel = _kernel_dims(x, w, kernel_shape, what)
    win = windows.window(kernel, strides, dilations, pads, what=what)
    spatial = windows.out_dims(x.shape[2:], win, auto_pad, 0, what)
    return Info(dtype, (x.shape[0], w.shape[0], *spatial))


@op("Conv", since=11, **_CONV_ATTRS)
def conv(x, w, b=None, **attrs):
    """Y = X (*) W + B."""
    return conv_shape(x, w, x.dtype, **attrs)


@op("DeformConv", since=19, dilations=None, group=1, kernel_shape=None, offset_group=1, pads=None,
    strides=None)
def deform_conv(x, w, offset, b=None, mask=None, *, offset_group, **attrs):
    """Y = X (*) W sampled at offset (and masked) kernel positions, + B: like Conv's output."""
    return conv_shape(x, w, x.dtype, auto_pad="NOTSET", what="DeformConv", **attrs)


@op("ConvInteger", since=10, **_CONV_ATTRS)
def conv_integer(x, w, x_zero_point=None, w_zero_point=None, **attrs):
    """Integer convolution with zero points; int32 output."""
    return conv_shape(x, w, "int32", what="ConvInteger", **attrs)


@op("QLinearConv", since=10, **_CONV_ATTRS)
def qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, b=None,
                 **attrs):
    """Quantized convolution; the output has y_zero_point's dtype."""
    dtype = y_zero_point.dtype if y_zero_point is not None else x.dtype
    return conv_shape(x, w, dtype, what="QLinearConv", **attrs)


@op("ConvTranspose", since=11, output_padding=None, output_shape=None, **_CONV_ATTRS)
def conv_transpose(x, w, b=None, *, auto_pad, dilations, group, kernel_shape, output_padding,
                   output_shape, pads, strides):
    """Transposed convolution: (N, W.shape[1]*group, *out_spatial)."""
    if x.shape is None or w.shape is None:
        return Info(x.dtype, None)
    what = "ConvTranspose"
    _check_channels(x, w, group, True, what)
    win = windows.window(_kernel_dims(x, w, kernel_shape, what), strides, dilations, pads, what=what)
    spatial, _ = windows.conv_transpose_geometry(x.shape[2:], win, auto_pad, output_padding,
                                                 output_shape, what)
    m = dims.mul(w.shape[1], group)
    return Info(x.dtype, (x.shape[0], m, *spatial))
