"""Plain PyTorch definitions of the benchmark models (no torchvision / transformers needed).

ResNet-50 (v1.5: stride on the 3x3), MobileNetV2 (width 1.0) and a BERT-base encoder (12 layers,
hidden 768, 12 heads, GELU, post-LayerNorm) taking token ids and an attention mask. The same
modules give the PyTorch baselines and, exported to ONNX, the workbench engines.
"""
from __future__ import annotations

import math

import torch
from torch import nn


# ------------------------------------------------------------------------------------------ ResNet-50
class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet50(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for width, count, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(count):
                blocks.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * 4
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(2048, classes)

    def forward(self, x):
        y = self.blocks(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


# ------------------------------------------------------------------------------------------ MobileNetV2
def _conv_bn(cin, cout, k, stride, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        layers = [_conv_bn(cin, hidden, 1, 1)] if t != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, cout, 1, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        layers, cin = [_conv_bn(3, 32, 3, 2)], 32
        for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                           (6, 160, 3, 2), (6, 320, 1, 1)):
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv_bn(cin, 1280, 1, 1))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1280, classes)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


# ------------------------------------------------------------------------------------------ BERT-base
class EncoderLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(3))
        self.out, self.ln1 = nn.Linear(hidden, hidden), nn.LayerNorm(hidden, eps=1e-12)
        self.ff1, self.ff2, self.ln2 = nn.Linear(hidden, inner), nn.Linear(inner, hidden), nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, h, bias):
        b, s, d = h.shape
        q, k, v = (lin(h).reshape(b, s, self.heads, d // self.heads).transpose(1, 2) for lin in self.qkv)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + bias
        ctx = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, s, d)
        h = self.ln1(h + self.out(ctx))
        return self.ln2(h + self.ff2(nn.functional.gelu(self.ff1(h))))


class Bert(nn.Module):
    def __init__(self, layers=12, hidden=768, heads=12, inner=3072, vocab=30522, max_pos=512):
        super().__init__()
        self.words, self.pos, self.types = nn.Embedding(vocab, hidden), nn.Embedding(max_pos, hidden), nn.Embedding(2, hidden)
        self.ln = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads, inner) for _ in range(layers))

    def forward(self, input_ids, attention_mask):
        s = input_ids.shape[1]
        pos = torch.arange(s, device=input_ids.device).unsqueeze(0)
        h = self.ln(self.words(input_ids) + self.pos(pos) + self.types(torch.zeros_like(input_ids)))
        bias = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * -10000.0
        for layer in self.layers:
            h = layer(h, bias)
        return h


def make(name: str) -> nn.Module:
    """A freshly initialised model in eval mode (BatchNorm statistics randomised so folding is tested)."""
    torch.manual_seed(0)
    model = {"resnet50": ResNet50, "mobilenetv2": MobileNetV2, "bert": Bert}[name]()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def inputs(name: str, batch: int, seq: int = 128, device="cpu", generator=None) -> dict:
    """Fresh random inputs by name (images, or token ids in [0, 30522) and a mask of ones)."""
    if name == "bert":
        ids = torch.randint(0, 30522, (batch, seq), device=device, generator=generator)
        return {"input_ids": ids, "attention_mask": torch.ones(batch, seq, dtype=torch.int64, device=device)}
    x = torch.randn(batch, 3, 224, 224, device=device, generator=generator)
    return {"input": x}


def export(model: nn.Module, name: str, path: str, batch: int = 1, seq: int = 128) -> str:
    """Write the model as ONNX (opset 17) with a dynamic batch dimension."""
    feeds = inputs(name, batch, seq)
    names = list(feeds)
    axes = {n: {0: "batch"} for n in names}
    axes["output"] = {0: "batch"}
    args = tuple(feeds[n] for n in names)
    kwargs = dict(input_names=names, output_names=["output"], dynamic_axes=axes, opset_version=17)
    try:
        torch.onnx.export(model, args, path, dynamo=False, **kwargs)
    except TypeError:  # an older torch without the dynamo switch
        torch.onnx.export(model, args, path, **kwargs)
    return path
