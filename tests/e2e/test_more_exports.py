"""More layer kinds as PyTorch's two exporters write them: attention (nn.MultiheadAttention,
scaled_dot_product_attention, nn.TransformerEncoder), GroupNorm + ConvTranspose + interpolate,
LSTM and bidirectional GRU, Conv1d + BatchNorm1d, topk/argmax, reflect padding. Each is built on
the CPU, saved and reloaded, and must match onnxruntime at fp32 (relative L2 <= 1e-4) and stay close
at fp16 (<= 2e-3)."""
from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest

import workbench as wb

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional
pytestmark = pytest.mark.slow


class MultiheadBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn, self.norm = nn.MultiheadAttention(64, 4, batch_first=True), nn.LayerNorm(64)

    def forward(self, x):
        return self.norm(self.attn(x, x, x, need_weights=False)[0] + x)


class CausalSdpa(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(64, 192)

    def forward(self, x):
        q, k, v = self.qkv(x).view(x.shape[0], x.shape[1], 3, 4, 16).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return y.transpose(1, 2).reshape(x.shape[0], x.shape[1], 64)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, 2)

    def forward(self, ids):
        return self.encoder(self.embed(ids)).mean(1)


class UpDown(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(4, 16)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)

    def forward(self, x):
        y = self.up(F.silu(self.norm(self.conv(x))))
        return F.interpolate(y, scale_factor=0.5, mode="bilinear", align_corners=False)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.head = nn.LSTM(16, 32, batch_first=True, num_layers=2), nn.Linear(32, 5)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])


class Audio(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv1d(8, 16, 5, padding=2), nn.BatchNorm1d(16)
        self.gru = nn.GRU(16, 8, bidirectional=True, batch_first=True)

    def forward(self, x):
        return self.gru(F.gelu(self.norm(self.conv(x))).transpose(1, 2))[0].cumsum(1)


class Ranking(nn.Module):
    def forward(self, x):
        values, index = x.softmax(-1).topk(3, dim=-1)
        return values * index.float() + x.argmax(-1, keepdim=True).float()


class Padded(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)

    def forward(self, x):
        y = F.pad(self.conv(x), (1, 2, 0, 1), mode="reflect")
        return F.adaptive_avg_pool2d(y, 1).flatten(1) + F.hardswish(x).mean()


def _ids():
    return torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(0))


CASES = {  # name: (module, example input, dynamic axes: the legacy exporter bakes MHA's sequence length)
    "multihead": (MultiheadBlock, lambda: torch.randn(2, 10, 64), {0: "b"}),
    "sdpa": (CausalSdpa, lambda: torch.randn(2, 10, 64), {0: "b", 1: "s"}),
    "encoder": (Encoder, _ids, {0: "b"}),
    "updown": (UpDown, lambda: torch.randn(2, 3, 32, 32), {0: "b"}),
    "lstm": (Recurrent, lambda: torch.randn(2, 7, 16), {0: "b", 1: "t"}),
    "audio": (Audio, lambda: torch.randn(2, 8, 20), {0: "b", 2: "t"}),
    "ranking": (Ranking, lambda: torch.randn(2, 5, 9), {0: "b"}),
    "padded": (Padded, lambda: torch.randn(2, 3, 16, 16), {0: "b"}),
}


def _export(module, x, axes: dict, path, dynamo: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = ({k: torch.export.Dim(f"d{k}", min=2, max=64) for k in axes},)
            torch.onnx.export(module, (x,), str(path), dynamo=True, input_names=["x"], dynamic_shapes=dims,
                              verbose=False)
        else:
            torch.onnx.export(module, (x,), str(path), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": axes}, opset_version=17)


def _rel(got, want) -> float:
    return float(np.linalg.norm(got.astype(np.float64) - want) / np.linalg.norm(want))


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_export_matches_onnxruntime_after_a_plan_round_trip(tmp_path, name, dynamo):
    torch.manual_seed(0)
    make, example, axes = CASES[name]
    module, x = make().eval(), example()
    path = tmp_path / f"{name}.onnx"
    _export(module, x, axes, path, dynamo)
    net = wb.load_onnx(path)
    shape = tuple(x.shape)
    low = tuple(2 if i in axes else d for i, d in enumerate(shape))
    high = tuple(32 if i in axes else d for i, d in enumerate(shape))
    profile = [{net.inputs[0]: (low, shape, high)}]
    feed = {net.inputs[0]: x.numpy()}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0].astype(np.float64)
    for precision, tol in (("fp32", 1e-4), ("fp16", 2e-3)):
        engine = wb.build(net, wb.BuilderConfig(device="cpu", precision=precision, profiles=profile))
        engine = wb.load_plan(engine.serialize())
        got = engine.create_execution_context().execute(feed)[net.outputs[0]]
        assert _rel(got, want) <= tol, (precision, _rel(got, want))
