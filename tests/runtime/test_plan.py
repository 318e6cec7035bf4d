"""Plan files: exact round trips, every corruption refused with a PlanFormatError, atomic saves."""
from __future__ import annotations

import hashlib
import os
import struct

import numpy as np
import pytest

import workbench as wb
from workbench import fileio
from workbench.errors import PlanFormatError, PluginError
from workbench.ir.ops import Info
from workbench.runtime import plan as planfile

from .conftest import WIDTH, add_relu_network, build

PREFIX = struct.Struct("<8sIQ")  # magic, format version, header length: the documented layout
DIGEST = 32


@pytest.fixture(scope="module")
def blob(engine) -> bytes:
    return planfile.serialize(engine)


def regions(blob: bytes) -> dict:
    """{region name: range of byte positions} of a plan, from its documented layout."""
    _, _, head_len = PREFIX.unpack_from(blob)
    head_end = PREFIX.size + head_len
    weights_start = head_end + (-head_end % 64)
    return {"magic": range(0, 8), "version": range(8, 12), "header_length": range(12, 20),
            "header": range(20, head_end), "padding": range(head_end, weights_start),
            "weights": range(weights_start, len(blob) - DIGEST), "checksum": range(len(blob) - DIGEST, len(blob))}


def test_regions_cover_the_file(blob):
    spans = regions(blob)
    assert sum(len(r) for r in spans.values()) == len(blob)
    assert all(len(spans[k]) for k in ("header", "weights", "checksum"))


def test_save_load_gives_bit_identical_outputs(engine, tmp_path, rng):
    path = tmp_path / "tiny.plan"
    engine.save(path)
    loaded = wb.load_plan(path)
    x = rng.standard_normal((3, WIDTH)).astype(np.float32)
    want = engine.create_execution_context().execute({"x": x})
    got = loaded.create_execution_context().execute({"x": x})
    assert want.keys() == got.keys()
    for name in want:
        assert got[name].dtype == want[name].dtype
        assert got[name].tobytes() == want[name].tobytes()


def test_serialization_is_stable_across_a_round_trip(blob):
    assert planfile.serialize(planfile.load_plan(blob)) == blob


def _positions(span: range, rng, count: int = 40) -> list:
    """Both ends of a region and up to `count` random positions inside it."""
    inside = rng.choice(len(span), size=min(count, len(span)), replace=False)
    return sorted({span[0], span[-1], *(span[int(i)] for i in inside)})


@pytest.mark.parametrize("region", ["magic", "version", "header_length", "header", "padding", "weights",
                                    "checksum"])
def test_every_flipped_byte_is_refused(blob, region):
    span = regions(blob)[region]
    if not len(span):
        pytest.skip(f"this plan has no {region} bytes")
    rng = np.random.default_rng(len(span))
    for pos in _positions(span, rng):
        bad = bytearray(blob)
        bad[pos] ^= int(rng.integers(1, 256))
        with pytest.raises(PlanFormatError) as err:
            planfile.load_plan(bytes(bad))
        if region == "magic":
            assert "not a workbench plan" in str(err.value)
        elif region in ("weights", "checksum", "padding", "header"):
            assert "checksum" in str(err.value), (region, pos, str(err.value))


def test_truncated_plans_are_refused(blob):
    rng = np.random.default_rng(0)
    lengths = {*range(0, 64), *regions(blob)["header"][::97], len(blob) - DIGEST, len(blob) - 1,
               *(int(n) for n in rng.integers(0, len(blob), 100))}
    for n in sorted(lengths):
        with pytest.raises(PlanFormatError):
            planfile.load_plan(blob[:n])


def _with_version(blob: bytes, version: int) -> bytes:
    magic, _, head_len = PREFIX.unpack_from(blob)
    body = PREFIX.pack(magic, version, head_len) + blob[PREFIX.size:-DIGEST]
    return body + hashlib.sha256(body).digest()  # a valid checksum: only the version is wrong


def test_newer_format_version_says_so(blob):
    with pytest.raises(PlanFormatError, match="newer"):
        planfile.load_plan(_with_version(blob, planfile.FORMAT_VERSION + 1))


def test_format_version_zero_is_refused(blob):
    with pytest.raises(PlanFormatError, match="version 0"):
        planfile.load_plan(_with_version(blob, 0))


def test_missing_file_and_folder(tmp_path, engine):
    with pytest.raises(PlanFormatError, match="no such plan"):
        wb.load_plan(tmp_path / "absent.plan")
    with pytest.raises(PlanFormatError, match="does not exist"):
        engine.save(tmp_path / "no" / "such" / "folder.plan")


# ---------------------------------------------------------------------------------- plugins
PLUGIN = "PlanTestScale"


@pytest.fixture
def plugin_plan():
    """A plan using a plugin op; the plugin is unregistered when the test ends."""
    wb.plugin(PLUGIN, shape=lambda x, **_: Info(x.dtype, x.shape), replace=True)(
        lambda x, *, factor=2.0: x * np.float32(factor))
    try:
        net = add_relu_network(np.zeros(WIDTH))
        net.mark_output(net.add_plugin(PLUGIN, [net.outputs[0]], {"factor": 3.0}).output)
        yield planfile.serialize(build(net))
    finally:
        from workbench.plugins import unregister

        unregister(PLUGIN)


def test_plan_naming_an_unregistered_plugin_raises_plugin_error(plugin_plan):
    from workbench.plugins import lookup, unregister

    registered = lookup(PLUGIN)
    unregister(PLUGIN)
    with pytest.raises(PluginError, match=PLUGIN):
        planfile.load_plan(plugin_plan)
    wb.plugin(PLUGIN, shape=registered.shape, replace=True)(registered.cpu)
    engine = planfile.load_plan(plugin_plan)
    out = engine.create_execution_context().execute({"x": np.ones((2, WIDTH), np.float32)})
    assert np.array_equal(out[engine.outputs[-1].name], np.full((2, WIDTH), 3.0, np.float32))


# ---------------------------------------------------------------------------------- atomic saves
def _engines():
    return build(add_relu_network(np.zeros(WIDTH))), build(add_relu_network(np.ones(WIDTH)))


def _leftovers(folder) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name != "model.plan")


def test_failed_rename_leaves_the_previous_plan_intact(tmp_path, monkeypatch):
    old, new = _engines()
    path = tmp_path / "model.plan"
    old.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(wb.PlanFormatError, match="simulated"):
        new.save(path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_crash_mid_write_leaves_the_previous_plan_intact(tmp_path, monkeypatch):
    old, new = _engines()
    path = tmp_path / "model.plan"
    old.save(path)
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class HalfWriter:
        """A file that writes half of what it is given, then fails like a full disk."""

        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError("simulated crash mid-write")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(fileio.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(wb.PlanFormatError, match="mid-write"):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []
    assert planfile.serialize(wb.load_plan(path)) == before


def test_scalar_and_strided_weights_keep_their_shapes(tmp_path):
    from workbench.ir import Network

    net = Network("scalars")
    x = net.add_input("x", "float32", (2, 3))
    scale = net.add_constant(np.array(1.5, np.float32), "scale")  # 0-d, as torch exports write them
    strided = net.add_constant(np.arange(12, dtype=np.float32).reshape(3, 4)[:, 1], "strided")  # not contiguous
    y = net.add_layer("Mul", [x, scale]).output
    net.mark_output(net.add_layer("Add", [y, strided]).output)
    engine = wb.build(net, wb.BuilderConfig(device="cpu"))
    loaded = wb.load_plan(engine.serialize())
    for name in ("scale", "strided"):
        assert loaded.network.weights[name].shape == engine.network.weights[name].shape
        np.testing.assert_array_equal(loaded.network.weights[name], engine.network.weights[name])
    feed = {"x": np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)}
    np.testing.assert_array_equal(loaded.create_execution_context().execute(feed)[net.outputs[0]],
                                  engine.create_execution_context().execute(feed)[net.outputs[0]])
