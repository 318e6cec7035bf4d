"""Op specs: one registry entry per op type, with its ONNX attribute defaults and its shape rule.

A shape rule takes one `Info` per input (None for an omitted optional input) and the layer's
attributes (defaults filled in) as keyword arguments, and returns one Info or a tuple of them:

    @op("LeakyRelu", since=6, alpha=0.01)
    def leaky_relu(x, *, alpha):
        return Info(x.dtype, x.shape)

Rules live in `workbench/ir/opdefs/`, one module per op family; every module there is imported
by `load_all()`, so adding an op never touches a hand-kept list.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from ..discover import import_modules
from ..errors import ValidationError


class Info(NamedTuple):
    """What shape inference knows of one tensor.

    dtype: numpy dtype name ("float32", "int64", "bool", "float16", "bfloat16", "float8_e4m3fn"...).
    shape: tuple of Dims (int or symbolic str), or None when even the rank is unknown.
    value: the tensor's value when known at build time: a numpy array for constants, or a tuple
           of Dims for a 1-D int64 shape tensor known symbolically (e.g. the output of Shape).
    """

    dtype: str
    shape: tuple | None
    value: Any = None


@dataclass(frozen=True)
class OpSpec:
    name: str
    since: int
    defaults: dict
    shape_rule: Callable
    domain: str = ""
    doc: str = ""
    deterministic: bool = True
    extra: dict = field(default_factory=dict)
    scoped: bool = False  # the rule also gets `scope`: what it needs to infer the op's subgraphs


OPS: dict[tuple[str, str], OpSpec] = {}


def op(name: str, since: int = 1, domain: str = "", deterministic: bool = True, scoped: bool = False,
       **defaults):
    """Register the shape rule of op `name` (ONNX domain `domain`), with its attribute defaults.

    scoped: the op has subgraphs (If, Loop, Scan); its rule is also given `scope=`, a
    `workbench.ir.shapes.Scope` that infers a subgraph with the enclosing graph's Infos visible.
    """

    def register(rule: Callable) -> Callable:
        OPS[(domain, name)] = OpSpec(name, since, dict(defaults), rule, domain, rule.__doc__ or "",
                                     deterministic, scoped=scoped)
        return rule

    return register


def alias(name: str, of: str, since: int = 1, domain: str = "") -> None:
    """Register `name` with the same defaults and shape rule as the already registered `of`."""
    spec = OPS[("", of)]
    OPS[(domain, name)] = OpSpec(name, since, spec.defaults, spec.shape_rule, domain, spec.doc,
                                 spec.deterministic, scoped=spec.scoped)


def load_all() -> dict:
    """Import every op-definition module once; returns the registry."""
    import_modules("workbench.ir.opdefs")
    return OPS


def spec_for(op_type: str, domain: str = "") -> OpSpec | None:
    load_all()
    return OPS.get((_canonical_domain(domain), op_type))


def _canonical_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def attributes(spec: OpSpec, attrs: dict, where: str) -> dict:
    """The layer's attributes with the op's defaults filled in; an unknown attribute is an error."""
    unknown = set(attrs) - set(spec.defaults)
    if unknown:
        raise ValidationError(f"{where}: op {spec.name} has no attribute(s) {sorted(unknown)}; "
                              f"known: {sorted(spec.defaults)}")
    for name, value in attrs.items():
        kind = _KINDS.get(type(spec.defaults[name]))
        if kind is not None and value is not None and not isinstance(value, kind[0]):
            raise ValidationError(f"{where}: attribute {name!r} of {spec.name} must be {kind[1]}, got "
                                  f"{type(value).__name__} {str(value)[:40]!r}; the model is malformed")
    return {**spec.defaults, **attrs}


# An attribute whose default is an int, float or str must hold one (a file may give any type).
_KINDS = {int: (numbers.Integral, "an int"), float: (numbers.Real, "a number"), str: (str, "a string")}
