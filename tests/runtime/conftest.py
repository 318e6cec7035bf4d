"""Small engines for runtime tests, built from Add and Relu only (the ops every checkout has)."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb

WIDTH = 16


def add_relu_network(bias: np.ndarray, name: str = "tiny") -> "wb.Network":
    """relu(x + bias) with x of shape (batch, WIDTH)."""
    net = wb.Network(name)
    x = net.add_input("x", "float32", ("batch", WIDTH))
    y = net.add_elementwise(x, bias.astype(np.float32), "Add").output
    net.mark_output(net.add_activation(y, "Relu").output)
    return net


def build(net, max_batch: int = 4) -> "wb.Engine":
    return wb.build(net, wb.BuilderConfig(device="cpu", max_batch=max_batch))


@pytest.fixture(scope="module")
def engine():
    return build(add_relu_network(np.linspace(-1, 1, WIDTH)))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
