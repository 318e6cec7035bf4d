"""Planned activation memory for CUDA graphs: record one run's allocations, place them in one arena.

The runner runs the network once before capturing it. During that run a `Recorder` serves every
device allocation (kernel outputs, library results, temporaries) from a pool and notes its size and
when it was freed. `place` lays the allocations out like the builder's memory plan lays out tensors
(largest first, at the lowest offset free for its whole lifetime), and during the capture an `Arena`
hands the i-th allocation its planned place. The captured graph then holds one block of about the
planned activation size, instead of a pool that grew with the order of allocations and frees.

Capture repeats the recorded run exactly (same kernels, same shapes), so the sequence of sizes
repeats; should it ever differ, the arena stops placing and the pool serves the rest (correct, just
larger), and the runner says so. Used only when every kernel is captured: an uncaptured step keeps
its arguments alive beyond the recorded lifetimes.
"""
from __future__ import annotations

from ...builder.memory import _place
from .device import cp

ALIGNMENT = 512  # what CuPy's pool rounds to


def _device_id() -> int:
    """Given explicitly: without it CuPy asks the driver about each pointer (not during a capture)."""
    return int(cp.cuda.Device().id)


def _align(n: int) -> int:
    return -(-int(n) // ALIGNMENT) * ALIGNMENT


class _Lease:
    """The owner of one recorded allocation: it dies with the array's memory and notes the time."""

    __slots__ = ("recorder", "index", "block")

    def __init__(self, recorder, index: int, block):
        self.recorder, self.index, self.block = recorder, index, block

    def __del__(self):
        self.recorder.freed(self.index)


class Recorder:
    """An allocator (for `cupy.cuda.using_allocator`) that serves from `pool` and logs lifetimes."""

    def __init__(self, pool):
        self.pool = pool
        self.sizes: list = []
        self.born: list = []
        self.died: dict = {}
        self.clock = 0
        self.device = _device_id()

    def _tick(self) -> int:
        self.clock += 1
        return self.clock

    def malloc(self, nbytes: int):
        if nbytes <= 0:
            return self.pool.malloc(nbytes)
        index = len(self.sizes)
        block = self.pool.malloc(nbytes)
        self.sizes.append(int(nbytes))
        self.born.append(self._tick())
        memory = cp.cuda.UnownedMemory(block.ptr, nbytes, _Lease(self, index, block), self.device)
        return cp.cuda.MemoryPointer(memory, 0)

    def freed(self, index: int) -> None:
        self.died[index] = self._tick()

    def plan(self) -> "Plan":
        """Offsets for every recorded allocation; one still alive at the end lives to the end."""
        end = self.clock + 1
        sizes = {i: _align(n) for i, n in enumerate(self.sizes)}
        spans = {i: (self.born[i], self.died.get(i, end)) for i in sizes}
        offsets = {i: off for i, (off, _) in _place(sizes, spans).items()}
        arena = max((offsets[i] + sizes[i] for i in sizes), default=0)
        return Plan(list(self.sizes), [offsets[i] for i in range(len(self.sizes))], arena, sum(sizes.values()))


class Plan:
    """sizes[i] / offsets[i] of the i-th allocation; arena_bytes in all; naive_bytes without reuse."""

    def __init__(self, sizes: list, offsets: list, arena_bytes: int, naive_bytes: int):
        self.sizes, self.offsets, self.arena_bytes, self.naive_bytes = sizes, offsets, arena_bytes, naive_bytes


class Arena:
    """An allocator that hands the i-th allocation its planned place in one block from `pool`.

    diverged: the index of the first allocation that did not match the plan (then served by the pool).
    """

    def __init__(self, plan: Plan, pool):
        self.plan, self.pool = plan, pool
        self.block = pool.malloc(max(plan.arena_bytes, ALIGNMENT))
        self.next = 0
        self.diverged = None
        self.device = _device_id()

    @property
    def nbytes(self) -> int:
        return max(self.plan.arena_bytes, ALIGNMENT)

    def malloc(self, nbytes: int):
        if nbytes <= 0:
            return self.pool.malloc(nbytes)
        i, plan = self.next, self.plan
        self.next += 1
        if self.diverged is None and i < len(plan.sizes) and plan.sizes[i] == nbytes:
            memory = cp.cuda.UnownedMemory(self.block.ptr + plan.offsets[i], nbytes, self.block, self.device)
            return cp.cuda.MemoryPointer(memory, 0)
        if self.diverged is None:
            self.diverged = i
        return self.pool.malloc(nbytes)
