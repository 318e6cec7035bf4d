"""Shared helpers of the quantization tests: small networks and a skip for kernels not merged yet."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.backends.cpu.evaluate import evaluate_layer
from workbench.backends.cpu.registry import kernel_for
from workbench.ir import Network


def needs_kernels(*ops: str):
    """Skip a test until the CPU kernels of `ops` (owned by other branches) are present."""
    missing = [op for op in ops if kernel_for(op) is None]
    return pytest.mark.skipif(bool(missing), reason=f"CPU kernels not merged yet: {missing}")


def elementwise_net(features: int = 16, seed: int = 0) -> Network:
    """x -> Mul(w) -> Relu -> Add(c) -> y: calibrated tensors x, the Mul, the Relu and y."""
    rng = np.random.default_rng(seed)
    net = Network("elementwise")
    x = net.add_input("x", "float32", ("batch", features))
    h = net.add_elementwise(x, rng.uniform(0.5, 2.0, features).astype(np.float32), "Mul", name="scale").output
    h = net.add_activation(h, "Relu", name="relu").output
    y = net.add_elementwise(h, rng.standard_normal(features).astype(np.float32), "Add", name="shift").output
    net.mark_output(y)
    return net


def batches(n: int = 4, batch: int = 8, features: int = 16, seed: int = 1, name: str = "x") -> list:
    rng = np.random.default_rng(seed)
    return [{name: rng.standard_normal((batch, features)).astype(np.float32)} for _ in range(n)]


def mlp(seed: int = 0) -> Network:
    """x (batch, 32) -> Gemm(transB) -> Relu -> MatMul -> y (batch, 10)."""
    rng = np.random.default_rng(seed)
    net = Network("mlp")
    x = net.add_input("x", "float32", ("batch", 32))
    h = net.add_fully_connected(x, rng.standard_normal((24, 32)).astype(np.float32) * 0.2,
                                rng.standard_normal(24).astype(np.float32) * 0.1, name="fc").output
    h = net.add_activation(h, "Relu", name="relu").output
    net.mark_output(net.add_matmul(h, rng.standard_normal((24, 10)).astype(np.float32) * 0.3, name="head").output)
    return net


def convnet(seed: int = 0) -> Network:
    """x (batch, 3, 12, 12) -> Conv(bias, pad 1) -> Relu -> Conv(stride 2, groups 2) -> y."""
    rng = np.random.default_rng(seed)
    net = Network("convnet")
    x = net.add_input("x", "float32", ("batch", 3, 12, 12))
    h = net.add_convolution(x, rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
                            rng.standard_normal(8).astype(np.float32) * 0.1, padding=1, name="conv1").output
    h = net.add_activation(h, "Relu", name="relu").output
    y = net.add_convolution(h, rng.standard_normal((6, 4, 3, 3)).astype(np.float32) * 0.2, stride=2, groups=2,
                            name="conv2").output
    net.mark_output(y)
    return net


def run(net, feeds: dict, names=None) -> dict:
    """Evaluate a network layer by layer on the CPU kernels (no build: the pass alone is tested).

    Returns the graph outputs, or the tensors `names`.
    """
    env = {**net.weights, **feeds}
    for layer in net.layers:
        for name, value in zip(layer.outputs, evaluate_layer(layer, [env[n] if n else None for n in layer.inputs])):
            env[name] = value
    return {n: env[n] for n in names or net.outputs}


def minmax_scales(net, x) -> dict:
    """{tensor: int8 scale} from the max |value| of every tensor on the batch x (a quick calibration)."""
    env = {**net.weights, net.inputs[0]: x}
    scales = {net.inputs[0]: float(np.abs(x).max() / 127)}
    for layer in net.layers:
        for name, value in zip(layer.outputs, evaluate_layer(layer, [env[n] if n else None for n in layer.inputs])):
            env[name] = value
            scales[name] = float(np.abs(value).max() / 127)
    return scales


def encoder_batch(rng, size: int = 2) -> dict:
    """Token ids and an attention mask for the BERT-style zoo encoder (sequence 128, padded tails as real
    batches have)."""
    ids = rng.integers(0, 30522, (size, 128)).astype(np.int64)
    mask = np.ones((size, 128), np.int64)
    mask[:, rng.integers(64, 128):] = 0
    return {"input_ids": ids, "attention_mask": mask}
