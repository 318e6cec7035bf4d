"""Sliding-window geometry shared by Conv, ConvTranspose and the pooling ops.

One source of truth for output sizes and padding, used both by shape rules (where dims may be
symbolic, e.g. "H") and by the CPU kernels (where they are ints):

    >>> conv_out_dims((224, 224), Window((7, 7), (2, 2), (1, 1), (3, 3, 3, 3)))
    (112, 112)
"""
from __future__ import annotations

from typing import NamedTuple

from . import dims
from ..errors import ShapeError


class Window(NamedTuple):
    """A sliding window over the spatial axes: kernel, strides, dilations and pads (begins, ends)."""

    kernel: tuple
    strides: tuple
    dilations: tuple
    pads: tuple  # (b0, b1, ..., e0, e1, ...) as in ONNX; () when auto_pad decides

    def extent(self, i: int) -> int:
        """Span of the dilated kernel along spatial axis i."""
        return (self.kernel[i] - 1) * self.dilations[i] + 1


def window(kernel, strides=None, dilations=None, pads=None, *, what: str = "op") -> Window:
    """A Window with ONNX defaults filled in (stride 1, dilation 1, no padding)."""
    n = len(kernel)
    strides = tuple(strides) if strides else (1,) * n
    dilations = tuple(dilations) if dilations else (1,) * n
    pads = tuple(pads) if pads else (0,) * (2 * n)
    if len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
        raise ShapeError(f"{what}: kernel_shape {list(kernel)} has {n} spatial dims but strides "
                         f"{list(strides)}, dilations {list(dilations)}, pads {list(pads)} do not match; "
                         f"give {n} strides/dilations and {2 * n} pads")
    if min(strides) < 1 or min(dilations) < 1 or min(kernel) < 1:
        raise ShapeError(f"{what}: kernel_shape, strides and dilations must be >= 1 "
                         f"(got {list(kernel)}, {list(strides)}, {list(dilations)})")
    return Window(tuple(int(k) for k in kernel), tuple(int(s) for s in strides),
                  tuple(int(d) for d in dilations), tuple(int(p) for p in pads))


def _offset(d, c: int):
    """d + c for a possibly symbolic d, written so dims.evaluate can parse it."""
    return dims.add(d, c) if c >= 0 else dims.sub(d, -c)


def _ceil_div(d, stride: int):
    """ceil(d / stride); parenthesizes an expression (dims.ceildiv does not)."""
    if not isinstance(d, int) and not str(d).isidentifier():
        d = f"({d})"
    return dims.ceildiv(d, stride)


def _floor_out(size, stride: int, const: int):
    """floor((size + const) / stride) + 1, symbolic-friendly."""
    if stride == 1:
        return _offset(size, const + 1)
    return _offset(dims.floordiv(_offset(size, const), stride), 1)


def same_out_dim(size, stride: int):
    """Output size under auto_pad SAME_UPPER/SAME_LOWER: ceil(size / stride)."""
    return _ceil_div(size, stride)


def auto_pad_pads(auto_pad: str, in_dims, win: Window) -> tuple:
    """Explicit pads for auto_pad (ints only: the split depends on the input size)."""
    n = len(win.kernel)
    if auto_pad in ("VALID",):
        return (0,) * (2 * n)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return win.pads
    begins, ends = [], []
    for i, size in enumerate(in_dims):
        out = -(-size // win.strides[i])
        total = max(0, (out - 1) * win.strides[i] + win.extent(i) - size)
        small, big = total // 2, total - total // 2
        # SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the beginning
        begins.append(small if auto_pad == "SAME_UPPER" else big)
        ends.append(big if auto_pad == "SAME_UPPER" else small)
    return tuple(begins + ends)


def check_auto_pad(auto_pad: str, what: str) -> None:
    """Reject an auto_pad value ONNX does not define."""
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise ShapeError(f"{what}: auto_pad {auto_pad!r} is not one of NOTSET, SAME_UPPER, "
                         f"SAME_LOWER, VALID")


def out_dims(in_dims, win: Window, auto_pad: str = "NOTSET", ceil_mode: int = 0,
             what: str = "op") -> tuple:
    """Spatial output dims of a convolution or pooling window (dims may be symbolic).

    ceil_mode follows ONNX/PyTorch: round up, but drop a last window that would start in the
    end padding.
    """
    check_auto_pad(auto_pad, what)
    out = []
    n = len(win.kernel)
    for i, size in enumerate(in_dims):
        s, ext = win.strides[i], win.extent(i)
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out.append(same_out_dim(size, s))
            continue
        pb, pe = (0, 0) if auto_pad == "VALID" else (win.pads[i], win.pads[n + i])
        const = pb + pe - ext
        if isinstance(size, int) and size + const < 0:
            raise ShapeError(f"{what}: spatial dim {i} of size {size} (padded {size + pb + pe}) is "
                             f"smaller than the kernel extent {ext}")
        if not ceil_mode:
            out.append(_floor_out(size, s, const))
        elif isinstance(size, int):
            o = -(-(size + const) // s) + 1
            if (o - 1) * s >= size + pb:  # the last window would start in the end padding
                o -= 1
            out.append(o)
        elif pe + s <= ext:  # the correction above can never apply: ceil is exact
            out.append(_offset(_ceil_div(_offset(size, const), s), 1))
        else:
            out.append(dims.fresh("pool"))
    return tuple(out)


def unpool_dims(in_dims, win: Window) -> tuple:
    """Spatial dims MaxUnpool infers: (size - 1) * stride - (pad_begin + pad_end) + kernel, per axis."""
    n = len(win.kernel)
    return tuple(_offset(dims.mul(_offset(size, -1), win.strides[i]), win.kernel[i] - win.pads[i] - win.pads[n + i])
                 for i, size in enumerate(in_dims))


def resolve(in_dims, win: Window, auto_pad: str, ceil_mode: int = 0, what: str = "op"):
    """(output dims, explicit pads) for int input dims: what a kernel needs."""
    pads = auto_pad_pads(auto_pad, in_dims, win)
    out = out_dims(in_dims, win._replace(pads=pads), "NOTSET", ceil_mode, what)
    return out, pads


def conv_transpose_geometry(in_dims, win: Window, auto_pad: str, output_padding=None,
                            output_shape=None, what: str = "ConvTranspose"):
    """(output dims, pads) of ConvTranspose per the ONNX spec; dims may be symbolic.

    The "full" output is stride*(in-1) + output_padding + extent; pads crop it. When
    output_shape is given (or auto_pad is SAME_*), the pads are derived from it instead.
    """
    check_auto_pad(auto_pad, what)
    n = len(win.kernel)
    opad = tuple(output_padding) if output_padding else (0,) * n
    if len(opad) != n:
        raise ShapeError(f"{what}: output_padding {list(opad)} must have {n} values")

    def full(i, d, cropped=0):  # stride*(in-1) + output_padding + extent - cropped
        return _offset(dims.mul(win.strides[i], d), opad[i] + win.extent(i) - win.strides[i] - cropped)

    if output_shape is None and auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        pads = (0,) * (2 * n) if auto_pad == "VALID" else win.pads
        return tuple(full(i, d, pads[i] + pads[n + i]) for i, d in enumerate(in_dims)), pads
    if output_shape is None:
        output_shape = [dims.mul(d, win.strides[i]) for i, d in enumerate(in_dims)]
    output_shape = tuple(output_shape)[-n:]  # some exporters give N and C too
    begins, ends = [], []
    for i in range(n):
        total = dims.sub(full(i, in_dims[i]), output_shape[i])
        if not isinstance(total, int):
            begins.append(None)
            ends.append(None)
            continue
        small, big = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else big)
        ends.append(big if auto_pad == "SAME_UPPER" else small)
    return tuple(output_shape), tuple(begins + ends)
