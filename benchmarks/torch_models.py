"""The benchmark's models by name, over the single set of definitions in tests/models/torch_models.py.

"resnet50" (v1.5), "mobilenetv2" (width 1.0) and "bert" (BERT-base without the pooler: one output,
last_hidden_state). The same seeded modules give the PyTorch baselines and, exported to ONNX (legacy
exporter, opset 17, dynamic batch) with `model.export(path)`, the workbench engines.
Needs the repository root on sys.path (bench_gpu.py puts it there).
"""
from __future__ import annotations

import torch
from torch import nn

from tests.models import torch_models as defs

BERT_VOCAB = defs.BERT_BASE["vocab"]


def make(name: str, seq: int = 128) -> nn.Module:
    """The seeded model in eval mode; `seq` is the sequence length BERT's export is traced at."""
    if name == "bert":
        return defs.SmallBert(**defs.BERT_BASE, seq=seq, pooler=False)
    return {"resnet50": defs.ResNet50, "mobilenetv2": defs.MobileNetV2}[name]()


def inputs(name: str, batch: int, seq: int = 128, device="cpu", generator=None) -> dict:
    """Fresh random inputs by name (images, or token ids in [0, 30522) and a mask of ones)."""
    if name == "bert":
        ids = torch.randint(0, BERT_VOCAB, (batch, seq), device=device, generator=generator)
        return {"input_ids": ids, "attention_mask": torch.ones(batch, seq, dtype=torch.int64, device=device)}
    return {"input": torch.randn(batch, 3, 224, 224, device=device, generator=generator)}
