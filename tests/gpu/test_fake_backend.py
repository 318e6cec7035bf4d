"""The cuda backend's orchestration (search, timing cache, runner, fallbacks) on a NumPy stand-in for CuPy.

Runs without a GPU: the stand-in cannot compile kernels or capture graphs, so this checks the paths
that must always work (generic / host tactics, eager runs, recipes in the plan, cache reuse). On a
machine with a real GPU the real tests in this folder cover the rest, so this module is skipped there
(it swaps modules in sys.modules, which must not disturb them).
"""
from __future__ import annotations

import importlib
import re
import sys

import numpy as np
import pytest

from workbench.backends import cuda_available

pytestmark = pytest.mark.skipif(cuda_available(), reason="a real GPU is present: the real tests run instead")


@pytest.fixture()
def fake_cuda(monkeypatch, tmp_path):
    """The cuda backend imported against tests/gpu/fakecupy.py; removed again afterwards."""
    from tests.gpu import fakecupy

    for name in [m for m in sys.modules if m.startswith("workbench.backends.cuda")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cupy", fakecupy)
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path))
    backend = importlib.import_module("workbench.backends.cuda.backend")
    import workbench.backends as backends

    monkeypatch.setattr(backends, "cuda_available", lambda: True)
    yield backend
    for name in [m for m in sys.modules if m.startswith("workbench.backends.cuda")]:
        sys.modules.pop(name, None)


def _net():
    from workbench.ir.network import Network

    net = Network("tiny")
    x = net.add_input("x", "float32", ("batch", 8))
    w = net.add_constant(np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32), "w")
    a = net.add_layer("Add", [x, w]).output
    r = net.add_layer("Relu", [a]).output
    net.mark_output(r)
    return net


def _expected(net, x):
    return np.maximum(x + net.weights["w"], 0)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_build_and_run_on_the_fallback_tactics(fake_cuda, tmp_path, precision):
    import workbench as wb

    net = _net()
    cfg = wb.BuilderConfig(device="cuda", precision=precision, max_batch=4, timing_cache=str(tmp_path / "t.json"))
    engine = wb.build(net, cfg)
    assert engine.backend == "cuda"
    assert set(engine.tactics.values()) <= {"generic", "host"}
    assert "nvrtc" in str(engine.report["excluded"])  # NVRTC failed in the fake: dropped with a reason
    assert "timing failed" not in str(engine.report["excluded"])
    assert all("generic" in t for t in engine.report["timings"].values())
    assert engine.tactic_params.keys() == engine.tactics.keys()
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    ctx = engine.create_execution_context()
    out = ctx.execute({"x": x})["relu_out"]
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    tol = {"fp32": 1e-6, "fp16": 1e-2, "bf16": 2e-2}[precision]
    np.testing.assert_allclose(out, _expected(net, x), rtol=tol, atol=tol)
    again = ctx.execute({"x": x})["relu_out"]  # second run at a shape: would capture; the fake cannot
    np.testing.assert_array_equal(out, again)


def test_device_inputs_give_device_outputs_and_profile(fake_cuda, tmp_path):
    import workbench as wb
    from tests.gpu import fakecupy

    engine = wb.build(_net(), wb.BuilderConfig(device="cuda", max_batch=2, timing_cache=str(tmp_path / "t.json")))
    runner = engine.create_execution_context()._runner
    x = np.ones((2, 8), np.float32)
    out = runner.run({"x": fakecupy.asarray(x)})["relu_out"]
    assert isinstance(out, fakecupy.ndarray)
    rows = runner.profile({"x": x}, runs=2)
    assert [r["layer"] for r in rows] == [l.name for l in engine.network.layers]
    assert all(r["ms"] >= 0 for r in rows)
    mem = runner.memory()
    assert {"weights_bytes", "activations_bytes", "workspace_bytes"} <= set(mem)


def test_timing_cache_makes_the_rebuild_reuse_decisions(fake_cuda, tmp_path):
    import workbench as wb

    cache = tmp_path / "timing.json"
    cfg = wb.BuilderConfig(device="cuda", max_batch=2, timing_cache=str(cache))
    first = wb.build(_net(), cfg)
    assert cache.exists()
    second = wb.build(_net(), cfg)
    assert second.tactics == first.tactics
    assert any("from the timing cache" in n and " 0 from" not in n for n in second.report["notes"])


def test_a_plan_round_trips_and_runs(fake_cuda, tmp_path):
    import workbench as wb

    engine = wb.build(_net(), wb.BuilderConfig(device="cuda", max_batch=2, timing_cache=str(tmp_path / "t.json")))
    path = tmp_path / "m.plan"
    engine.save(path)
    loaded = wb.load_plan(path)
    x = np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)
    a = engine.create_execution_context().execute({"x": x})["relu_out"]
    b = loaded.create_execution_context().execute({"x": x})["relu_out"]
    np.testing.assert_array_equal(a, b)


def test_an_unknown_tactic_in_a_plan_falls_back(fake_cuda, tmp_path):
    import workbench as wb

    engine = wb.build(_net(), wb.BuilderConfig(device="cuda", max_batch=2, timing_cache=str(tmp_path / "t.json")))
    engine.tactics = {k: "from-the-future" for k in engine.tactics}
    x = np.random.default_rng(3).standard_normal((2, 8)).astype(np.float32)
    out = engine.create_execution_context().execute({"x": x})["relu_out"]
    np.testing.assert_allclose(out, _expected(engine.network, x), rtol=1e-6)


def test_level_zero_does_not_time(fake_cuda, tmp_path):
    import workbench as wb

    cfg = wb.BuilderConfig(device="cuda", max_batch=2, builder_optimization_level=0,
                           timing_cache=str(tmp_path / "t.json"))
    engine = wb.build(_net(), cfg)
    assert not engine.report["timings"]


def test_pointwise_source_is_a_function_of_the_recipe(fake_cuda):
    from workbench.backends.cuda import pointwise

    recipe = {"expr": ["act", "Relu", None, None, ["bin", "Add", ["in", 0], ["in", 1]]],
              "inputs": ["float16", "float32"], "output": "float16", "round": "fp16"}
    ins, outs, op, name, _ = pointwise.source(recipe)
    assert ins == "float16 in0, float32 in1" and outs == "float16 out0"
    assert "wb_half((float)in1)" in op and op.endswith("out0 = (float16)(((t0 < (float)0 ? (float)0 : t0)));")
    assert pointwise.source(dict(recipe))[3] == name
    assert pointwise.source(dict(recipe, output="float32"))[3] != name


@pytest.mark.parametrize("auto_pad,pads,expect", [
    ("NOTSET", [1, 1, 1, 1], ((1, 1), (1, 1), 8, 8)),
    ("SAME_UPPER", None, ((0, 0), (1, 1), 4, 4)),
    ("SAME_LOWER", None, ((1, 1), (0, 0), 4, 4)),
    ("VALID", None, ((0, 0), (0, 0), 3, 3)),
])
def test_conv_geometry_follows_onnx_auto_pad(fake_cuda, auto_pad, pads, expect):
    from workbench.backends.cuda.conv import geometry
    from workbench.backends.cuda.site import Site

    stride = [1, 1] if auto_pad == "NOTSET" else [2, 2]
    attrs = {"auto_pad": auto_pad, "pads": pads, "strides": stride, "dilations": None, "group": 1,
             "kernel_shape": None}
    site = Site("Conv", "", attrs, "fp32", (((1, 3, 8, 8), "float32", "device"), ((4, 3, 3, 3), "float32", "device")),
                (False, True), ("float32",))
    g = geometry(site)
    assert (g.pad_begin, g.pad_end, g.p, g.q) == expect


def test_attention_builds_and_runs_on_the_fallbacks(fake_cuda, tmp_path):
    import workbench as wb
    from tests.passes.test_fuse_attention import _attention_net, _feeds

    net = _attention_net()
    engine = wb.build(net, wb.BuilderConfig(device="cuda", timing_cache=str(tmp_path / "t.json")))
    assert "FusedAttention" in [layer.op for layer in engine.network.layers]
    assert "sdpa" in str(engine.report["excluded"]) or "attn-bmm" in str(engine.report["excluded"])
    feeds = _feeds(net)
    want = wb.build(net, wb.BuilderConfig(device="cpu")).create_execution_context().execute(feeds)
    got = engine.create_execution_context().execute(feeds)
    name = net.outputs[0]
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mask,mode,dims,strides", [
    ((2, 1, 1, 128), "stride0", [2, 1, 128, 128], [128, 128, 0, 1]),
    ((2, 1, 1, 128), "full", [2, 1, 128, 128], [16384, 16384, 128, 1]),
    ((1, 128), "stride0", [1, 1, 128, 128], [128, 128, 0, 1]),
    ((2, 12, 128, 128), "stride0", [2, 12, 128, 128], [196608, 16384, 128, 1]),
])
def test_sdpa_reads_the_mask_as_a_broadcast_bias(fake_cuda, mask, mode, dims, strides):
    from workbench.backends.cuda.attention import Geometry, bias_layout
    from workbench.backends.cuda.site import Site

    inputs = tuple(((2, 128, 768), "float16", "device") for _ in range(3)) + ((mask, "float16", "device"),)
    site = Site("FusedAttention", "workbench", {"num_heads": 12, "scale": 8.0, "scale_op": "Div"}, "fp16", inputs,
                (False,) * 4, ("float16",))
    g = Geometry(site)
    assert (g.b, g.h, g.sq, g.skv, g.d, g.dv, g.mult) == (2, 12, 128, 128, 64, 64, 0.125)
    assert bias_layout(g, mode) == (dims, strides)


class _CountingPool:
    """Hands out distinct fake addresses, like a pool that never reuses (what the recording needs)."""

    def __init__(self):
        self.next = 1 << 20

    def malloc(self, n):
        import types

        self.next += max(n, 1) + 4096
        return types.SimpleNamespace(ptr=self.next, size=n)


def _run_program(alloc, program):
    """Allocate and free as `program` says: [("a", name, bytes) | ("f", name)]; {name: pointer}."""
    live, seen = {}, {}
    for step in program:
        if step[0] == "a":
            live[step[1]] = alloc(step[2])
            seen[step[1]] = live[step[1]].ptr
        else:
            del live[step[1]]
    return seen


def test_arena_places_recorded_allocations_without_overlapping_live_ones(fake_cuda):
    from workbench.backends.cuda.arena import Arena, Recorder

    program = [("a", "x", 1000), ("a", "tmp", 5000), ("f", "tmp"), ("a", "y", 3000), ("f", "x"),
               ("a", "z", 1000), ("a", "w", 4000), ("f", "y"), ("f", "z")]
    pool = _CountingPool()
    recorder = Recorder(pool)
    _run_program(recorder.malloc, program)  # "w" lives to the end, like a graph output
    plan = recorder.plan()
    assert len(plan.sizes) == 5 and plan.arena_bytes < plan.naive_bytes
    arena = Arena(plan, pool)
    ptrs = _run_program(arena.malloc, program)
    assert arena.diverged is None
    base = arena.block.ptr
    spans = {"x": (0, 4), "tmp": (1, 2), "y": (3, 7), "z": (5, 8), "w": (6, 99)}
    size = dict((s[1], s[2]) for s in program if s[0] == "a")
    for a in spans:
        assert base <= ptrs[a] and ptrs[a] + size[a] <= base + arena.nbytes
        for b in spans:
            live_together = a < b and spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]
            if live_together:
                assert ptrs[a] + size[a] <= ptrs[b] or ptrs[b] + size[b] <= ptrs[a], (a, b)


def test_arena_hands_over_to_the_pool_when_the_run_differs(fake_cuda):
    from workbench.backends.cuda.arena import Arena, Recorder

    pool = _CountingPool()
    recorder = Recorder(pool)
    _run_program(recorder.malloc, [("a", "x", 1000), ("a", "y", 2000), ("f", "x"), ("f", "y")])
    arena = Arena(recorder.plan(), pool)
    ptrs = _run_program(arena.malloc, [("a", "x", 1000), ("a", "y", 2048), ("a", "z", 8)])
    assert arena.diverged == 1
    assert not arena.block.ptr <= ptrs["y"] < arena.block.ptr + arena.nbytes


# ---- the build's comparison of a candidate with its reference (site.mismatch), on NumPy arrays
def _mismatch(got, want):
    site = importlib.import_module("workbench.backends.cuda.site")
    return site.mismatch([got], [want], "int8")


def _grid(rng, n=100_000):
    return rng.integers(-127, 128, n).astype(np.int8)


def test_grid_integers_may_move_a_few_values_by_one_step(fake_cuda):
    rng = np.random.default_rng()
    want = _grid(rng)
    got = want.copy()
    flip = rng.random(want.size) < 0.02
    got[flip] = np.clip(got[flip].astype(np.int16) + rng.choice([-1, 1], int(flip.sum())), -128, 127)
    assert _mismatch(got, want) is None


def test_grid_integers_two_steps_off_fail(fake_cuda):
    rng = np.random.default_rng()
    want = _grid(rng)
    got = want.copy()
    i = int(np.argmin(np.abs(want.astype(np.int16))))
    got[i] = want[i] + 2
    why = _mismatch(got, want)
    assert why is not None and "2 steps" in why


def test_grid_integers_moved_everywhere_fail(fake_cuda):
    rng = np.random.default_rng()
    want = _grid(rng) // 8  # small values: one step is a large relative change
    why = _mismatch((want + 1).astype(np.int8), want)
    assert why is not None and "relative L2" in why


def test_float_outputs_keep_the_int8_tolerance(fake_cuda):
    want = np.random.default_rng().standard_normal(10_000).astype(np.float32)
    assert _mismatch(want * np.float32(1 + 5e-4), want) is None
    assert _mismatch(want * np.float32(1 + 5e-3), want) is not None


def test_a_device_releases_its_library_handles_once(fake_cuda):
    import gc

    device = importlib.import_module("workbench.backends.cuda.device")
    released = []
    dev = device.Device()
    dev.on_close(lambda: released.append("closed"))
    dev.close()
    dev.close()
    assert released == ["closed"]
    dropped = device.Device()
    dropped.on_close(lambda: released.append("collected"))
    dropped.memo["cycle"] = dropped  # kernels and plans refer back to their device
    del dropped
    gc.collect()
    assert released == ["closed", "collected"]


def test_stream_kernel_sources_keep_their_own_names_apart(fake_cuda):
    stream = importlib.import_module("workbench.backends.cuda.stream")
    ins, outs = stream._params("float16 x, float32 unit, float32 r"), stream._params("int8 y")
    name, code = stream.source(ins, outs, "y = (signed char)((float)x * unit + r);", "k", "", (False, True, False))
    assert name == "k_sfcf" and "const float unit = unit_p[wb_col];" in code and "const float r = wb_r[wb_u];" in code
    assert "wb_r[wb_u] = r_p[wb_i[wb_u]];" in code and "wb_x[wb_u] = x_p[wb_i[wb_u]];" in code
    with pytest.raises(ValueError, match="rows"):
        stream.source(stream._params("float32 rows"), outs, "y = 0;", "k", "", (False,))


@pytest.mark.parametrize("major,optin,why,largest", [
    (9, 227 << 10, None, 112 << 10),   # Hopper: the kernel's own cap
    (8, 99 << 10, None, 99 << 10),     # consumer Ampere / Ada: what the device offers
    (7, 64 << 10, "compute capability 8.0", None),
])
def test_the_int8_kernel_fits_the_device(fake_cuda, monkeypatch, major, optin, why, largest):
    """Configurations follow the device's shared memory; pre-Ampere devices are refused with the reason."""
    from tests.gpu import fakecupy

    imma = importlib.import_module("workbench.backends.cuda.imma")
    props = {"name": b"FakeGPU", "major": major, "minor": 0, "sharedMemPerBlockOptin": optin}
    monkeypatch.setattr(fakecupy.cuda.runtime, "getDeviceProperties", lambda i: props)
    imma._device.cache_clear()
    try:
        reason = imma.fits(1024, 1024, "float16", "float16")
        assert (reason is None) if why is None else (why in reason)
        if largest is not None:
            found = imma.configs(1024, 1024, "float16", "float16")
            assert found and all(imma.layout(*c, "float16", "float16")["bytes"] <= largest for c in found)
        assert imma.forms() == {9: ["wgmma", "sync"], 8: ["sync"], 7: []}[major]
        assert (imma.missing("wgmma") is None) == (major == 9)
    finally:
        imma._device.cache_clear()


@pytest.mark.parametrize("tile,n", [((128, 128), 128), ((128, 64), 64), ((64, 128), 64), ((64, 64), 32), ((64, 256), 128),
                                    ((256, 128), 128)])
def test_wgmma_source_takes_one_instruction_shape_per_tile(fake_cuda, tile, n):
    """A warpgroup holds 64 rows and the tile's columns split between the warpgroups left over; the
    operands' K slices are unpadded (core matrices), so a wgmma stage takes less shared memory."""
    imma = importlib.import_module("workbench.backends.cuda.imma")
    _, code = imma.source(["y = (float)acc;"], (), None, "float16", *tile, 3, mma="wgmma")
    shapes = set(re.findall(r'wgmma\.mma_async\.sync\.aligned\.m64n(\d+)k32\." WB_MMA_TYPES', code))
    assert shapes == {str(n)} and '#define WB_MMA_TYPES "s32.s8.s8"' in code
    assert f"accs[0][{n // 8 - 1}][3]" in code and f"accs[0][{n // 8}][0]" not in code
    assert "fence.proxy.async" in code and "ldmatrix" not in code.split("extern \"C\"")[1]
    wg, sync = imma.layout(*tile, 3, "float16", None, "wgmma"), imma.layout(*tile, 3, "float16")
    assert wg["bytes"] <= sync["bytes"]
    # two slots hold K whole or not at all: no pipelined loop (it would overwrite a slot being read)
    _, resident = imma.source(["y = (float)acc;"], (), None, "float16", *tile, 2, mma="wgmma", whole=True)
    with pytest.raises(ValueError, match="at least 3 slots"):
        imma.source(["y = (float)acc;"], (), None, "float16", *tile, 2, mma="wgmma")
    assert "wgmma.wait_group.sync.aligned 1;" in code and "wgmma.wait_group.sync.aligned 1;" not in resident


@pytest.mark.parametrize("k,depths", [(64, [1]), (200, [4]), (256, [4]), (320, [5, 4, 3]), (3072, [5, 4, 3])])
def test_wgmma_holds_short_k_whole(fake_cuda, k, depths):
    """Slots for every slice where K has fewer than five; deeper K is pipelined through 3 to 5 slots."""
    imma = importlib.import_module("workbench.backends.cuda.imma")

    assert list(imma.stage_range(k, "wgmma")) == depths


def _conv_site(kernel: int, channels: int):
    """A QLinearConvFused site (int8, 64 outputs over 8x8 pixels) built on the fake device."""
    from tests.gpu import fakecupy
    from workbench.backends.cuda import tactics
    from workbench.backends.cuda.site import make_site
    from workbench.ir.network import Layer
    from workbench.ir.opdefs.fused import ACTIVATION_ATTRS, CONV_ATTRS
    from workbench.ir.opdefs.quantized import QUANT_ATTRS

    tactics.load_all()
    attrs = dict(QUANT_ATTRS, **ACTIVATION_ATTRS, **CONV_ATTRS)
    attrs.update(x_scale=0.05, x_dtype="int8", x_zero_point=0, w_scale=[0.01] * 64, activation="Relu",
                 kernel_shape=[kernel] * 2, strides=[1, 1], pads=[kernel // 2] * 4, dilations=[1, 1], group=1,
                 y_scale=0.5, y_zero_point=0, y_dtype="int8", y_quantized=1)
    args = [fakecupy.asarray(np.ones((2, channels, 8, 8), np.int8)),
            fakecupy.asarray(np.ones((64, channels, kernel, kernel), np.int8)), fakecupy.asarray(np.ones(64, np.int32))]
    layer = Layer("t", "QLinearConvFused", ["x", "w", "b"], ["y"], attrs, "workbench")
    return tactics.TACTICS, make_site(layer, attrs, args, "int8", ["int8"], {"w", "b"}, 21)


@pytest.mark.parametrize("kernel,channels,level,forms", [
    (3, 64, 3, {"wgmma"}),           # 16k channels: cuDNN's int8 engines beat mma.sync there, not wgmma
    (3, 64, 4, {"wgmma", "sync"}),   # the exhaustive level times everything
    (3, 8, 3, {"wgmma", "sync"}),    # channels cuDNN takes badly: both forms
])
def test_implicit_conv_candidates_follow_the_main_loop_forms(fake_cuda, kernel, channels, level, forms):
    found, site = _conv_site(kernel, channels)
    cands = found["int8-implicit"].candidates(site, level)
    assert cands and {c["mma"] for c in cands} == forms


def test_pointwise_candidates_keep_two_sync_tiles_beside_wgmma(fake_cuda):
    found, site = _conv_site(1, 64)
    cands = found["int8-mma"].candidates(site, 3)
    assert [c["mma"] for c in cands].count("sync") == 2 and cands[0]["mma"] == "wgmma"


def test_a_wgmma_plan_on_an_older_card_says_why(fake_cuda, monkeypatch):
    """A plan made on Hopper names the wgmma form; elsewhere preparing it fails with the reason (the runner
    then falls back to the tactic's default, mma.sync), before anything is compiled."""
    from tests.gpu import fakecupy

    imma = importlib.import_module("workbench.backends.cuda.imma")
    device = importlib.import_module("workbench.backends.cuda.device")
    found, site = _conv_site(1, 64)
    props = {"name": b"FakeGPU", "major": 8, "minor": 0, "sharedMemPerBlockOptin": 163 << 10}
    monkeypatch.setattr(fakecupy.cuda.runtime, "getDeviceProperties", lambda i: props)
    imma._device.cache_clear()
    dev = device.Device(device.Shared({}))
    try:
        with pytest.raises(ValueError, match="wgmma needs compute capability 9.0"):
            found["int8-mma"].prepare(site, {"tile": [64, 128], "stages": 1, "mma": "wgmma"}, dev)
        with pytest.raises(ValueError, match="unknown main-loop form"):
            found["int8-mma"].prepare(site, {"mma": "tcgen05"}, dev)
    finally:
        dev.close()
        imma._device.cache_clear()


class _FakeNvrtc:
    """What archcode needs of cupy_backends' NVRTC bindings, counting compiles; `bad` sources fail."""

    class NVRTCError(Exception):
        pass

    def __init__(self):
        self.compiles = []

    @staticmethod
    def getVersion():
        return (13, 0)

    @staticmethod
    def createProgram(src, name, headers, include_names):
        return {"src": src}

    def compileProgram(self, prog, options):
        self.compiles.append(options)
        if "bad" in prog["src"]:
            raise self.NVRTCError("NVRTC_ERROR_COMPILATION")

    @staticmethod
    def getCUBIN(prog):
        return b"cubin:" + prog["src"].encode()

    @staticmethod
    def getProgramLog(prog):
        return "error: expected a ';'"

    @staticmethod
    def destroyProgram(prog):
        pass


def test_arch_kernels_compile_once_into_the_cache(fake_cuda, monkeypatch, tmp_path):
    """sm_90a code goes to NVRTC with the target; a second request reads the cached cubin; a cache folder
    that cannot be written costs a compile, not the kernel; a compile error carries NVRTC's log."""
    archcode = importlib.import_module("workbench.backends.cuda.archcode")
    nvrtc = _FakeNvrtc()
    monkeypatch.setattr(archcode, "_nvrtc", lambda: nvrtc)
    monkeypatch.setenv("CUPY_CACHE_DIR", str(tmp_path / "kernels"))
    assert archcode.cubin("k1", "wb_k1", "sm_90a") == b"cubin:k1"
    assert archcode.cubin("k1", "wb_k1", "sm_90a") == b"cubin:k1"
    assert len(nvrtc.compiles) == 1 and "--gpu-architecture=sm_90a" in nvrtc.compiles[0]
    (tmp_path / "readonly").write_text("a file where the folder should be")
    monkeypatch.setenv("CUPY_CACHE_DIR", str(tmp_path / "readonly" / "kernels"))
    assert archcode.cubin("k2", "wb_k2", "sm_90a") == b"cubin:k2"
    with pytest.raises(archcode.CompileError, match="expected a ';'"):
        archcode.cubin("bad", "wb_bad", "sm_90a")


def test_an_arch_kernel_loads_once_per_device(fake_cuda, monkeypatch, tmp_path):
    """Like RawKernel: the cubin is loaded into each device's context on first use there; the shared-memory
    opt-in reaches every device's function, including ones loaded after it was set."""
    import types

    from tests.gpu import fakecupy

    archcode = importlib.import_module("workbench.backends.cuda.archcode")
    monkeypatch.setattr(archcode, "_nvrtc", lambda: _FakeNvrtc())
    monkeypatch.setenv("CUPY_CACHE_DIR", str(tmp_path))
    loads, shared = [], {}
    current = {"id": 0}

    class Module:
        def load(self, binary):
            loads.append((current["id"], binary))

        def get_function(self, name):
            return types.SimpleNamespace(ptr=(current["id"], name))

    driver = types.SimpleNamespace(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES=8,
                                   funcSetAttribute=lambda ptr, attr, value: shared.__setitem__(ptr, value))
    monkeypatch.setattr(fakecupy.cuda, "function", types.SimpleNamespace(Module=Module), raising=False)
    monkeypatch.setattr(fakecupy.cuda, "driver", driver, raising=False)
    monkeypatch.setattr(fakecupy.cuda, "Device", lambda: types.SimpleNamespace(id=current["id"]))
    kernel = archcode.ArchKernel("k", "wb_k", "sm_90a")
    kernel._function()
    kernel.max_dynamic_shared_size_bytes = 100 << 10
    current["id"] = 1
    kernel._function()
    kernel._function()
    assert [d for d, _ in loads] == [0, 1] and all(b == b"cubin:k" for _, b in loads)
    assert shared == {(0, "wb_k"): 100 << 10, (1, "wb_k"): 100 << 10}


def test_a_tensor_map_describes_rows_of_k_bytes_in_128_byte_boxes():
    """What reaches cuTensorMapEncodeTiled: innermost dimension K, one row stride, boxes of 128 bytes by the
    tile's rows, the 128-byte swizzle, zeros out of bounds; operands TMA cannot describe are refused."""
    from workbench.backends.cuda import tma

    seen = {}

    def encoder(out, dtype, rank, ptr, dims, strides, box, unit, interleave, swizzle, l2, oob):
        seen.update(dtype=dtype, rank=rank, ptr=ptr, dims=list(dims[:2]), strides=[strides[0]], box=list(box[:2]),
                    unit=list(unit[:2]), swizzle=swizzle, oob=oob)
        np.ctypeslib.as_array((np.ctypeslib.ctypes.c_uint64 * 16).from_address(out))[:] = 7
        return 0

    m = tma.encode(0x10000, 300, 784, 128, encoder)
    assert m.dtype == tma.TENSOR_MAP and m.shape == (1,) and m.nbytes == 128 and (m["bytes"] == 7).all()
    assert seen == dict(dtype=0, rank=2, ptr=0x10000, dims=[784, 300], strides=[784], box=[128, 128], unit=[1, 1],
                        swizzle=3, oob=0)
    for bad in ((0x10000, 300, 792 + 4, 128), (0x10008, 300, 784, 128), (0x10000, 300, 784, 512)):
        with pytest.raises(ValueError, match="TMA"):
            tma.encode(*bad, encoder)
    with pytest.raises(RuntimeError, match="CUresult 1"):
        tma.encode(0x10000, 300, 784, 128, lambda *a: 1)


@pytest.mark.parametrize("tile,n,mt", [((128, 256), 256, 1), ((256, 128), 128, 2), ((128, 128), 128, 1),
                                       ((64, 256), 128, 1)])
def test_tma_source_feeds_two_warpgroups_from_a_producer_warp(fake_cuda, tile, n, mt):
    """Warp 8 requests both operands' boxes per slot; the two consumer warpgroups wait on the slot's full
    barrier, release it through the empty one, and synchronise among themselves only (the producer has
    returned); slots sit on 1024-byte boundaries in the 128-byte swizzle."""
    imma = importlib.import_module("workbench.backends.cuda.imma")
    _, code = imma.source(["y = (float)acc;"], (), "int8", "float16", *tile, 2, mma="tma")
    body = code.split('extern "C"')[1]
    assert set(re.findall(r'm64n(\d+)k32\." WB_MMA_TYPES', body)) == {str(n)}
    assert f"accs[{mt - 1}][{n // 8 - 1}][3]" in body
    assert body.count("wb_tma(") == 2 and "__launch_bounds__(288)" in body and "wb_cp16(" in body
    assert "__syncthreads" not in body.split("return;")[1] and "bar.sync 1, 256" in body
    assert "wb_desc128" in body and "ldmatrix" not in body and "auto load" not in body
    shared = imma.layout(*tile, 2, "float16", "int8", "tma")
    assert shared["bars"] + 16 * 2 + 8 + imma.TMA_ALIGN == shared["bytes"]
    with pytest.raises(ValueError, match="plain rows"):
        imma.source(["y = (float)acc;"], (), None, "float16", *tile, 2, {"c": 16}, mma="tma")


def test_tma_runs_where_wgmma_does_and_the_driver_encodes_maps(fake_cuda, monkeypatch):
    """tma is offered first on Hopper when the driver's encoder is there, never for a convolution's
    patches, and its configurations include depths that let two blocks share a multiprocessor."""
    from tests.gpu import fakecupy
    from workbench.backends.cuda import tma

    imma = importlib.import_module("workbench.backends.cuda.imma")
    props = {"name": b"FakeGPU", "major": 9, "minor": 0, "sharedMemPerBlockOptin": 227 << 10}
    monkeypatch.setattr(fakecupy.cuda.runtime, "getDeviceProperties", lambda i: props)
    imma._device.cache_clear()
    try:
        monkeypatch.setattr(tma, "missing", lambda: "no driver")
        assert imma.forms() == ["wgmma", "sync"] and "no driver" in imma.missing("tma")
        monkeypatch.setattr(tma, "missing", lambda: None)
        assert imma.forms() == ["pingpong", "tma", "wgmma", "sync"]
        found = imma.configs(768, 3072, "int8", None, "tma")
        sizes = [imma.layout(*c, "int8", None, "tma")["bytes"] for c in found]
        assert max(sizes) > 113 << 10 and min(sizes) <= 113 << 10 and all(s <= 227 << 10 for s in sizes)
        assert list(imma.stage_range(3072, "tma")) == [6, 5, 4, 3, 2] and list(imma.stage_range(64, "tma")) == [2]
        tactics, site = _conv_site(3, 64)
        assert not {"tma", "pingpong"} & {c["mma"] for c in tactics["int8-implicit"].candidates(site, 4)}
        tactics, site = _conv_site(1, 64)  # K = 64: wgmma holds it whole, the one place it won beside tma
        assert {c["mma"] for c in tactics["int8-mma"].candidates(site, 3)} == {"pingpong", "tma", "wgmma"}
        tactics, site = _conv_site(1, 512)  # a pipelined K: the fed forms only, everything at the exhaustive level
        assert {c["mma"] for c in tactics["int8-mma"].candidates(site, 3)} == {"pingpong", "tma"}
        assert {c["mma"] for c in tactics["int8-mma"].candidates(site, 4)} == {"pingpong", "tma", "wgmma", "sync"}
    finally:
        imma._device.cache_clear()


@pytest.mark.parametrize("tile,mt,n", [((128, 128), 2, 128), ((64, 256), 1, 256), ((128, 64), 2, 64)])
def test_pingpong_source_gives_each_warpgroup_whole_tiles(fake_cuda, monkeypatch, tile, mt, n):
    """Persistent blocks: the producer walks the block's tiles, each warpgroup every other one with its own
    staging and barrier, releasing every slot it read (the last of a tile too: the ring runs on)."""
    imma = importlib.import_module("workbench.backends.cuda.imma")
    monkeypatch.setattr(imma, "_device", lambda i: (9, 227 << 10))  # a Hopper's shared memory
    _, code = imma.source(["y = (signed char)acc;"], (), None, "int8", *tile, 2, mma="pingpong")
    body = code.split('extern "C"')[1]
    assert set(re.findall(r'm64n(\d+)k32\." WB_MMA_TYPES', body)) == {str(n)}
    assert f"accs[{mt - 1}][{n // 8 - 1}][3]" in body
    assert "tile += gridDim.x" in body and "tile += 2 * gridDim.x" in body and "wb_mbar_init(empty + 8 * s, 4)" in body
    assert body.count("wb_mbar_arrive(") == 3 and "wb_mbar_wait(order" in body and '"r"(1 + wg)' in body
    assert "__syncthreads" not in body.split("return;")[1]
    shared = imma.layout(*tile, 2, "int8", None, "pingpong")
    assert shared["bars"] - shared["ys"] == 2 * tile[0] * (tile[1] + 16)
    assert imma.layout(*tile, 2, "int8", "int8", "pingpong") is None  # no residual: tma takes those


def _fp8_gemm_site(n: int = 256, k: int = 768):
    """A float8 QGemm site (X (64, k) float16, E4M3 weights held in float16, a float32 bias) on the fake device."""
    from tests.gpu import fakecupy
    from workbench.backends.cuda import tactics
    from workbench.backends.cuda.site import make_site
    from workbench.ir.network import Layer
    from workbench.ir.opdefs.fused import ACTIVATION_ATTRS
    from workbench.ir.opdefs.quantized import QUANT_ATTRS
    from workbench.quant.numerics import FP8

    tactics.load_all()
    attrs = dict(QUANT_ATTRS, **ACTIVATION_ATTRS)
    attrs.update(x_scale=0.05, x_dtype=FP8, x_zero_point=0, w_scale=[0.01], activation="Gelu")
    args = [fakecupy.asarray(np.ones((64, k), np.float16)), fakecupy.asarray(np.ones((n, k), np.float16)),
            fakecupy.asarray(np.ones(n, np.float32))]
    layer = Layer("t", "QGemm", ["x", "w", "b"], ["y"], attrs, "workbench")
    return tactics.TACTICS, make_site(layer, attrs, args, "fp8", ["float16"], {"w", "b"}, 21)


def test_fp8_layers_take_the_wgmma_forms_on_e4m3_operands(fake_cuda, monkeypatch):
    """Float8 products run the generated kernel with float accumulators and the E4M3 wgmma, in the wgmma
    forms only (mma.sync is int8 here); the epilogue reads the accumulator as it is and the float bias in
    real units (an int8 layer's counts units of x_scale * w_scale)."""
    from tests.gpu import fakecupy
    from workbench.backends.cuda import tma
    from workbench.backends.cuda.quantized import Recipe, folded_columns, folded_lines

    imma = importlib.import_module("workbench.backends.cuda.imma")
    props = {"name": b"FakeGPU", "major": 9, "minor": 0, "sharedMemPerBlockOptin": 227 << 10}
    monkeypatch.setattr(fakecupy.cuda.runtime, "getDeviceProperties", lambda i: props)
    monkeypatch.setattr(tma, "missing", lambda: None)
    imma._device.cache_clear()
    try:
        assert imma.forms("e4m3") == ["pingpong", "tma", "wgmma"]
        name, code = imma.source(["y = acc;"], (), None, "float16", 128, 128, 2, mma="tma", operand="e4m3")
        assert "typedef float wb_acc;" in code and '"f32.e4m3.e4m3"' in code and 'WB_MMA_SIGNS ", 1, 1"' in code
        assert imma.source(["y = acc;"], (), None, "float16", 128, 128, 2, mma="tma")[0] != name
        with pytest.raises(ValueError, match="sync form takes int8"):
            imma.source(["y = acc;"], (), None, "float16", 128, 128, 2, mma="sync", operand="e4m3")
        tactics, site = _fp8_gemm_site()
        assert tactics["fp8-mma"].applies(site) is None and "fp8 not handled" in tactics["int8-mma"].applies(site)
        assert {c["mma"] for c in tactics["fp8-mma"].candidates(site, 4)} == {"pingpong", "tma", "wgmma"}
        recipe = Recipe(site)
        lines = folded_lines(recipe.epilogue_recipe("float32", "float32", None), True)
        assert lines[0] == "float v = fmaf(acc, alpha, beta);" and "v = wb_gelu(v);" in lines
        alpha, beta = folded_columns(recipe, np.array([2.0, -3.0]))
        assert np.allclose(alpha, 0.05 * 0.01) and list(beta) == [2.0, -3.0]
    finally:
        imma._device.cache_clear()
