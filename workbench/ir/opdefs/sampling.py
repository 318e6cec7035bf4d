"""Shape rules of random sampling ops: Bernoulli, RandomUniform(Like), RandomNormal(Like).

They are registered with deterministic=False: two runs (or two backends) agree on shapes and dtypes,
not values, unless a `seed` is given (and even then only within one backend).
"""
from __future__ import annotations

from ...errors import ShapeError
from ..onnx_dtypes import dtype_name
from ..ops import Info, op


def _like(x: Info, dtype, what: str) -> Info:
    """x's shape; dtype from the attribute (an ONNX type code) or else x's."""
    return Info(x.dtype if dtype is None else dtype_name(dtype, f"{what} dtype"), x.shape)


def _of_shape(shape, dtype, what: str) -> Info:
    if shape is None:
        raise ShapeError(f"{what}: attribute shape is required")
    return Info(dtype_name(dtype, f"{what} dtype"), tuple(int(d) for d in shape))


@op("Bernoulli", since=15, deterministic=False, dtype=None, seed=None)
def bernoulli(x, *, dtype, seed):
    """1 with probability x, else 0; x's shape."""
    return _like(x, dtype, "Bernoulli")


@op("RandomUniformLike", since=1, deterministic=False, dtype=None, high=1.0, low=0.0, seed=None)
def random_uniform_like(x, *, dtype, high, low, seed):
    """Uniform samples in [low, high); x's shape."""
    return _like(x, dtype, "RandomUniformLike")


@op("RandomNormalLike", since=1, deterministic=False, dtype=None, mean=0.0, scale=1.0, seed=None)
def random_normal_like(x, *, dtype, mean, scale, seed):
    """Normal samples N(mean, scale^2); x's shape."""
    return _like(x, dtype, "RandomNormalLike")


@op("RandomUniform", since=1, deterministic=False, dtype=1, high=1.0, low=0.0, seed=None, shape=None)
def random_uniform(*, dtype, high, low, seed, shape):
    """Uniform samples in [low, high) of the `shape` attribute."""
    return _of_shape(shape, dtype, "RandomUniform")


@op("RandomNormal", since=1, deterministic=False, dtype=1, mean=0.0, scale=1.0, seed=None, shape=None)
def random_normal(*, dtype, mean, scale, seed, shape):
    """Normal samples N(mean, scale^2) of the `shape` attribute."""
    return _of_shape(shape, dtype, "RandomNormal")
