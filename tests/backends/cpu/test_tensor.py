"""Data movement kernels vs onnx.reference: Transpose, Concat, Split, Slice, Tile, Pad,
DepthToSpace, SpaceToDepth, Trilu, CenterCropPad, ReverseSequence."""
import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand, reference

DTYPES = ["float32", "float16", "float64", "int8", "uint8", "int64", ml_dtypes.bfloat16]


def i64(*values):
    return np.array(values, dtype=np.int64)


@pytest.mark.parametrize("perm", [None, (0, 1, 2), (2, 0, 1), (1, 2, 0), (0, 2, 1)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose(perm, dtype):
    check("Transpose", [rand(2, 3, 4, dtype=dtype)], {} if perm is None else {"perm": list(perm)})


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("dtype", ["float32", "int32", ml_dtypes.bfloat16])
def test_concat(axis, dtype):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for i, s in enumerate(shapes):
        s[axis] = i + 1
    check("Concat", [rand(*s, dtype=dtype) for s in shapes], {"axis": axis})


def _split(x, inputs, attrs, n):
    want = reference("Split", [x, *inputs], attrs, n_out=n, opset=18)
    got = ours("Split", [x, *inputs], {**attrs, "_num_outputs": n})
    assert len(got) == n
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("sizes,axis", [((2, 4), 0), ((1, 1, 4), 0), ((0, 6), 0), ((3, 1), 1), ((1, 3), -1)])
def test_split_by_sizes(sizes, axis):
    _split(rand(6, 4), [i64(*sizes)], {"axis": axis}, len(sizes))


@pytest.mark.parametrize("n,length", [(2, 6), (3, 6), (4, 7), (3, 5)])
def test_split_num_outputs_last_part_smaller(n, length):
    _split(rand(length, 2), [], {"num_outputs": n}, n)


def test_split_equal_parts_from_output_count():
    got = ours("Split", [rand(2, 9)], {"axis": 1, "_num_outputs": 3})
    assert [g.shape for g in got] == [(2, 3)] * 3


def test_split_old_attribute():
    got = ours("Split", [rand(5, 2)], {"split": [2, 3], "_num_outputs": 2})
    assert [g.shape for g in got] == [(2, 2), (3, 2)]


BIG = 2**63 - 1


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ((0,), (2,), None, None), ((1, 0), (3, -1), (0, 1), None), ((-1,), (-BIG,), (1,), (-1,)),
    ((BIG,), (0,), (2,), (-2,)), ((1,), (BIG,), (-1,), (2,)), ((-100,), (100,), (0,), (1,)),
    ((2, 1), (0, 4), (0, 2), (-1, 3)), ((5,), (1,), (1,), (1,))])
@pytest.mark.parametrize("dtype", ["float32", "int64", ml_dtypes.bfloat16])
def test_slice(starts, ends, axes, steps, dtype):
    inputs = [rand(4, 5, 6, dtype=dtype), i64(*starts), i64(*ends)]
    if axes is not None:
        inputs.append(i64(*axes))
    if steps is not None:
        inputs.append(i64(*steps))
    check("Slice", inputs)


def test_slice_old_attributes():
    (y,) = ours("Slice", [rand(4, 5)], {"starts": [1, 0], "ends": [3, -1], "axes": [0, 1]})
    assert y.shape == (2, 4)


@pytest.mark.parametrize("repeats", [(1, 1), (2, 1), (1, 3), (2, 2)])
@pytest.mark.parametrize("dtype", ["float32", "int8", "bool"])
def test_tile(repeats, dtype):
    x = rand(2, 3) > 0 if dtype == "bool" else rand(2, 3, dtype=dtype)
    check("Tile", [x, i64(*repeats)])


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [(0, 1, 2, 0), (1, 1, 1, 1), (2, 0, 0, 3)])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_pad(mode, pads, dtype):
    inputs = [rand(4, 5, dtype=dtype), i64(*pads)]
    if mode == "constant":
        inputs.append(np.array(3, dtype=dtype))
    check("Pad", inputs, {"mode": mode})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_negative_pads_crop(mode):
    # onnx.reference cannot crop (np.pad refuses negative widths): the expected crop-then-pad by hand
    x = rand(4, 5)
    (y,) = ours("Pad", [x, i64(0, -1, 1, -2)], {"mode": mode})
    np.testing.assert_array_equal(y, np.pad(x[:, 1:3], ((0, 1), (0, 0)), mode=mode))


@pytest.mark.parametrize("axes", [(1,), (-1, 0), (0, 2)])
def test_pad_axes_input(axes):
    pads = [1] * len(axes) + [2] * len(axes)
    check("Pad", [rand(3, 4, 5), i64(*pads), None, i64(*axes)], {"mode": "edge"})


def test_pad_old_attribute_form():
    (y,) = ours("Pad", [rand(2, 2)], {"pads": [1, 0, 0, 1], "value": 5.0})
    assert y.shape == (3, 3) and y[0, 0] == 5.0


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("blocksize", [2, 3])
@pytest.mark.parametrize("dtype", ["float32", ml_dtypes.bfloat16])
def test_depth_and_space(mode, blocksize, dtype):
    b = blocksize
    check("DepthToSpace", [rand(2, 2 * b * b, 3, 4, dtype=dtype)], {"blocksize": b, "mode": mode})
    check("SpaceToDepth", [rand(2, 3, 2 * b, 3 * b, dtype=dtype)], {"blocksize": b})


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, -2, 0, 1, 5])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_trilu(upper, k, dtype):
    inputs = [rand(2, 4, 5, dtype=dtype)] + ([] if k is None else [np.array(k, np.int64)])
    check("Trilu", inputs, {"upper": upper})


@pytest.mark.parametrize("x_shape,shape,axes", [((4, 5), (2, 7), None), ((4, 5), (6, 3), None),
                                                ((4, 5), (5, 9), None), ((4, 5, 6), (3,), (0,)),
                                                ((4, 5, 6), (8, 1), (-1, 1))])
def test_center_crop_pad(x_shape, shape, axes):
    check("CenterCropPad", [rand(*x_shape), i64(*shape)], {} if axes is None else {"axes": list(axes)})


@pytest.mark.parametrize("batch_axis,time_axis", [(1, 0), (0, 1)])
def test_reverse_sequence(batch_axis, time_axis):
    x = rand(4, 4, 3)
    check("ReverseSequence", [x, i64(4, 1, 2, 3)], {"batch_axis": batch_axis, "time_axis": time_axis})
