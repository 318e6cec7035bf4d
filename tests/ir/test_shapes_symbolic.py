"""Symbolic value propagation through the shape rules: the shape arithmetic of torch exports."""
import numpy as np
import pytest

from workbench.ir.network import Network
from tests.ir.shape_rules import rule
from workbench.ir.ops import Info
from workbench.ir.rules import shape_tensor, static_ints, symbolic_value
from workbench.ir.shapes import infer_shapes


def const(*values, scalar=False):
    array = np.array(values, np.int64)
    return Info("int64", array.reshape(()).shape if scalar else array.shape, array.reshape(()) if scalar else array)


X = Info("float32", ("batch", 128, 768))


def test_torch_flatten_batch_chain_keeps_symbolic_dims():
    shape = rule("Shape", X)
    assert shape == Info("int64", (3,), ("batch", 128, 768))
    batch = rule("Gather", shape, const(0, scalar=True), axis=0)
    assert batch.shape == () and batch.value == ("batch",)
    batch_1d = rule("Unsqueeze", batch, const(0))
    assert batch_1d.shape == (1,) and batch_1d.value == ("batch",)
    target = rule("Concat", batch_1d, const(-1, 768), axis=0)
    assert target.shape == (3,) and target.value == ("batch", -1, 768)
    out = rule("Reshape", X, target)
    assert out.shape == ("batch", 128, 768)


def test_same_chain_through_the_network_driver():
    net = Network("torchish")
    x = net.add_input("x", "float32", ("batch", 128, 768))
    shape = net.add_layer("Shape", [x]).output
    batch = net.add_layer("Gather", [shape, net.add_constant(np.array(0, np.int64), "zero")], {"axis": 0}).output
    batch_1d = net.add_layer("Unsqueeze", [batch, net.add_constant(np.array([0], np.int64), "axes")]).output
    target = net.add_layer("Concat", [batch_1d, net.add_constant(np.array([-1, 768], np.int64))],
                           {"axis": 0}).output
    out = net.add_layer("Reshape", [x, target]).output
    infos = infer_shapes(net)
    assert infos[out].shape == ("batch", 128, 768)
    assert net.tensors[out].shape == ("batch", 128, 768)


def test_heads_split_and_merge():
    x = Info("float32", ("batch", "seq", 768))
    shape = rule("Shape", x)
    lead = rule("Slice", shape, const(0), const(2), const(0))
    assert lead.value == ("batch", "seq")
    heads = rule("Reshape", x, rule("Concat", lead, const(12, 64), axis=0))
    assert heads.shape == ("batch", "seq", 12, 64)
    merged = rule("Reshape", heads, const(0, 0, -1))
    assert merged.shape == ("batch", "seq", 768)
    flat = rule("Reshape", x, const(-1, 768))
    assert flat.shape == ("batch*seq", 768)


def test_value_kinds_are_unified():
    assert symbolic_value(const(2, 3)) == (2, 3)
    assert symbolic_value(const(4, scalar=True)) == (4,)
    assert symbolic_value(Info("float32", (2,), np.array([1.0, 2.0]))) is None
    assert symbolic_value(Info("int64", (2, 2), np.ones((2, 2), np.int64))) is None
    assert static_ints(Info("int64", (2,), ("batch", 3))) is None
    assert isinstance(shape_tensor([2, 3]).value, np.ndarray)  # all known: a real constant
    assert shape_tensor(["b", 3]).value == ("b", 3)


def test_static_shapes_give_constant_values():
    shape = rule("Shape", Info("float32", (2, 3, 4)), start=1)
    np.testing.assert_array_equal(shape.value, [3, 4])
    size = rule("Size", Info("float32", ("n", 4)))
    assert size.shape == () and size.value == ("n*4",)


@pytest.mark.parametrize("indices,want", [((-1,), (768,)), ((0, 2), ("batch", 768)), ((1, 1), (128, 128))])
def test_gather_picks_dims(indices, want):
    assert symbolic_value(rule("Gather", rule("Shape", X), const(*indices))) == want


def test_slice_squeeze_split_tile_of_shape_values():
    shape = rule("Shape", X)
    assert rule("Slice", shape, const(-1), const(-4), const(0), const(-1)).value == (768, 128, "batch")
    last = rule("Slice", shape, const(0), const(1))
    assert rule("Squeeze", last, const(0)) == Info("int64", (), ("batch",))
    parts = rule("Split", shape, const(1, 2))
    assert parts[0].value == ("batch",) and symbolic_value(parts[1]) == (128, 768)
    assert rule("Tile", last, const(2)).value == ("batch", "batch")


def test_shape_values_feed_generators_and_expand():
    shape = rule("Shape", X)
    mask = rule("ConstantOfShape", shape, value=np.array([1], np.int64))
    assert mask == Info("int64", ("batch", 128, 768))
    positions = rule("Range", const(0, scalar=True), rule("Gather", shape, const(1, scalar=True)),
                     const(1, scalar=True))
    np.testing.assert_array_equal(positions.value, np.arange(128))
    seq = Info("int64", (), ("seq",))
    assert rule("Range", const(0, scalar=True), seq, const(1, scalar=True)).shape == ("seq",)
    assert rule("Expand", Info("float32", (1, 1, 768)), shape).shape == ("batch", 128, 768)
    assert rule("Expand", Info("float32", (1, 768)), Info("int64", (3,))).shape[2] == 768


def test_dynamic_slice_end_from_another_shape():
    positions = Info("int64", (1, 512))
    seq = rule("Gather", rule("Shape", Info("int64", ("batch", "seq"))), const(1))
    assert rule("Slice", positions, const(0), seq, const(1)).shape == (1, "seq")
