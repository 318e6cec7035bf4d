"""The CPU kernel table: op type -> NumPy function with ONNX semantics.

A kernel takes the layer's inputs positionally (numpy arrays, None for an omitted optional input)
and its attributes, defaults filled in, as keyword arguments; it returns one array or a tuple:

    @kernel("LeakyRelu")
    def leaky_relu(x, *, alpha):
        return np.where(x >= 0, x, x * x.dtype.type(alpha))

Kernels compute in the input dtype (float16/bfloat16 inputs are upcast by the executor, which
rounds each layer's outputs back to the layer's precision, as a GPU engine stores them).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from ...discover import import_modules

KERNELS: dict[tuple[str, str], Callable] = {}
# Kernels of ops with subgraphs (If, Loop, Scan): executors also pass them `scope=`, a dict of the
# values their subgraphs read from the graph around the layer (Layer.outer_reads()).
SCOPED: set = set()


def kernel(op_type: str, domain: str = "", scoped: bool = False):
    """Register the NumPy implementation of `op_type` (`scoped`: it takes the enclosing values too)."""

    def register(fn: Callable) -> Callable:
        KERNELS[(domain, op_type)] = fn
        if scoped:
            SCOPED.add((domain, op_type))
        return fn

    return register


def needs_scope(layer) -> bool:
    """True when the layer's kernel takes `scope=` (the values its subgraphs read from outside)."""
    load_all()
    return ("" if layer.domain == "ai.onnx" else layer.domain, layer.op) in SCOPED


def load_all() -> dict:
    """Import every kernel module once; returns the kernel table."""
    import_modules("workbench.backends.cpu.kernels")
    return KERNELS


def kernel_for(op_type: str, domain: str = "") -> Callable | None:
    load_all()
    return KERNELS.get(("" if domain == "ai.onnx" else domain, op_type))


class Tactics(NamedTuple):
    """The ways a kernel can compute (the values of its `method=` keyword), and which apply to a layer."""

    names: tuple
    applicable: Callable  # (input shapes, attributes) -> the names that apply, the default first


TACTICS: dict[tuple[str, str], Tactics] = {}


def tactics(op_type: str, names, domain: str = ""):
    """Register `op_type`'s tactics: decorate the function telling which of `names` apply to a layer."""

    def register(fn: Callable) -> Callable:
        TACTICS[(domain, op_type)] = Tactics(tuple(names), fn)
        return fn

    return register


def tactics_for(op_type: str, domain: str = "") -> Tactics | None:
    load_all()
    return TACTICS.get(("" if domain == "ai.onnx" else domain, op_type))
