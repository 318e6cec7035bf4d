"""Shape inference with small constant subgraphs evaluated on the CPU backend."""
from __future__ import annotations

from ..backends.cpu.evaluate import evaluate_layer
from ..ir.shapes import infer_shapes


def infer(net) -> dict:
    """Infer (and record in `net`) every tensor's dtype and shape; returns the Infos."""
    return infer_shapes(net, evaluate=evaluate_layer)
