"""The memory planner: live tensors never share bytes, dead ones are reused, peak <= one buffer each."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.builder.memory import ALIGNMENT, _place, lifetimes, plan_memory

WIDTH = 256  # float32: 1 KiB per (1, WIDTH) tensor, a multiple of the alignment


def _chain(n: int, width: int = WIDTH):
    """x -> Relu -> Relu -> ... (n layers), static shapes."""
    net = wb.Network("chain")
    t = net.add_input("x", "float32", (1, width))
    for _ in range(n):
        t = net.add_activation(t, "Relu").output
    net.mark_output(t)
    return net


def _random_dag(seed: int, n: int = 25):
    """Add/Relu layers reading random earlier tensors; a few random outputs. Widths vary per tensor group."""
    rng = np.random.default_rng(seed)
    net = wb.Network("dag")
    tensors = [net.add_input("x", "float32", (int(rng.integers(1, 4)), 64))]
    for _ in range(n):
        if rng.random() < 0.5 and len(tensors) > 1:
            a, b = rng.choice(len(tensors), 2, replace=False)
            if net.tensors[tensors[a]].shape != net.tensors[tensors[b]].shape:
                b = a
            tensors.append(net.add_elementwise(tensors[a], tensors[b], "Add").output)
        else:
            tensors.append(net.add_activation(tensors[int(rng.integers(len(tensors)))], "Relu").output)
    for t in set(rng.choice(tensors[1:], 3)):
        net.mark_output(str(t))
    return net


def _plan(net):
    return plan_memory(net, {}, {})


def assert_no_live_overlap(offsets: dict, spans: dict) -> None:
    """No two tensors alive at the same step share a byte."""
    names = sorted(offsets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (oa, sa), (ob, sb) = offsets[a], offsets[b]
            (fa, la), (fb, lb) = spans[a], spans[b]
            if fa <= lb and fb <= la:
                assert oa + sa <= ob or ob + sb <= oa, (a, offsets[a], spans[a], b, offsets[b], spans[b])


def test_a_chain_reuses_two_buffers():
    plan = _plan(_chain(10))
    assert len(plan.offsets) == 9  # the last Relu writes the graph output: the user's buffer
    assert plan.naive_bytes == 9 * 4 * WIDTH
    assert plan.arena_bytes == 2 * 4 * WIDTH  # each layer reads one buffer and writes the other
    assert len({off for off, _ in plan.offsets.values()}) == 2


def test_chain_lifetimes_end_at_the_reader():
    net = _chain(3)
    spans = lifetimes(net)
    first, second, last = (layer.output for layer in net.layers)
    assert spans[first] == (0, 1) and spans[second] == (1, 2)
    assert spans[last] == (2, 3)  # a graph output lives to the end


def test_inputs_and_outputs_are_not_in_the_arena():
    net = _chain(4)
    plan = _plan(net)
    assert "x" not in plan.offsets and net.outputs[0] not in plan.offsets
    assert plan.io_bytes == 2 * 4 * WIDTH


def test_offsets_are_aligned_and_sizes_rounded_up():
    plan = _plan(_chain(5, width=3))  # 12-byte tensors
    assert all(off % ALIGNMENT == 0 and size == ALIGNMENT for off, size in plan.offsets.values())


def test_symbolic_shapes_are_reported_unsized():
    net = wb.Network("dyn")
    t = net.add_input("x", "float32", ("batch", 4))
    for _ in range(3):
        t = net.add_activation(t, "Relu").output
    net.mark_output(t)
    plan = _plan(net)
    assert plan.offsets == {} and len(plan.unsized) == 3


@pytest.mark.parametrize("seed", range(12))
def test_random_networks_never_overlap_live_tensors(seed):
    net = _random_dag(seed)
    plan = _plan(net)
    assert_no_live_overlap(plan.offsets, lifetimes(net))
    assert plan.arena_bytes <= plan.naive_bytes
    assert plan.arena_bytes >= max(size for _, size in plan.offsets.values())


def test_a_built_engine_plans_at_the_largest_profile():
    engine = wb.build(_chain(6), wb.BuilderConfig(device="cpu"))
    assert engine.memory.arena_bytes == 2 * 4 * WIDTH
    assert engine.memory.arena_bytes <= engine.memory.naive_bytes


spans_and_sizes = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 8), st.integers(1, 8)), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(spans_and_sizes)
def test_placement_property(items):
    """For any lifetimes and sizes: live tensors are disjoint, and the peak never exceeds the naive sum."""
    spans = {f"t{i}": (first, first + length) for i, (first, length, _) in enumerate(items)}
    sizes = {f"t{i}": units * ALIGNMENT for i, (_, _, units) in enumerate(items)}
    offsets = _place(sizes, spans)
    assert offsets.keys() == sizes.keys()
    assert all(offsets[n][1] == sizes[n] and offsets[n][0] >= 0 for n in sizes)
    assert_no_live_overlap(offsets, spans)
    peak = max(o + s for o, s in offsets.values())
    assert peak <= sum(sizes.values())
    # No placement can beat the bytes alive at the busiest step.
    steps = range(min(f for f, _ in spans.values()), max(last for _, last in spans.values()) + 1)
    assert peak >= max(sum(sizes[n] for n, (f, last) in spans.items() if f <= s <= last) for s in steps)
