"""NumPy kernels of Bernoulli, RandomUniform(Like) and RandomNormal(Like).

A `seed` attribute makes a layer repeat its samples from run to run; without one every run draws
fresh samples from the operating system's entropy.
"""
from __future__ import annotations

import numpy as np

from ....ir.onnx_dtypes import numpy_dtype
from ..registry import kernel


def generator(seed) -> np.random.Generator:
    """A generator seeded by the (float) seed attribute, or a fresh unseeded one."""
    return np.random.default_rng(None if seed is None else int(seed))


def _out_dtype(dtype, like: np.ndarray | None, what: str) -> np.dtype:
    return like.dtype if dtype is None else numpy_dtype(dtype, f"{what} dtype")


@kernel("Bernoulli")
def bernoulli(x, *, dtype=None, seed=None):
    """1 where a uniform sample falls below the probability x, else 0."""
    draws = generator(seed).random(x.shape)
    return (draws < x.astype(np.float64)).astype(_out_dtype(dtype, x, "Bernoulli"))


@kernel("RandomUniformLike")
def random_uniform_like(x, *, dtype=None, high=1.0, low=0.0, seed=None):
    return generator(seed).uniform(low, high, x.shape).astype(_out_dtype(dtype, x, "RandomUniformLike"))


@kernel("RandomNormalLike")
def random_normal_like(x, *, dtype=None, mean=0.0, scale=1.0, seed=None):
    return generator(seed).normal(mean, scale, x.shape).astype(_out_dtype(dtype, x, "RandomNormalLike"))


@kernel("RandomUniform")
def random_uniform(*, dtype=1, high=1.0, low=0.0, seed=None, shape=None):
    return generator(seed).uniform(low, high, tuple(shape)).astype(numpy_dtype(dtype, "RandomUniform dtype"))


@kernel("RandomNormal")
def random_normal(*, dtype=1, mean=0.0, scale=1.0, seed=None, shape=None):
    return generator(seed).normal(mean, scale, tuple(shape)).astype(numpy_dtype(dtype, "RandomNormal dtype"))
