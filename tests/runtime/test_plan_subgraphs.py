"""Plan files of engines with control flow: nested networks round trip bit-identically, their weights
live in the one weights section under their graph's path, and loading validates them."""
from __future__ import annotations

import json

import numpy as np
import pytest

import workbench as wb
from workbench.errors import PlanFormatError
from workbench.ir.network import MAX_SUBGRAPH_DEPTH
from workbench.runtime import plan as planfile
from tests.models import control as C
from tests.oracle import rand


def build(model) -> "wb.Engine":
    return wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu", max_batch=4))


@pytest.fixture(scope="module")
def if_engine():
    return build(C.if_model())


@pytest.fixture(scope="module")
def loop_engine():
    return build(C.loop_model())


def header(blob: bytes) -> dict:
    prefix = planfile._PREFIX
    _, _, length = prefix.unpack_from(blob)
    return json.loads(blob[prefix.size:prefix.size + length])


def reserialized(engine, edit) -> bytes:
    """The engine's plan after `edit(network copy)`: a plan whose checksum is right but whose graph is not."""
    net = engine.network.copy()
    edit(net)
    return planfile.serialize(wb.Engine(net, engine.backend, engine.precisions, engine.tactics, engine.profiles,
                                        engine.memory, engine.config, engine.device, engine.report))


@pytest.mark.parametrize("which", ["if_engine", "loop_engine"])
def test_round_trip_is_bit_identical(which, request):
    engine = request.getfixturevalue(which)
    blob = planfile.serialize(engine)
    loaded = planfile.load_plan(blob)
    assert planfile.serialize(loaded) == blob
    feeds = {"x": rand(3, *engine.network.tensors["x"].shape[1:], seed=1)}
    if which == "if_engine":
        feeds["c"] = np.array(False)
    else:
        feeds.update(y0=rand(3, 3, seed=2), stop=np.array(3, np.int64), trip=np.array(5, np.int64),
                     cond=np.array(True))
    want = engine.create_execution_context().execute(feeds)
    got = loaded.create_execution_context().execute(feeds)
    assert all(got[k].tobytes() == want[k].tobytes() and got[k].shape == want[k].shape for k in want)


def test_subgraph_weights_are_in_the_weights_section_under_their_graph_path(loop_engine):
    entries = header(planfile.serialize(loop_engine))["weights"]
    nested = [e for e in entries if "graph" in e]
    assert [(e["graph"], e["name"]) for e in nested] == [(["Loop_0", "body"], "two")]
    body = planfile.load_plan(planfile.serialize(loop_engine)).network.layers[0].attrs["body"]
    assert isinstance(body, wb.Network) and body.weights["two"] == 2


def test_a_subgraph_reading_a_missing_value_is_refused(if_engine):
    def dangling(net):
        net.layers[0].attrs["then_branch"].layers[0].inputs[0] = "ghost"

    with pytest.raises(PlanFormatError, match="ghost"):
        planfile.load_plan(reserialized(if_engine, dangling))


def test_subgraphs_nested_too_deep_are_refused(if_engine):
    def deepen(net):
        sub = net.layers[0].attrs["else_branch"]
        for _ in range(MAX_SUBGRAPH_DEPTH + 1):
            sub = wb.Network("wrap", layers=[wb.ir.Layer("if", "If", ["c"], ["o"], {
                "then_branch": sub, "else_branch": net.layers[0].attrs["else_branch"].copy()})], outputs=["o"])
        net.layers[0].attrs["else_branch"] = sub

    with pytest.raises(PlanFormatError, match="nested more than"):
        planfile.load_plan(reserialized(if_engine, deepen))
