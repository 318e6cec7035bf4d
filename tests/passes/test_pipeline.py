"""The whole optimization pipeline: passes cooperate, reach a fixed point, and keep the numerics."""
import io

import numpy as np
import pytest

from tests.oracle import rand
from tests.passes.helpers import assert_same_numerics, ops, requires_kernels, run
from workbench.ir import Network
from workbench.passes.pipeline import PASSES, optimize


def _cnn():
    """Conv -> BN -> Relu, Conv -> BN, residual Add -> Relu, a dead branch and an Identity."""
    rng = np.random.default_rng(0)
    net = Network("cnn")
    x = net.add_input("x", "float32", (1, 4, 6, 6))
    h = x
    for i in range(2):
        conv = net.add_convolution(h, rand(4, 4, 3, 3, seed=i), padding=1, name=f"conv{i}")
        stats = [net.add_constant(rng.uniform(0.5, 1.5, 4).astype("f4"), f"bn{i}_{k}") for k in "gbmv"]
        h = net.add_layer("BatchNormalization", [conv.output, *stats], name=f"bn{i}").output
        if i == 0:
            h = net.add_activation(h, "Relu", name="relu0").output
    h = net.add_layer("Add", [h, x], name="residual").output
    net.add_activation(h, "Sigmoid", name="dead")
    h = net.add_layer("Identity", [net.add_activation(h, "Relu", name="relu1").output]).output
    net.mark_output(h)
    return net


def test_cnn_is_fused_to_two_fused_convs():
    out, log = optimize(_cnn())
    assert ops(out) == ["FusedConv", "FusedConv"]
    first, second = out.layers
    assert first.attrs["activation"] == "Relu" and first.fused == ["conv0", "bn0", "relu0"]
    assert second.inputs[3] == "x" and second.attrs["activation"] == "Relu"
    assert second.fused == ["conv1", "bn1", "residual", "relu1"]
    assert len(out.weights) == 4, "the original conv weights and BN statistics are dropped"
    assert log["fold_batchnorm"] >= 1 and log["fuse_bias_activation"] >= 1
    assert optimize(out)[0].layers == out.layers, "optimizing twice changes nothing more"


def _snapshot(net):
    layers = [(l.name, l.op, tuple(l.inputs), tuple(l.outputs), repr(l.attrs), tuple(l.fused)) for l in net.layers]
    tensors = {k: (t.dtype, t.shape) for k, t in net.tensors.items()}
    return layers, tensors, {k: id(w) for k, w in net.weights.items()}, list(net.inputs), list(net.outputs)


@pytest.mark.parametrize("p", PASSES, ids=lambda p: p.__name__)
def test_every_pass_leaves_its_input_untouched(p):
    net = _cnn()
    before = _snapshot(net)
    p(net)
    assert _snapshot(net) == before


def test_cnn_numerics():
    assert_same_numerics(_cnn(), PASSES)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torch_legacy_export_is_fused_and_matches_torch():
    """torch's TorchScript exporter at opset 14 writes LayerNorm and GELU out elementwise."""
    torch = pytest.importorskip("torch")
    from workbench import load_onnx

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln, self.fc = torch.nn.LayerNorm(8), torch.nn.Linear(8, 16)
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x, img):
            y = torch.nn.functional.gelu(self.fc(self.ln(x)))
            return y.reshape(y.shape[0], -1), torch.relu(self.conv(img))

    torch.manual_seed(0)
    block, args = Block().eval(), (torch.randn(2, 3, 8), torch.randn(1, 3, 5, 5))
    buffer = io.BytesIO()
    torch.onnx.export(block, args, buffer, dynamo=False, opset_version=14, input_names=["x", "img"])
    out, _ = optimize(load_onnx(buffer.getvalue()))
    assert sorted(ops(out)) == ["FusedConv", "FusedMatMul", "LayerNormalization", "Reshape"]
    assert {layer.attrs.get("activation") for layer in out.layers} >= {"Gelu", "Relu"}
    requires_kernels("Conv", "MatMul", "LayerNormalization", "Gelu", "Relu", "Reshape")
    got = run(load_onnx(buffer.getvalue()), {"x": args[0].numpy(), "img": args[1].numpy()}, PASSES)
    with torch.no_grad():
        want = [t.numpy() for t in block(*args)]
    for g, w in zip(got.values(), want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_dynamic_batch_view_loses_its_shape_arithmetic():
    """x.view(x.size(0), -1) with a dynamic batch: Shape->Gather->Unsqueeze->Concat dies, Reshape(x, [0, -1])."""
    requires_kernels("Shape", "Gather", "Unsqueeze", "Concat")  # their rules carry symbolic values
    net = Network("t")
    x = net.add_input("x", "float32", ("batch", 3, 4))
    dim = net.add_layer("Gather", [net.add_layer("Shape", [x]).output, net.add_constant(np.int64(0), "i")])
    dim = net.add_layer("Unsqueeze", [dim.output, net.add_constant(np.array([0]), "axes")])
    target = net.add_layer("Concat", [dim.output, net.add_constant(np.array([-1]), "rest")], {"axis": 0})
    net.mark_output(net.add_layer("Reshape", [x, target.output]).output)
    out, _ = optimize(net)
    assert ops(out) == ["Reshape"] and out.weights[out.layers[0].inputs[1]].tolist() == [0, -1]
    assert out.tensors[out.outputs[0]].shape == ("batch", 12)
    assert_same_numerics(net, PASSES, {"x": rand(2, 3, 4, seed=1)})
