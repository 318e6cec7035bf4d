"""Shape rules with symbolic dims: Transpose, Concat, Split, Slice, Tile, Pad, DepthToSpace,
SpaceToDepth, Trilu, CenterCropPad, ReverseSequence."""
import numpy as np
import pytest

from workbench.errors import ShapeError
from tests.ir.shape_rules import rule, i64
from workbench.ir.ops import Info

BIG = 2**63 - 1


X = Info("float32", ("batch", "seq", 12, 64))


@pytest.mark.parametrize("perm,want", [(None, (64, 12, "seq", "batch")), ((0, 2, 1, 3), ("batch", 12, "seq", 64)),
                                       ((0, 2, 3, 1), ("batch", 12, 64, "seq"))])
def test_transpose(perm, want):
    assert rule("Transpose", X, perm=perm).shape == want


def test_transpose_rejects_a_non_permutation():
    with pytest.raises(ShapeError):
        rule("Transpose", X, perm=[0, 0, 1, 2])


@pytest.mark.parametrize("axis,others,want", [
    (1, [("batch", "past", 12, 64)], ("batch", "seq+past", 12, 64)),
    (-1, [("batch", "seq", 12, 64)], ("batch", "seq", 12, 128)),
    (2, [("batch", 7, 4, 64), ("b2", "seq", 1, 64)], ("batch", 7, 17, 64))])
def test_concat(axis, others, want):
    assert rule("Concat", X, *[Info("float32", s) for s in others], axis=axis).shape == want


def test_concat_rejects_mismatched_dims():
    with pytest.raises(ShapeError):
        rule("Concat", Info("float32", (2, 3)), Info("float32", (4, 3)), axis=1)


def test_concat_with_an_unknown_input_has_unknown_axis_dim():
    out = rule("Concat", X, Info("float32", None), axis=1)
    assert out.shape[0] == "batch" and isinstance(out.shape[1], str) and out.shape[1] != "seq"


@pytest.mark.parametrize("inputs,attrs,want", [
    ([i64(4, 8)], {"axis": 3}, [("batch", "seq", 12, 4), ("batch", "seq", 12, 8)]),
    ([], {"axis": 2, "num_outputs": 3}, [("batch", "seq", 4, 64)] * 3),
    ([], {"axis": 3, "num_outputs": 3}, [("batch", "seq", 12, 22)] * 2 + [("batch", "seq", 12, 20)]),
    ([], {"axis": 2, "_num_outputs": 2}, [("batch", "seq", 6, 64)] * 2),
    ([], {"axis": 1, "_num_outputs": 2}, [("batch", "seq//2", 12, 64)] * 2),
    ([], {"axis": 0, "split": [1, 2]}, [(1, "seq", 12, 64), (2, "seq", 12, 64)])])
def test_split(inputs, attrs, want):
    assert [o.shape for o in rule("Split", X, *inputs, **attrs)] == want


def test_split_needs_a_count():
    with pytest.raises(ShapeError):
        rule("Split", X)
    with pytest.raises(ShapeError):
        rule("Split", Info("float32", (5,)), _num_outputs=2)


def test_split_with_unknown_sizes_knows_the_count():
    assert len(rule("Split", X, Info("int64", (3,)), axis=3)) == 3


@pytest.mark.parametrize("starts,ends,axes,steps,want", [
    ((1,), (BIG,), (1,), None, ("batch", "seq-1", 12, 64)),
    ((0,), (-1,), (1,), None, ("batch", "seq-1", 12, 64)),
    ((-3,), (BIG,), (1,), None, ("batch", 3, 12, 64)),
    ((0,), (1,), (1,), None, ("batch", 1, 12, 64)),
    ((0, 2), (BIG, 10), (1, 2), (2, 3), ("batch", "ceil(seq/2)", 3, 64)),
    ((-1,), (-BIG,), (1,), (-1,), ("batch", "seq", 12, 64)),
    ((BIG,), (-BIG,), (3,), (-2,), ("batch", "seq", 12, 32)),
    ((100,), (200,), (2,), None, ("batch", "seq", 0, 64))])
def test_slice(starts, ends, axes, steps, want):
    inputs = [X, i64(*starts), i64(*ends), i64(*axes)] + ([] if steps is None else [i64(*steps)])
    assert rule("Slice", *inputs).shape == want


def test_slice_with_unknown_bounds_keeps_other_dims():
    out = rule("Slice", X, Info("int64", (1,)), i64(5), i64(1))
    assert out.shape[0] == "batch" and out.shape[2:] == (12, 64) and isinstance(out.shape[1], str)


def test_slice_old_attribute_form():
    assert rule("Slice", X, starts=[1], ends=[3], axes=[2]).shape == ("batch", "seq", 2, 64)


def test_tile():
    assert rule("Tile", X, i64(2, 1, 3, 1)).shape == ("batch*2", "seq", 36, 64)
    with pytest.raises(ShapeError):
        rule("Tile", X, i64(2, 1))


@pytest.mark.parametrize("inputs,attrs,want", [
    ([i64(0, 1, 0, 0, 0, 1, 0, 0)], {}, ("batch", "seq+2", 12, 64)),
    ([i64(0, -1, 0, 0, 0, 0, 2, 0)], {"mode": "reflect"}, ("batch", "seq-1", 14, 64)),
    ([i64(1, 2), None, i64(-1)], {"mode": "edge"}, ("batch", "seq", 12, 67)),
    ([], {"pads": [0, 0, 1, 1, 0, 0, 1, 1]}, ("batch", "seq", 14, 66))])
def test_pad(inputs, attrs, want):
    assert rule("Pad", X, *inputs, **attrs).shape == want


def test_pad_rejects_wrong_counts_and_modes():
    with pytest.raises(ShapeError):
        rule("Pad", X, i64(1, 1))
    with pytest.raises(ShapeError):
        rule("Pad", X, i64(*[0] * 8), mode="mirror")


def test_depth_to_space_and_back():
    x = Info("float32", ("n", 16, "h", 5))
    y = rule("DepthToSpace", x, blocksize=2, mode="CRD")
    assert y.shape == ("n", 4, "h*2", 10)
    assert rule("SpaceToDepth", Info("float32", ("n", 4, 6, 10)), blocksize=2).shape == ("n", 16, 3, 5)
    with pytest.raises(ShapeError):
        rule("DepthToSpace", Info("float32", ("n", 6, 2, 2)), blocksize=2)


def test_same_shape_ops():
    assert rule("Trilu", X, i64(1)).shape == X.shape
    assert rule("ReverseSequence", X, Info("int64", ("seq",)), batch_axis=0, time_axis=1).shape == X.shape


def test_center_crop_pad():
    assert rule("CenterCropPad", X, i64(32, 10), axes=[-1, 2]).shape == ("batch", "seq", 10, 32)
    assert rule("CenterCropPad", Info("float32", ("h", 5)), i64(3, 7)).shape == (3, 7)


def test_symbolic_slice_lengths_evaluate_to_the_static_ones():
    # bounds within +-8 of a dim of at least 17: the rule's assumption that symbolic dims are large holds
    from workbench.ir import dims
    from workbench.ir.opdefs.tensor import slice_length

    rng = np.random.default_rng(0)
    bounds = list(range(-8, 9)) + [BIG, -BIG]
    for _ in range(400):
        start, end = (int(rng.choice(bounds)) for _ in range(2))
        step, n = int(rng.choice([1, 2, 3, -1, -2])), int(rng.integers(17, 30))
        symbolic = slice_length("n", start, end, step)
        value = dims.evaluate(symbolic, {"n": n})
        if isinstance(value, int):  # fresh dims stay unknown
            assert value == len(range(*slice(start, end, step).indices(n))), (start, end, step, n, symbolic)
