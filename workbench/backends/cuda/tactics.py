"""The tactic registry: named implementations of ops, each with the precisions it takes and its candidates.

    @tactic("cudnn", ops=CONV_OPS, precisions=("fp32", "tf32", "fp16", "bf16"), rank=10)
    class Cudnn:
        def check(site): return None or "why it does not apply"
        def candidates(site, level): return [{"plan": 0}, {"plan": 1}]    # recipes: JSON data
        def prepare(site, params, dev): return Kernel(fn, workspace=bytes)

A recipe (the params dict) is all a plan stores about a tactic: loading rebuilds the kernel from it
with workbench's own code, so a plan never carries code. Lower rank = preferred when not timing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

ALL_PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
FLOAT_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
# How many cuDNN / cuBLASLt plans each builder_optimization_level tries per layer.
PLANS_PER_LEVEL = {0: 1, 1: 1, 2: 2, 3: 3, 4: 6, 5: 64}
EXHAUSTIVE_LEVEL = 4  # from this builder_optimization_level on, "fallback" variants are timed too


class Kernel:
    """A prepared tactic: call it with the layer's arguments, get its outputs.

    graph_safe: False when it cannot be captured into a CUDA graph (host round trips, syncs).
    workspace: device bytes it needs besides its outputs.
    """

    __slots__ = ("fn", "graph_safe", "workspace", "label")

    def __init__(self, fn: Callable, graph_safe: bool = True, workspace: int = 0, label: str = ""):
        self.fn, self.graph_safe, self.workspace, self.label = fn, graph_safe, int(workspace), label

    def __call__(self, args: list) -> list:
        return self.fn(args)


@dataclass(frozen=True)
class Tactic:
    name: str
    ops: frozenset | None  # {(domain, op)}; None: every op
    precisions: tuple
    rank: int
    impl: type

    def applies(self, site) -> str | None:
        if self.ops is not None and (_domain(site.domain), site.op) not in self.ops:
            return "op not handled"
        if site.precision not in self.precisions:
            return f"precision {site.precision} not handled"
        check = getattr(self.impl, "check", None)
        return check(site) if check else None

    def candidates(self, site, level: int) -> list:
        fn = getattr(self.impl, "candidates", None)
        return fn(site, level) if fn else [{}]

    def prepare(self, site, params: dict, dev) -> Kernel:
        kernel = self.impl.prepare(site, params, dev)
        if params.get("graph_safe") is False:  # the build saw its capture fail: run it between graphs
            kernel.graph_safe = False
        return kernel


TACTICS: dict[str, Tactic] = {}


def _domain(d: str) -> str:
    return "" if d in ("", "ai.onnx") else d


def ops(*names: str, domain: str = "") -> frozenset:
    return frozenset((domain, n) for n in names)


def tactic(name: str, ops=None, precisions=FLOAT_PRECISIONS, rank: int = 50):
    """Register a tactic class (static methods check / candidates / prepare)."""

    def register(impl):
        TACTICS[name] = Tactic(name, ops, tuple(precisions), rank, impl)
        return impl

    return register


def load_all() -> dict:
    """Import every tactic module once (registration happens at import)."""
    from . import attention, conv, gemm, generic, pointwise, pool, quantized, rows  # noqa: F401

    return TACTICS


def candidates_for(site, level: int) -> tuple[list, dict]:
    """([(tactic, params)] in rank order, {tactic name: why excluded}) for a site."""
    load_all()
    out, excluded = [], {}
    for t in sorted(TACTICS.values(), key=lambda t: (t.rank, t.name)):
        try:
            why = t.applies(site)
        except Exception as e:  # noqa: BLE001 - a broken check excludes its tactic, never the build
            why = f"check failed: {type(e).__name__}: {e}"
        if why is not None:
            if why != "op not handled":
                excluded[t.name] = why
            continue
        out.extend((t, dict(p)) for p in t.candidates(site, level))
    return out, excluded


_BOOKKEEPING = ("fallback", "graph_safe")  # params that say how a candidate is treated, not what it is


def label(tactic_name: str, params: dict) -> str:
    """A short readable name for one candidate, e.g. 'cudnn[plan=1]': every param that tells candidates
    apart (reports key their timings by it)."""
    shown = {k: v for k, v in params.items() if k not in _BOOKKEEPING}
    return tactic_name + (f"[{','.join(f'{k}={v}' for k, v in sorted(shown.items()))}]" if shown else "")
