"""A small ONNX graph writer shared by the zoo builders.

It keeps the node list, the initializers and a seeded random generator, and
knows the few opset differences the zoo graphs touch (axes as an input or an
attribute), so each model builder reads like the network it describes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from workbench.errors import ConfigError
from workbench.fileio import atomic_write

#: Oldest opset the zoo writes: Unsqueeze/Squeeze take axes as an input from 13 on.
MIN_OPSET = 13

_ONNX_DTYPES = {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64}


def check_opset(opset: int) -> int:
    """Return `opset` if the zoo can write it, else raise ConfigError saying which ones it can."""
    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= latest:
        raise ConfigError(f"zoo models are written for opset {MIN_OPSET}..{latest}, not {opset}: pass opset=17")
    return opset


class GraphWriter:
    """Accumulates nodes and weights; `save()` writes, checks and returns the model path.

    Example: g = GraphWriter("tiny", opset=17); y = g.node("Relu", ["x"]); g.save(p, [...], [...])
    """

    def __init__(self, name: str, opset: int = 17, seed: int = 0):
        self.name = name
        self.opset = check_opset(opset)
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count: dict[str, int] = {}

    def fresh(self, prefix: str) -> str:
        """A new unique tensor/node name starting with `prefix`."""
        n = self._count.get(prefix, 0)
        self._count[prefix] = n + 1
        return f"{prefix}_{n}"

    # ---- tensors -----------------------------------------------------------

    def weight(self, name: str, array: np.ndarray) -> str:
        """Store `array` as an initializer called `name` (made unique) and return its name."""
        name = self.fresh(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, order="C"), name))
        return name

    def normal(self, name: str, shape: tuple[int, ...], std: float) -> str:
        """A float32 initializer drawn from N(0, std^2)."""
        return self.weight(name, self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std))

    def uniform(self, name: str, shape: tuple[int, ...], low: float, high: float) -> str:
        """A float32 initializer drawn from U(low, high)."""
        return self.weight(name, self.rng.uniform(low, high, shape).astype(np.float32))

    def constant(self, value, dtype: str = "int64") -> str:
        """A Constant node (as torch exports scalars and shape pieces) and return its output."""
        out = self.fresh("const")
        tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype), out + "_value")
        self.nodes.append(helper.make_node("Constant", [], [out], name=out, value=tensor))
        return out

    # ---- nodes -------------------------------------------------------------

    def node(self, op: str, inputs: list[str], n_out: int = 1, **attrs):
        """Append one node; return its output name (or a list of names when n_out > 1)."""
        name = self.fresh(op)
        outputs = [f"{name}_out{i}" if n_out > 1 else f"{name}_out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs if n_out > 1 else outputs[0]

    def reduce_mean(self, x: str, axes: list[int], keepdims: int = 1) -> str:
        """ReduceMean with axes as an attribute before opset 18 and as an input from 18 on."""
        if self.opset >= 18:
            return self.node("ReduceMean", [x, self.constant(axes)], keepdims=keepdims)
        return self.node("ReduceMean", [x], axes=axes, keepdims=keepdims)

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        """Unsqueeze with axes as an input (opset >= 13)."""
        return self.node("Unsqueeze", [x, self.constant(axes)])

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
             weight: np.ndarray | None = None, bias: np.ndarray | None = None) -> str:
        """A square 'same'-padded Conv; He-initialised weights unless `weight` is given."""
        if weight is None:
            fan_in = cin // groups * k * k
            w = self.normal("conv_w", (cout, cin // groups, k, k), np.sqrt(2.0 / fan_in))
        else:
            w = self.weight("conv_w", weight.astype(np.float32))
        inputs = [x, w] if bias is None else [x, w, self.weight("conv_b", bias.astype(np.float32))]
        pad = k // 2
        return self.node("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad] * 4, group=groups, dilations=[1, 1])

    def batchnorm(self, x: str, channels: int, gamma: float = 1.0, params: dict | None = None,
                  eps: float = 1e-5) -> str:
        """BatchNormalization (inference form).

        Without `params`, the statistics are random but near the identity (mean ~ 0,
        var ~ 1) and scale ~ `gamma`, so activations stay O(1) while folding still
        has real numbers to fold. `params` holds scale/bias/mean/var arrays instead.
        """
        if params is None:
            params = {
                "scale": self.rng.uniform(0.8, 1.2, channels) * gamma,
                "bias": self.rng.normal(0.0, 0.05, channels),
                "mean": self.rng.normal(0.0, 0.05, channels),
                "var": self.rng.uniform(0.8, 1.2, channels),
            }
        names = [self.weight(f"bn_{k}", np.asarray(params[k], np.float32))
                 for k in ("scale", "bias", "mean", "var")]
        return self.node("BatchNormalization", [x, *names], epsilon=eps, momentum=0.9)

    def gemm(self, x: str, cin: int, cout: int, weight: np.ndarray | None = None,
             bias: np.ndarray | None = None) -> str:
        """Gemm with transB=1, as torch exports nn.Linear on 2-D input."""
        w = (self.normal("fc_w", (cout, cin), np.sqrt(1.0 / cin)) if weight is None
             else self.weight("fc_w", weight.astype(np.float32)))
        b = (self.uniform("fc_b", (cout,), -0.1, 0.1) if bias is None
             else self.weight("fc_b", bias.astype(np.float32)))
        return self.node("Gemm", [x, w, b], alpha=1.0, beta=1.0, transB=1)

    # ---- output ------------------------------------------------------------

    def save(self, path, inputs: list[tuple[str, str, list]], outputs: list[tuple[str, str, list]]) -> Path:
        """Write the model to `path`, run the full ONNX checker on it, return the path.

        `inputs`/`outputs` are (name, dtype, shape) with str dims for dynamic ones;
        output names must already be produced by a node (see `rename`).
        """
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info(n, _ONNX_DTYPES[d], s) for n, d, s in inputs],
            [helper.make_tensor_value_info(n, _ONNX_DTYPES[d], s) for n, d, s in outputs],
            initializer=self.initializers,
        )
        opsets = [helper.make_opsetid("", self.opset)]
        # The lowest IR version that carries this opset, so older runtimes load the file too.
        model = helper.make_model(graph, opset_imports=opsets, producer_name="workbench.zoo",
                                  ir_version=helper.find_min_ir_version_for(opsets))
        # Serialise once (the costly step for big models): check the bytes, then write them.
        data = model.SerializeToString()
        onnx.checker.check_model(data, full_check=True)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, data, "ONNX model")  # an interrupted write leaves no half model

    def rename(self, tensor: str, name: str) -> str:
        """Make the node producing `tensor` write `name` instead (for graph outputs)."""
        for node in reversed(self.nodes):
            for i, out in enumerate(node.output):
                if out == tensor:
                    node.output[i] = name
                    self._replace_uses(tensor, name)
                    return name
        raise KeyError(tensor)

    def _replace_uses(self, old: str, new: str) -> None:
        for node in self.nodes:
            for i, inp in enumerate(node.input):
                if inp == old:
                    node.input[i] = new
