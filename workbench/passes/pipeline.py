"""The builder's optimization pipeline: which passes run, in which order."""
from __future__ import annotations

from .infer import infer
from .manager import run_passes

PASSES: list = []


def optimize(net):
    """The optimized copy of `net` and the log of passes that changed it; shapes re-inferred."""
    net, log = run_passes(net, PASSES)
    infer(net)
    return net, log
