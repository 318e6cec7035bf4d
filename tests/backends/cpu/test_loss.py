"""NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss kernels vs onnx.reference."""
import numpy as np
import pytest

from tests.oracle import check, rand

SHAPES = [((4, 5), (4,)), ((2, 3, 6), (2, 6)), ((2, 4, 3, 2), (2, 3, 2))]


def targets(x_shape, t_shape, ignore_index=None, seed=0):
    """Random class indices, some of them set to ignore_index."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, x_shape[1], size=t_shape).astype(np.int64)
    if ignore_index is not None:
        t.reshape(-1)[::3] = ignore_index
    return t


@pytest.mark.parametrize("op", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("ignore_index", [None, 1, -5])
@pytest.mark.parametrize("weighted", [False, True])
def test_losses_match_reference(op, shapes, reduction, ignore_index, weighted):
    x = rand(*shapes[0])
    t = targets(*shapes, ignore_index)
    w = rand(shapes[0][1], low=0.1, high=2.0) if weighted else None
    attrs = {"reduction": reduction} if ignore_index is None else {"reduction": reduction, "ignore_index": ignore_index}
    n_out = 2 if op == "SoftmaxCrossEntropyLoss" else 1
    check(op, [x, t] + ([w] if weighted else []), attrs, n_out=n_out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_softmax_cross_entropy_other_float_dtypes(dtype):
    x, t = rand(3, 4, 2, dtype=dtype), targets((3, 4, 2), (3, 2)).astype(np.int32)
    tol = 1e-2 if dtype == "float16" else 1e-9
    check("SoftmaxCrossEntropyLoss", [x, t], {"reduction": "sum"}, n_out=2, rtol=tol, atol=tol)


def test_mean_over_only_ignored_targets_is_nan_like_onnx():
    x, t = rand(2, 3), np.array([1, 1], np.int64)
    check("NegativeLogLikelihoodLoss", [x, t], {"ignore_index": 1})
