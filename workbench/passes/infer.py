"""Shape inference with small constant subgraphs evaluated on the CPU backend."""
from __future__ import annotations

import numpy as np

from ..backends.cpu.evaluate import evaluate_layer
from ..errors import UnsupportedError
from ..ir import dims
from ..ir.ops import Info, spec_for
from ..ir.shapes import PROPAGATE_LIMIT, infer_shapes, rule_and_attrs


def infer(net) -> dict:
    """Infer (and record in `net`) every tensor's dtype and shape; returns the Infos."""
    return infer_shapes(net, evaluate=evaluate_small)


def evaluate_small(layer, arrays: list) -> list:
    """Outputs of `layer` on constant `arrays`, when it is deterministic and its outputs are small.

    The op's shape rule is asked first, so that a tiny input cannot make a huge output
    (ConstantOfShape([100000, 100000]), Range(0, 1e12)) and random ops are never evaluated.
    Raising a WorkbenchError makes shape inference fall back on the shape rule alone.
    """
    spec = spec_for(layer.op, layer.domain)
    if spec is None or not spec.deterministic:
        raise UnsupportedError(f"layer {layer.name!r} ({layer.op}) is not evaluated at build time")
    predicted = predicted_outputs(layer, arrays)
    if any(p.shape is None or not dims.is_static(p.shape) or _elements(p.shape) > PROPAGATE_LIMIT
           for p in predicted):
        raise UnsupportedError(f"layer {layer.name!r} ({layer.op}): output too large or unknown to evaluate")
    return evaluate_layer(layer, arrays, [p.dtype for p in predicted])


def predicted_outputs(layer, arrays: list) -> list:
    """The shape rule's Infos for `layer` on constant inputs (UnsupportedError if the rule fails)."""
    rule, attrs = rule_and_attrs(layer)
    ins = [Info(np.asarray(a).dtype.name, tuple(np.shape(a)), a) if a is not None else None for a in arrays]
    try:
        outs = rule(*ins, **attrs)
    except (TypeError, ValueError, IndexError, KeyError, ArithmeticError) as e:
        raise UnsupportedError(f"layer {layer.name!r} ({layer.op}): {e}") from None
    return list(outs) if isinstance(outs, (list, tuple)) and not isinstance(outs, Info) else [outs]


def _elements(shape) -> int:
    return int(np.prod([int(d) for d in shape], dtype=np.int64))
