"""Plain-torch reference models (no torchvision) and their ONNX export, for tests and benchmarks.

ResNet-50 v1.5, MobileNetV2, EfficientNet-B0 and a BERT encoder (small by default,
BERT-base as `SmallBert(**BERT_BASE)`), each an `nn.Module` with `export(path, dynamo)`:
dynamo=False uses torch's legacy TorchScript exporter (opset 17, dynamic_axes),
dynamo=True the torch.export-based exporter (onnxscript, dynamic_shapes). Both mark
dim 0 of every input and output as "batch". Models come out in eval mode with seeded
weights and randomised BatchNorm statistics, so BN folding changes real numbers.
benchmarks/bench_gpu.py builds its models from these classes too (by name, through
benchmarks/torch_models.py).

Example: ResNet50().export("/tmp/r50.onnx", dynamo=False)
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from torch import nn

LEGACY_OPSET = 17
EXAMPLE_BATCH = 2  # batch 1 would let torch.export specialise the dynamic dim


class Exportable(nn.Module):
    """Mixin: subclasses define input_names, output_names and example_inputs()."""

    input_names: tuple[str, ...] = ("input",)
    output_names: tuple[str, ...] = ("logits",)

    def example_inputs(self, batch: int = EXAMPLE_BATCH) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0)),)

    def export(self, path, dynamo: bool = False, opset: int | None = None) -> Path:
        """Write this model as ONNX to `path` with a dynamic "batch" dim; return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        args = self.example_inputs()
        common = dict(input_names=list(self.input_names), output_names=list(self.output_names))
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=1024)
            # A tuple lines up with forward's positional args whatever they are called.
            shapes = tuple({0: batch} for _ in self.input_names)
            kwargs = dict(dynamic_shapes=shapes, external_data=False, opset_version=opset, verbose=False)
        else:
            axes = {name: {0: "batch"} for name in (*self.input_names, *self.output_names)}
            kwargs = dict(dynamic_axes=axes, opset_version=opset or LEGACY_OPSET)
        with warnings.catch_warnings():
            # The legacy exporter's deprecation notice and torch.export's internal FutureWarnings.
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
            try:
                torch.onnx.export(self, args, str(path), dynamo=dynamo, **common, **kwargs)
            except TypeError:
                if dynamo:
                    raise
                # A torch before 2.5 has no `dynamo` switch; its only exporter is the legacy one.
                torch.onnx.export(self, args, str(path), **common, **kwargs)
        return path


def seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise `model` deterministically, randomise BN statistics, switch to eval."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1, generator=gen)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.0, generator=gen)
                m.bias.normal_(0.0, 0.05, generator=gen)
                m.running_mean.normal_(0.0, 0.05, generator=gen)
                m.running_var.uniform_(0.8, 1.2, generator=gen)
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, 0.02, generator=gen)
    return model.eval()


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU):
    """Conv (no bias, 'same' padding) + BN + optional activation."""
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([act()] if act else []))


class ClassifierHead(nn.Sequential):
    """Global average pool, flatten, linear: torch's classifier tail (dropout is a no-op in eval)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


# ---- ResNet-50 -------------------------------------------------------------


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: stride on the 3x3 conv."""

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = 4 * width
        self.branch = nn.Sequential(conv_bn(cin, width, 1), conv_bn(width, width, 3, stride),
                                    conv_bn(width, cout, 1, act=None))
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout
                         else conv_bn(cin, cout, 1, stride, act=None))

    def forward(self, x):
        return torch.relu(self.branch(x) + self.shortcut(x))


class ResNet50(Exportable):
    """torchvision's resnet50 topology, 1000 classes."""

    def __init__(self, num_classes: int = 1000, seed: int = 0):
        super().__init__()
        layers = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = 4 * width
        self.net = nn.Sequential(*layers, ClassifierHead(cin, num_classes))
        seeded(self, seed)

    def forward(self, x):
        return self.net(x)


# ---- MobileNetV2 -----------------------------------------------------------


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 project; skip if shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, t: int):
        super().__init__()
        hidden = cin * t
        expand = [conv_bn(cin, hidden, 1, act=nn.ReLU6)] if t != 1 else []
        self.block = nn.Sequential(*expand, conv_bn(hidden, hidden, 3, stride, hidden, nn.ReLU6),
                                   conv_bn(hidden, cout, 1, act=None))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(Exportable):
    """torchvision's mobilenet_v2 (width 1.0), 1000 classes."""

    def __init__(self, num_classes: int = 1000, seed: int = 0):
        super().__init__()
        layers = [conv_bn(3, 32, 3, 2, act=nn.ReLU6)]
        cin = 32
        for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.net = nn.Sequential(*layers, conv_bn(cin, 1280, 1, act=nn.ReLU6),
                                 ClassifierHead(1280, num_classes))
        seeded(self, seed)

    def forward(self, x):
        return self.net(x)


# ---- EfficientNet-B0 -------------------------------------------------------


class SqueezeExcite(nn.Module):
    """x * sigmoid(conv(silu(conv(avgpool(x)))))."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, squeezed, 1), nn.SiLU(),
                                  nn.Conv2d(squeezed, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.gate(x)


class MBConv(nn.Module):
    """EfficientNet block: expand (SiLU), depthwise kxk (SiLU), squeeze-excite, project; skip if shapes match."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, t: int):
        super().__init__()
        hidden = cin * t
        expand = [conv_bn(cin, hidden, 1, act=nn.SiLU)] if t != 1 else []
        self.block = nn.Sequential(*expand, conv_bn(hidden, hidden, k, stride, hidden, nn.SiLU),
                                   SqueezeExcite(hidden, max(1, cin // 4)),
                                   conv_bn(hidden, cout, 1, act=None))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        # Stochastic depth is the identity in eval mode, so it is left out.
        return x + self.block(x) if self.residual else self.block(x)


class EfficientNetB0(Exportable):
    """torchvision's efficientnet_b0, 1000 classes."""

    STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
              (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))  # (t, k, s, c, n)

    def __init__(self, num_classes: int = 1000, seed: int = 0):
        super().__init__()
        layers = [conv_bn(3, 32, 3, 2, act=nn.SiLU)]
        cin = 32
        for t, k, s, c, n in self.STAGES:
            for i in range(n):
                layers.append(MBConv(cin, c, k, s if i == 0 else 1, t))
                cin = c
        self.net = nn.Sequential(*layers, conv_bn(cin, 1280, 1, act=nn.SiLU),
                                 ClassifierHead(1280, num_classes))
        seeded(self, seed)

    def forward(self, x):
        return self.net(x)


# ---- small BERT ------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head attention written as HF BERT's eager path: matmul, scale, mask, softmax, matmul."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.q, self.k, self.v, self.out = (nn.Linear(hidden, hidden) for _ in range(4))

    def split(self, x):
        return x.view(*x.shape[:2], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, bias):
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias
        ctx = (scores.softmax(-1) @ v).transpose(1, 2)
        return self.out(ctx.reshape(*ctx.shape[:2], -1))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer with a GELU feed-forward of width `intermediate`."""

    def __init__(self, hidden: int, heads: int, intermediate: int):
        super().__init__()
        self.attn, self.ln1 = SelfAttention(hidden, heads), nn.LayerNorm(hidden, eps=1e-12)
        self.ffn = nn.Sequential(nn.Linear(hidden, intermediate), nn.GELU(), nn.Linear(intermediate, hidden))
        self.ln2 = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x, bias):
        x = self.ln1(x + self.attn(x, bias))
        return self.ln2(x + self.ffn(x))


# Hugging Face's bert-base-uncased shape; `seq` (the export's sequence length) is left to the caller.
BERT_BASE = dict(layers=12, hidden=768, heads=12, intermediate=3072, vocab=30522, max_positions=512)


class SmallBert(Exportable):
    """BERT encoder: 2 layers, hidden 128, 4 heads, seq 64 by default; SmallBert(**BERT_BASE) is BERT-base.

    Outputs last_hidden_state and, with `pooler` (the default), pooler_output. `seq` is the sequence
    length of the example inputs, so of the export; `intermediate` defaults to 4 * hidden.
    """

    input_names = ("input_ids", "attention_mask")

    def __init__(self, layers: int = 2, hidden: int = 128, heads: int = 4, seq: int = 64,
                 vocab: int = 1000, intermediate: int | None = None, max_positions: int = 512,
                 pooler: bool = True, seed: int = 0):
        super().__init__()
        self.seq, self.vocab = seq, vocab
        self.output_names = ("last_hidden_state", "pooler_output")[:2 if pooler else 1]
        self.word_emb, self.pos_emb = nn.Embedding(vocab, hidden), nn.Embedding(max_positions, hidden)
        self.type_emb = nn.Embedding(2, hidden)
        self.ln = nn.LayerNorm(hidden, eps=1e-12)
        inner = intermediate or 4 * hidden
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads, inner) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden) if pooler else None
        self.register_buffer("position_ids", torch.arange(max_positions)[None], persistent=False)
        seeded(self, seed)

    def example_inputs(self, batch: int = EXAMPLE_BATCH):
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, self.vocab, (batch, self.seq), generator=gen)
        mask = torch.ones(batch, self.seq, dtype=torch.int64)
        mask[0, self.seq // 2:] = 0
        return ids, mask

    def forward(self, input_ids, attention_mask):
        positions = self.position_ids[:, : input_ids.shape[1]]
        h = self.word_emb(input_ids) + self.type_emb(torch.zeros_like(input_ids)) + self.pos_emb(positions)
        h = self.ln(h)
        bias = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * -10000.0
        for layer in self.layers:
            h = layer(h, bias)
        if self.pooler is None:
            return h
        return h, torch.tanh(self.pooler(h[:, 0]))


MODELS = {"resnet50": ResNet50, "mobilenet_v2": MobileNetV2, "efficientnet_b0": EfficientNetB0,
          "small_bert": SmallBert}
