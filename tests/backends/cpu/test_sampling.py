"""Bernoulli and RandomUniform/Normal(Like): shapes, dtypes, seeds and sample statistics (values are random)."""
import numpy as np
import pytest

from tests.oracle import ours, rand


@pytest.mark.parametrize("dtype,code,want", [("float32", None, "float32"), ("float64", None, "float64"),
                                             ("float32", 9, "bool"), ("float64", 6, "int32")])
def test_bernoulli_outputs_zeros_and_ones_at_rate_p(dtype, code, want):
    p = np.where(np.arange(20000) % 2 == 0, 0.25, 0.0).astype(dtype).reshape(100, 200)
    p[:, -1] = 1.0
    (out,) = ours("Bernoulli", [p], {} if code is None else {"dtype": code})
    assert out.dtype == want and out.shape == p.shape
    got = out.astype(np.float64)
    assert set(np.unique(got)) <= {0.0, 1.0}
    assert (got[p == 0] == 0).all() and (got[:, -1] == 1).all()
    assert abs(got[p == 0.25].mean() - 0.25) < 0.02


def test_seed_repeats_samples_and_no_seed_does_not():
    p = rand(50, low=0.2, high=0.8)
    assert (ours("Bernoulli", [p], {"seed": 3.0})[0] == ours("Bernoulli", [p], {"seed": 3.0})[0]).all()
    draws = [ours("RandomUniformLike", [p])[0] for _ in range(2)]
    assert not np.array_equal(*draws)


@pytest.mark.parametrize("op,attrs", [("RandomUniform", {"low": -2.0, "high": 3.0}),
                                      ("RandomNormal", {"mean": 5.0, "scale": 0.5})])
def test_generators_of_a_shape(op, attrs):
    (out,) = ours(op, [], {"shape": [200, 50], "dtype": 11, **attrs})
    assert out.shape == (200, 50) and out.dtype == np.float64
    if op == "RandomUniform":
        assert out.min() >= -2.0 and out.max() < 3.0 and abs(out.mean() - 0.5) < 0.1
    else:
        assert abs(out.mean() - 5.0) < 0.05 and abs(out.std() - 0.5) < 0.05


@pytest.mark.parametrize("op", ["RandomUniformLike", "RandomNormalLike"])
def test_like_generators_take_the_input_shape_and_dtype(op):
    x = rand(3, 4, dtype="float16")
    assert ours(op, [x])[0].dtype == np.float16
    assert ours(op, [x], {"dtype": 1})[0].shape == (3, 4)
