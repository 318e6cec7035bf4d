"""ResNet-50 v1.5 and MobileNetV2 written as ONNX with seeded random weights.

The topologies are the real ones (torchvision's), exported the way torch does
in eval mode: Conv + BatchNormalization kept apart (so folding has work),
ReLU6 as Clip with min/max inputs, GlobalAveragePool + Flatten + Gemm head.
Weights are He-initialised and the last BN of each residual branch is scaled
down, so activations stay O(1) through the whole network.
"""

from __future__ import annotations

from pathlib import Path

from workbench.zoo._graph import GraphWriter

#: ResNet-50: (bottleneck width, number of blocks, stride of the first block) per stage.
RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))

#: MobileNetV2: (expansion t, output channels c, repeats n, first stride s), from the paper.
MOBILENET_V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

# Residual branches end in a BN scaled by this, so the sum grows slowly with depth.
_BRANCH_GAMMA = 0.2


def _conv_bn(g: GraphWriter, x: str, cin: int, cout: int, k: int, stride: int = 1,
             groups: int = 1, gamma: float = 1.0) -> str:
    return g.batchnorm(g.conv(x, cin, cout, k, stride, groups), cout, gamma)


def _image_model(g: GraphWriter, path, x: str, channels: int, batch, num_classes: int) -> Path:
    """Add the GAP -> Flatten -> Gemm head and save with the standard image IO."""
    pooled = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)
    g.rename(g.gemm(pooled, channels, num_classes), "logits")
    return g.save(path, [("input", "float32", [batch, 3, 224, 224])],
                  [("logits", "float32", [batch, num_classes])])


def _bottleneck(g: GraphWriter, x: str, cin: int, width: int, stride: int) -> str:
    """ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""
    cout = 4 * width
    y = g.node("Relu", [_conv_bn(g, x, cin, width, 1)])
    y = g.node("Relu", [_conv_bn(g, y, width, width, 3, stride)])
    y = _conv_bn(g, y, width, cout, 1, gamma=_BRANCH_GAMMA)
    shortcut = x if stride == 1 and cin == cout else _conv_bn(g, x, cin, cout, 1, stride)
    return g.node("Relu", [g.node("Add", [y, shortcut])])


def resnet50(path, batch="batch", num_classes: int = 1000, opset: int = 17, seed: int = 0) -> Path:
    """Write a ResNet-50 v1.5 with random weights to `path` and return the path.

    Input "input" (batch, 3, 224, 224) float32, output "logits" (batch, num_classes).
    Example: resnet50("/tmp/resnet50.onnx", batch=1)
    """
    g = GraphWriter("resnet50", opset, seed)
    x = g.node("Relu", [_conv_bn(g, "input", 3, 64, 7, 2)])
    x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for width, blocks, stride in RESNET50_STAGES:
        for i in range(blocks):
            x = _bottleneck(g, x, cin, width, stride if i == 0 else 1)
            cin = 4 * width
    return _image_model(g, path, x, cin, batch, num_classes)


def _relu6(g: GraphWriter, x: str, bounds: tuple[str, str]) -> str:
    return g.node("Clip", [x, *bounds])


def _inverted_residual(g: GraphWriter, x: str, cin: int, cout: int, stride: int, t: int,
                       bounds: tuple[str, str]) -> str:
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, linear 1x1 project, skip when shapes match."""
    hidden = cin * t
    y = x if t == 1 else _relu6(g, _conv_bn(g, x, cin, hidden, 1), bounds)
    y = _relu6(g, _conv_bn(g, y, hidden, hidden, 3, stride, groups=hidden), bounds)
    if stride == 1 and cin == cout:
        return g.node("Add", [x, _conv_bn(g, y, hidden, cout, 1, gamma=_BRANCH_GAMMA)])
    # No ReLU after the projection, so a He-scaled conv needs a smaller gain to stay O(1).
    return _conv_bn(g, y, hidden, cout, 1, gamma=0.7)


def mobilenet_v2(path, batch="batch", num_classes: int = 1000, opset: int = 17, seed: int = 0) -> Path:
    """Write a MobileNetV2 (width 1.0) with random weights to `path` and return the path.

    Input "input" (batch, 3, 224, 224) float32, output "logits" (batch, num_classes).
    Example: mobilenet_v2("/tmp/mobilenet_v2.onnx")
    """
    g = GraphWriter("mobilenet_v2", opset, seed)
    # torch exports ReLU6 as Clip with scalar min/max inputs; share one pair.
    bounds = (g.constant(0.0, "float32"), g.constant(6.0, "float32"))
    x = _relu6(g, _conv_bn(g, "input", 3, 32, 3, 2), bounds)
    cin = 32
    for t, c, n, s in MOBILENET_V2_BLOCKS:
        for i in range(n):
            x = _inverted_residual(g, x, cin, c, s if i == 0 else 1, t, bounds)
            cin = c
    x = _relu6(g, _conv_bn(g, x, cin, 1280, 1), bounds)
    return _image_model(g, path, x, 1280, batch, num_classes)
