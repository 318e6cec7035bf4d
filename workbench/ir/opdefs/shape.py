"""Shape plumbing: Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Expand, Identity.

These rules carry known values along (Info.value as a tuple of Dims or a small int array), so the
Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains of torch exports keep symbolic shapes.
"""
from __future__ import annotations

from .. import dims
from ...errors import ShapeError
from ..ops import Info, op
from ..rules import shape_tensor, static_ints, symbolic_value, unknown


@op("Shape", since=15, start=0, end=None)
def shape(data, *, start, end):
    """1-D int64 tensor of data's dims [start:end]; its value is those dims (symbolic or not)."""
    if data.shape is None:
        return unknown("int64", 1)
    # ONNX clamps start/end into [0, rank] after adding rank to negatives: Python slicing does that.
    return shape_tensor(data.shape[start:end])


@op("Size", since=13)
def size(data):
    """0-D int64 element count."""
    if data.shape is None:
        return Info("int64", ())
    return shape_tensor([dims.prod(data.shape)], scalar=True)


@op("Reshape", since=14, allowzero=0, shape=None, consumed_inputs=None)
def reshape(data, shape_input=None, *, allowzero, shape, consumed_inputs):
    """Output dims from the shape tensor's value: 0 copies the input dim (unless allowzero), -1 is inferred."""
    target = symbolic_value(shape_input) if shape_input is not None else shape
    if target is None:
        rank = _static_length(shape_input)
        return unknown(data.dtype, rank, "reshape")
    return _with_value(data, reshaped(data.shape, tuple(target), allowzero))


def reshaped(in_shape, target: tuple, allowzero: int = 0) -> tuple:
    """Resolve Reshape's 0 and -1 entries of `target` against `in_shape` (None when unknown)."""
    out = list(target)
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if in_shape is None or i >= len(in_shape):
                raise ShapeError(f"Reshape target {list(target)} copies dim {i} (a 0), "
                                 f"which the input shape {in_shape} does not have")
            out[i] = in_shape[i]
    holes = [i for i, d in enumerate(out) if d == -1]
    if len(holes) > 1:
        raise ShapeError(f"Reshape target {list(target)} has more than one -1")
    if holes:
        out[holes[0]] = (dims.fresh("reshape") if in_shape is None else
                         dims.quotient(in_shape, [d for i, d in enumerate(out) if i != holes[0]]))
    if in_shape is not None and dims.is_static(in_shape) and dims.is_static(out) \
            and dims.prod(in_shape) != dims.prod(out):
        raise ShapeError(f"cannot reshape {tuple(in_shape)} ({dims.prod(in_shape)} elements) "
                         f"to {tuple(out)} ({dims.prod(out)} elements)")
    return tuple(out)


def _static_length(info) -> int | None:
    """Length of a 1-D tensor when its shape says it, else None."""
    if info is None or info.shape is None or len(info.shape) != 1 or not isinstance(info.shape[0], int):
        return None
    return info.shape[0]


@op("Flatten", since=13, axis=1)
def flatten(x, *, axis):
    """2-D: (prod(dims[:axis]), prod(dims[axis:])); axis may equal the rank."""
    if x.shape is None:
        return unknown(x.dtype, 2, "flatten")
    rank = len(x.shape)
    if not -rank <= axis <= rank:
        raise ShapeError(f"Flatten axis {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    return Info(x.dtype, (dims.prod(x.shape[:axis]), dims.prod(x.shape[axis:])))


@op("Squeeze", since=13, axes=None)
def squeeze(data, axes_input=None, *, axes):
    """Drop the listed size-1 axes (all known size-1 axes when none are listed)."""
    axes = _axes(axes_input, axes, "Squeeze")
    if data.shape is None:
        return Info(data.dtype, None)
    rank = len(data.shape)
    if axes is None:
        if axes_input is not None:  # axes given but unknown until run time
            return Info(data.dtype, None)
        # symbolic dims are taken as != 1: a squeeze that drops them must list them
        keep = [d for d in data.shape if d != 1]
    else:
        drop = {dims.normalize_axis(a, rank, "Squeeze axis") for a in axes}
        bad = [data.shape[a] for a in drop if isinstance(data.shape[a], int) and data.shape[a] != 1]
        if bad:
            raise ShapeError(f"Squeeze axes {list(axes)} of shape {data.shape} are not all of size 1")
        keep = [d for i, d in enumerate(data.shape) if i not in drop]
    return _with_value(data, tuple(keep))


@op("Unsqueeze", since=13, axes=None)
def unsqueeze(data, axes_input=None, *, axes):
    """Insert size-1 axes at the listed positions of the output."""
    axes = _axes(axes_input, axes, "Unsqueeze")
    if data.shape is None:
        return Info(data.dtype, None)
    if axes is None:
        added = _static_length(axes_input)
        return unknown(data.dtype, None if added is None else len(data.shape) + added, "unsqueeze")
    rank = len(data.shape) + len(axes)
    positions = sorted(dims.normalize_axis(a, rank, "Unsqueeze axis") for a in axes)
    if len(set(positions)) != len(positions):
        raise ShapeError(f"Unsqueeze axes {list(axes)} repeat an axis")
    out = list(data.shape)
    for p in positions:
        out.insert(p, 1)
    return _with_value(data, tuple(out))


def _axes(axes_input, axes_attr, op_name: str):
    """Axes from the input (opset >= 13) or the attribute (older); None when unknown or absent."""
    if axes_input is not None:
        if axes_input.value is not None and static_ints(axes_input) is None:
            raise ShapeError(f"{op_name} axes must be integers, got {axes_input.value!r}")
        return static_ints(axes_input)
    return None if axes_attr is None else tuple(axes_attr)


def _with_value(data: Info, out_shape: tuple) -> Info:
    """An Info of out_shape that keeps data's elements when data is a known shape tensor.

    Squeeze/Unsqueeze/Reshape only relabel a small int tensor, e.g. ("batch",) <-> scalar "batch".
    """
    value = symbolic_value(data) if len(out_shape) <= 1 else None
    if value is not None and dims.prod(out_shape) == len(value):
        return Info(data.dtype, out_shape, shape_tensor(value, scalar=not out_shape, dtype=data.dtype).value)
    return Info(data.dtype, out_shape)


@op("Expand", since=13)
def expand(x, shape):
    """Broadcast x against the shape tensor's value."""
    target = symbolic_value(shape)
    if x.shape is None:
        return unknown(x.dtype, _static_length(shape), "expand")
    if target is None:
        rank = _static_length(shape)
        if rank is None:
            return Info(x.dtype, None)
        rank = max(rank, len(x.shape))
        padded = (1,) * (rank - len(x.shape)) + tuple(x.shape)
        # an input dim other than 1 survives any valid broadcast; a 1 becomes whatever the shape says
        return Info(x.dtype, tuple(dims.fresh("expand") if d == 1 else d for d in padded))
    return Info(x.dtype, dims.broadcast(x.shape, target))


@op("Identity", since=16)
def identity(x):
    """The input, value included."""
    return x
