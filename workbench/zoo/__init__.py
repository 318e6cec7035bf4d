"""Models to try at once: a small trained digits CNN that ships with workbench, and
writers for ResNet-50, MobileNetV2 and BERT-style ONNX graphs with random weights.

Example: from workbench.zoo import digits, resnet50; resnet50("/tmp/r50.onnx")
"""

from workbench.zoo.bert import bert
from workbench.zoo.cnn import mobilenet_v2, resnet50
from workbench.zoo.digits import Digits, digits

__all__ = ["Digits", "bert", "digits", "mobilenet_v2", "resnet50"]
