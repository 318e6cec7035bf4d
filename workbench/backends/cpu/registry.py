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

import importlib
import pkgutil
from typing import Callable, NamedTuple

KERNELS: dict[tuple[str, str], Callable] = {}


def kernel(op_type: str, domain: str = ""):
    """Register the NumPy implementation of `op_type`."""

    def register(fn: Callable) -> Callable:
        KERNELS[(domain, op_type)] = fn
        return fn

    return register


_loaded = False


def load_all() -> dict:
    global _loaded
    if not _loaded:
        from . import kernels

        for mod in pkgutil.iter_modules(kernels.__path__):
            importlib.import_module(f"{kernels.__name__}.{mod.name}")
        _loaded = True
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
