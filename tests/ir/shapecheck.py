"""Helpers for shape-rule tests: run a rule on symbolic Infos and compare with the CPU kernel."""
from __future__ import annotations

import numpy as np

from workbench.backends.cpu.registry import kernel_for
from workbench.ir import dims
from workbench.ir.ops import Info, attributes, spec_for


def infer(op: str, *infos, **attrs) -> list:
    """The rule's output Infos as a list (attributes completed with the op's defaults)."""
    spec = spec_for(op)
    out = spec.shape_rule(*infos, **attributes(spec, attrs, op))
    return [out] if isinstance(out, Info) else list(out)


def agrees(op: str, arrays: list, symbolic: list, bindings: dict, **attrs) -> list:
    """Assert the rule, fed `symbolic` shapes, predicts the kernel's outputs once `bindings` apply.

    arrays: concrete inputs (None for omitted); symbolic: the shape the rule sees for each
    (None: use the array's own shape). Returns the predicted Infos.
    """
    infos = [None if a is None else Info(np.asarray(a).dtype.name, tuple(s if s is not None else a.shape))
             for a, s in zip(arrays, symbolic)]
    predicted = infer(op, *infos, **attrs)
    spec = spec_for(op)
    got = kernel_for(op)(*arrays, **attributes(spec, attrs, op))
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    for p, g in zip(predicted, got):
        assert p.dtype == g.dtype.name, f"{op}: rule dtype {p.dtype}, kernel {g.dtype}"
        assert dims.substitute(p.shape, bindings) == g.shape, \
            f"{op}: rule {p.shape} under {bindings} is not the kernel's {g.shape}"
    return predicted
