"""The memory planner: activation buffers placed in one arena, reused once their tensor is dead.

Greedy by size: the largest tensors are placed first, each at the lowest offset that does not
overlap a tensor alive at the same time. Graph inputs and outputs are the user's buffers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..dtypes import itemsize

ALIGNMENT = 256  # bytes: what cudaMalloc guarantees, so every buffer suits vectorised kernels


@dataclass
class MemoryPlan:
    offsets: dict = field(default_factory=dict)  # tensor -> (offset, nbytes)
    arena_bytes: int = 0        # peak activation memory with reuse
    naive_bytes: int = 0        # what one buffer per tensor would take
    weight_bytes: int = 0
    io_bytes: int = 0
    unsized: list = field(default_factory=list)  # tensors whose size was not known at build time
    shapes: dict = field(default_factory=dict)  # input shapes the plan was made for

    def to_dict(self) -> dict:
        return asdict(self)


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def lifetimes(net) -> dict:
    """tensor -> (first step, last step) over the layer order, for tensors written by layers."""
    span = {}
    for step, layer in enumerate(net.layers):
        for name in layer.outputs:
            if name:
                span[name] = [step, step]
        for name in layer.reads():  # a subgraph's outer reads keep a tensor alive as well
            if name in span:
                span[name][1] = step
    for name in net.outputs:
        if name in span:
            span[name][1] = len(net.layers)
    return {k: tuple(v) for k, v in span.items()}


def tensor_bytes(shape, dtype: str):
    if shape is None or not all(isinstance(d, (int, np.integer)) for d in shape):
        return None
    return int(np.prod(shape, dtype=np.int64)) * itemsize(dtype)


def plan_memory(net, storage_dtypes: dict, input_shapes: dict | None = None) -> MemoryPlan:
    """Place every activation of `net` (shapes already concrete) in an arena; report the sizes."""
    io = set(net.inputs) | set(net.outputs)
    spans = lifetimes(net)
    sizes, unsized = {}, []
    for name in spans:
        t = net.tensors[name]
        n = tensor_bytes(t.shape, storage_dtypes.get(name, t.dtype))
        if n is None:
            unsized.append(name)
        elif name not in io:
            sizes[name] = _align(max(n, 1))
    offsets = _place(sizes, spans)
    arena = max((off + size for off, size in offsets.values()), default=0)
    io_bytes = sum(tensor_bytes(net.tensors[n].shape, net.tensors[n].dtype) or 0 for n in io)
    weights = sum(np.asarray(w).nbytes for w in net.weights.values())
    return MemoryPlan(offsets, arena, sum(sizes.values()), int(weights), int(io_bytes), unsized,
                      {k: list(v) for k, v in (input_shapes or {}).items()})


def _place(sizes: dict, spans: dict) -> dict:
    placed: list = []  # (offset, size) in placement order
    alive: dict = {}   # step -> indices into `placed` of the tensors alive at that step
    offsets = {}
    for name in sorted(sizes, key=lambda n: (-sizes[n], spans[n])):
        size, (first, last) = sizes[name], spans[name]
        # only tensors alive at one of this tensor's steps clash: found by step, not by scanning all
        # placed tensors, so a 100k-layer chain plans in linear time
        clashes = sorted({placed[k] for step in range(first, last + 1) for k in alive.get(step, ())})
        offset = 0
        for o, s in clashes:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        for step in range(first, last + 1):
            alive.setdefault(step, []).append(len(placed))
        placed.append((offset, size))
        offsets[name] = (offset, size)
    return offsets
