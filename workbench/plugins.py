"""Custom ops: register a shape rule and a CPU implementation; a plan names the plugin, never its code.

    >>> @wb.plugin("Swish2", shape=lambda x, **_: x)
    ... def swish2(x, *, beta=1.0):
    ...     return x / (1 + np.exp(-beta * x))
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from .errors import PluginError

PLUGIN_DOMAIN = "workbench.plugin"


@dataclass(frozen=True)
class Plugin:
    name: str
    shape: Callable
    cpu: Callable
    defaults: dict
    version: int = 1


_REGISTRY: dict[str, Plugin] = {}


def plugin(name: str, shape: Callable, version: int = 1, replace: bool = False):
    """Decorator registering a CPU implementation for op `name` with its shape rule.

    The shape rule takes `workbench.ir.ops.Info`s and the attributes and returns Info(s); the
    implementation takes numpy arrays and the attributes. Attribute defaults are the keyword-only
    defaults of the implementation.
    """

    def register(fn: Callable) -> Callable:
        if name in _REGISTRY and not replace:
            raise PluginError(f"plugin {name!r} is already registered; pass replace=True to override it")
        defaults = {p.name: p.default for p in inspect.signature(fn).parameters.values()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty}
        _REGISTRY[name] = Plugin(name, shape, fn, defaults, version)
        return fn

    return register


def lookup(name: str) -> Plugin | None:
    return _REGISTRY.get(name)


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered() -> list:
    return sorted(_REGISTRY)
