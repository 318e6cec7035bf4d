"""Data movement: Transpose, Concat, Split, Slice, Tile, Pad, DepthToSpace, SpaceToDepth, Trilu,
CenterCropPad, ReverseSequence.

Concat, Split, Slice and Tile of a 1-D shape tensor keep its (symbolic) value.
"""
from __future__ import annotations

from .. import dims
from ...errors import ShapeError
from ..ops import Info, op
from ..rules import _VALUE_LIMIT, same_as, shape_tensor, static_ints, symbolic_value

# Slice ends at or beyond this mean "to the end" (exporters write INT32_MAX or INT64_MAX).
_TO_END = 2**31 - 1


def _offset(d, k: int):
    """d + k for an int k, written d-3 rather than d+-3 when d is symbolic."""
    return dims.add(d, k) if k >= 0 else dims.sub(d, -k)


def _fresh_like(x: Info, axes, prefix: str) -> Info:
    """x's shape with the dims of `axes` (all when None) replaced by unknown ones."""
    if x.shape is None:
        return Info(x.dtype, None)
    chosen = range(len(x.shape)) if axes is None else {dims.normalize_axis(a, len(x.shape)) for a in axes}
    return Info(x.dtype, tuple(dims.fresh(prefix) if i in chosen else d for i, d in enumerate(x.shape)))


@op("Transpose", since=13, perm=None)
def transpose(x, *, perm):
    """Dims permuted by perm (reversed by default)."""
    if x.shape is None:
        return Info(x.dtype, None)
    rank = len(x.shape)
    perm = list(range(rank))[::-1] if perm is None else [dims.normalize_axis(p, rank, "perm") for p in perm]
    if sorted(perm) != list(range(rank)):
        raise ShapeError(f"Transpose perm {perm} is not a permutation of the {rank} axes of {x.shape}")
    return Info(x.dtype, tuple(x.shape[p] for p in perm))


@op("Concat", since=13, axis=None)
def concat(*inputs, axis):
    """Sizes along `axis` add up; the other dims must agree. 1-D shape tensors concatenate their values."""
    if axis is None:
        raise ShapeError("Concat needs its 'axis' attribute")
    xs = [x for x in inputs if x is not None]
    known = [x.shape for x in xs if x.shape is not None]
    if not known:
        return Info(xs[0].dtype, None)
    rank = len(known[0])
    if any(len(s) != rank for s in known):
        raise ShapeError(f"Concat inputs have different ranks: {known}")
    axis = dims.normalize_axis(axis, rank, "Concat axis")
    out = [_agreed([s[i] for s in known], f"Concat dim {i}") if i != axis else None for i in range(rank)]
    out[axis] = dims.fresh("concat") if len(known) < len(xs) else _sum(s[axis] for s in known)
    values = [symbolic_value(x) for x in xs]
    if rank == 1 and all(v is not None for v in values):
        return shape_tensor([d for v in values for d in v], dtype=xs[0].dtype)
    return Info(xs[0].dtype, tuple(out))


def _sum(ds):
    total = 0
    for d in ds:
        total = dims.add(total, d)
    return total


def _agreed(candidates, what: str):
    """The one dim several inputs must share: a known int wins over symbolic names."""
    ints = {d for d in candidates if isinstance(d, int)}
    if len(ints) > 1:
        raise ShapeError(f"{what} differs between inputs: {sorted(ints)}")
    return ints.pop() if ints else candidates[0]


@op("Split", since=18, axis=0, num_outputs=None, split=None, _num_outputs=None)
def split(x, split_input=None, *, axis, num_outputs, split, _num_outputs):
    """One Info per part; `_num_outputs` (set by the parser) is the layer's output count."""
    sizes = split_sizes(x.shape[axis] if x.shape is not None else None, split_input, split,
                        num_outputs, _num_outputs)
    if x.shape is None:
        return tuple(Info(x.dtype, None) for _ in sizes)
    axis = dims.normalize_axis(axis, len(x.shape), "Split axis")
    value = symbolic_value(x) if len(x.shape) == 1 else None
    parts, start = [], 0
    for size in sizes:
        if value is not None and isinstance(size, int) and isinstance(start, int):
            parts.append(shape_tensor(value[start:start + size], dtype=x.dtype))
        else:
            parts.append(Info(x.dtype, x.shape[:axis] + (size,) + x.shape[axis + 1:]))
        start = dims.add(start, size)
    return tuple(parts)


def split_sizes(length, split_input, split_attr, num_outputs, n_outputs) -> list:
    """Sizes of Split's parts from, in order: the split input, the old split attribute,
    num_outputs (opset 18: the last part may be smaller) or the layer's output count (even parts)."""
    if split_input is not None:
        sizes = symbolic_value(split_input)
        if sizes is None:
            count = split_input.shape[0] if split_input.shape else n_outputs
            if not isinstance(count, int):
                raise ShapeError("Split: the number of parts is unknown (split input of unknown length)")
            return [dims.fresh("split") for _ in range(count)]
        return list(sizes)
    if split_attr is not None:
        return list(split_attr)
    count = num_outputs or n_outputs
    if not count:
        raise ShapeError("Split needs a 'split' input, 'num_outputs' or the number of outputs "
                         "(the parser's _num_outputs)")
    if length is None:
        return [dims.fresh("split") for _ in range(count)]
    if num_outputs:
        chunk = dims.ceildiv(length, count)
        last = dims.sub(length, dims.mul(chunk, count - 1))
        return [chunk] * (count - 1) + [last]
    if isinstance(length, int) and length % count:
        raise ShapeError(f"Split cannot cut a dim of {length} into {count} equal parts")
    return [dims.floordiv(length, count)] * count


@op("Slice", since=13, starts=None, ends=None, axes=None)
def slice_(data, starts_input=None, ends_input=None, axes_input=None, steps_input=None, *,
           starts, ends, axes):
    """Sliced dims; start/end bounds may be symbolic (e.g. ends = Shape(y)[1:2]).

    A symbolic dim is assumed large enough for int bounds (x[:, :1] of ("b", "seq") is ("b", 1)).
    """
    if starts_input is not None:  # opset >= 10: inputs, else the old attributes
        starts, ends = symbolic_value(starts_input), symbolic_value(ends_input)
        axes = static_ints(axes_input) if axes_input is not None else None
        if axes_input is not None and axes is None:
            return _fresh_like(data, None, "slice")
    if data.shape is None:
        return Info(data.dtype, None)
    steps = (1,) * len(starts or ()) if steps_input is None else static_ints(steps_input)
    if starts is None or ends is None or steps is None:
        return _fresh_like(data, axes, "slice")
    rank = len(data.shape)
    axes = range(len(starts)) if axes is None else [dims.normalize_axis(a, rank, "Slice axis") for a in axes]
    out = list(data.shape)
    for a, start, end, step in zip(axes, starts, ends, steps):
        if step == 0:
            raise ShapeError("Slice step cannot be 0")
        out[a] = slice_length(data.shape[a], start, end, step)
    value = symbolic_value(data) if rank == 1 else None
    if value is not None and all(isinstance(v, int) for v in (*starts, *ends)):
        return shape_tensor(value[slice(starts[0], ends[0], steps[0])], dtype=data.dtype)
    return Info(data.dtype, tuple(out))


def slice_length(d, start, end, step: int):
    """Number of elements of range(start, end, step) over a dim of size d, with ONNX clamping."""
    if all(isinstance(v, int) for v in (d, start, end)):
        return len(range(*slice(start, end, step).indices(d)))
    if step < 0:
        return _reverse_length(d, start, end, step)
    begin, stop = _bound(start, is_start=True), _bound(end, is_start=False)
    if begin is None or stop == 0:
        return 0  # starts past the end, or stops before the beginning
    if isinstance(begin, tuple) and isinstance(stop, tuple):
        # both counted from the end, e.g. x[-3:] or x[-3:-1]: the size does not depend on d
        return dims.ceildiv(max(stop[0] - begin[0], 0), step)
    if isinstance(begin, tuple):
        return dims.fresh("slice")  # from the end to a fixed index: depends on how d compares to both
    if isinstance(stop, tuple):  # x[1:-1] is d-2
        length = _offset(d, stop[0] - begin) if isinstance(begin, int) else dims.sub(_offset(d, stop[0]), begin)
    else:
        length = dims.sub(stop, begin)
    return dims.ceildiv(max(length, 0) if isinstance(length, int) else length, step)


def _bound(b, is_start: bool):
    """A forward slice bound: an index from the start, or (k,) meaning d+k (k <= 0).

    None: a start past any end (empty slice); a stop before the beginning comes back as 0.
    """
    if not isinstance(b, int):
        return b
    if b >= _TO_END:
        return None if is_start else (0,)
    if b <= -_TO_END:
        return 0
    return b if b >= 0 else (b,)


def _reverse_length(d, start, end, step: int):
    """A negative-step slice of a symbolic dim: known only when it runs the whole dim backwards."""
    from_last = isinstance(start, int) and (start >= _TO_END or start == -1)
    to_first = isinstance(end, int) and end <= -_TO_END
    return dims.ceildiv(d, -step) if from_last and to_first else dims.fresh("slice")


@op("Tile", since=13)
def tile(x, repeats):
    """Each dim times its repeat count; a 1-D shape tensor repeats its value."""
    reps = symbolic_value(repeats)
    if x.shape is None:
        return Info(x.dtype, None)
    if reps is None:
        return _fresh_like(x, None, "tile")
    if len(reps) != len(x.shape):
        raise ShapeError(f"Tile repeats {list(reps)} must have one entry per dim of {x.shape}")
    if any(isinstance(r, int) and r < 0 for r in reps):
        raise ShapeError(f"Tile repeats {list(reps)} must not be negative")
    value = symbolic_value(x) if len(x.shape) == 1 else None
    # only a small result keeps its value: repeating a tuple by an absurd count would eat the memory
    if value is not None and isinstance(reps[0], int) and len(value) * reps[0] <= _VALUE_LIMIT:
        return shape_tensor(value * reps[0], dtype=x.dtype)
    return Info(x.dtype, tuple(dims.mul(d, r) for d, r in zip(x.shape, reps)))


@op("Pad", since=18, mode="constant", pads=None, value=0.0, paddings=None)
def pad(data, pads_input=None, constant_value=None, axes_input=None, *, mode, pads, value, paddings):
    """Each padded dim grows by its begin and end pads (negative pads crop)."""
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ShapeError(f"Pad mode {mode!r} is not one of constant, reflect, edge, wrap")
    amounts = symbolic_value(pads_input) if pads_input is not None else (pads or paddings)
    if data.shape is None:
        return Info(data.dtype, None)
    rank = len(data.shape)
    axes = static_ints(axes_input) if axes_input is not None else tuple(range(rank))
    if amounts is None or axes is None:
        return _fresh_like(data, axes, "pad")
    if len(amounts) != 2 * len(axes):
        raise ShapeError(f"Pad has {len(amounts)} pads for {len(axes)} axes; it needs two per axis")
    out = list(data.shape)
    for i, a in enumerate(axes):
        a = dims.normalize_axis(a, rank, "Pad axis")
        out[a] = _grow(out[a], amounts[i], amounts[i + len(axes)])
    return Info(data.dtype, tuple(out))


def _grow(d, before, after):
    if isinstance(before, int) and isinstance(after, int):
        return _offset(d, before + after)
    return dims.add(dims.add(d, before), after)


@op("DepthToSpace", since=13, blocksize=None, mode="DCR")
def depth_to_space(x, *, blocksize, mode):
    """(N, C, H, W) -> (N, C/b², H·b, W·b)."""
    n, c, h, w = _nchw(x, "DepthToSpace", blocksize, mode)
    if isinstance(c, int) and c % (blocksize * blocksize):
        raise ShapeError(f"DepthToSpace: channels {c} are not divisible by blocksize² = {blocksize ** 2}")
    return Info(x.dtype, (n, dims.floordiv(c, blocksize * blocksize), dims.mul(h, blocksize),
                          dims.mul(w, blocksize)))


@op("SpaceToDepth", since=13, blocksize=None, mode="DCR")
def space_to_depth(x, *, blocksize, mode):
    """(N, C, H, W) -> (N, C·b², H/b, W/b)."""
    n, c, h, w = _nchw(x, "SpaceToDepth", blocksize, mode)
    for d in (h, w):
        if isinstance(d, int) and d % blocksize:
            raise ShapeError(f"SpaceToDepth: spatial dims {(h, w)} are not divisible by blocksize {blocksize}")
    return Info(x.dtype, (n, dims.mul(c, blocksize * blocksize), dims.floordiv(h, blocksize),
                          dims.floordiv(w, blocksize)))


def _nchw(x: Info, op_name: str, blocksize, mode) -> tuple:
    if not blocksize or blocksize < 1:
        raise ShapeError(f"{op_name} needs a positive 'blocksize' attribute")
    if mode not in ("DCR", "CRD"):
        raise ShapeError(f"{op_name} mode {mode!r} is not DCR or CRD")
    shape = x.shape if x.shape is not None else tuple(dims.fresh() for _ in range(4))
    if len(shape) != 4:
        raise ShapeError(f"{op_name} needs a 4-D (N, C, H, W) input, got shape {shape}")
    return shape


@op("Trilu", since=14, upper=1)
def trilu(x, k=None, *, upper):
    """Same shape: a triangle of the last two dims is kept."""
    return same_as(x)


@op("ReverseSequence", since=10, batch_axis=1, time_axis=0)
def reverse_sequence(x, sequence_lens, *, batch_axis, time_axis):
    """Same shape: each batch entry's first sequence_lens steps are reversed."""
    return same_as(x)


@op("CenterCropPad", since=18, axes=None)
def center_crop_pad(x, shape, *, axes):
    """The listed axes (all by default) take the sizes of the shape tensor."""
    sizes = symbolic_value(shape)
    if x.shape is None:
        return Info(x.dtype, None)
    rank = len(x.shape)
    axes = list(range(rank)) if axes is None else [dims.normalize_axis(a, rank, "CenterCropPad axis")
                                                   for a in axes]
    if sizes is None:
        return _fresh_like(x, axes, "crop")
    if len(sizes) != len(axes):
        raise ShapeError(f"CenterCropPad shape {list(sizes)} needs one size per axis {axes}")
    out = list(x.shape)
    for a, s in zip(axes, sizes):
        out[a] = s
    return Info(x.dtype, tuple(out))

