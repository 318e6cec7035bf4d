"""The Network IR: tensors and layers with edges by name; producers and consumers are computed.

    >>> net = Network("tiny")
    >>> x = net.add_input("x", "float32", ("batch", 4))
    >>> y = net.add_activation(x, "Relu")
    >>> net.mark_output(y)
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field

import numpy as np

from ..errors import ValidationError

# Subgraphs (If branches, Loop and Scan bodies) may nest this deep: a bound for untrusted models.
MAX_SUBGRAPH_DEPTH = 32


@dataclass
class Tensor:
    """One value of the graph: an input, an activation or a weight (then its data is in Network.weights)."""

    name: str
    dtype: str
    shape: tuple | None = None


@dataclass
class Layer:
    """One op applied to named inputs ("" for an omitted optional input), producing named outputs."""

    name: str
    op: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    domain: str = ""
    fused: list = field(default_factory=list)  # names of the source layers this layer stands for

    @property
    def output(self) -> str:
        return self.outputs[0]

    def subgraphs(self) -> list:
        """(attribute name, sub-Network) of each graph attribute: If branches, Loop and Scan bodies."""
        return [(key, value) for key, value in self.attrs.items() if isinstance(value, Network)]

    def outer_reads(self) -> list:
        """Names the layer's subgraphs read from the graph around the layer (their captured names)."""
        names: dict = {}
        for _, sub in self.subgraphs():
            names.update(dict.fromkeys(sub.captured()))
        return list(names)

    def reads(self) -> list:
        """Every tensor the layer reads: its inputs, then what its subgraphs capture (each name once)."""
        return list(dict.fromkeys([n for n in self.inputs if n] + self.outer_reads()))


@dataclass
class Network:
    """A computation graph: graph inputs, layers in topological order, weights and marked outputs."""

    name: str = "network"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    layers: list = field(default_factory=list)
    tensors: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    opset: int = 21
    metadata: dict = field(default_factory=dict)

    # ---- derived views -------------------------------------------------------------------------
    def producers(self) -> dict:
        """tensor name -> the layer that writes it."""
        return {out: layer for layer in self.layers for out in layer.outputs if out}

    def consumers(self) -> dict:
        """tensor name -> the layers that read it, in order (a subgraph's outer reads count as reads)."""
        users: dict = {}
        for layer in self.layers:
            for name in layer.reads():
                users.setdefault(name, []).append(layer)
        return users

    def defined(self) -> set:
        """The names this graph defines itself: inputs, weights and layer outputs."""
        return set(self.inputs) | set(self.weights) | {o for layer in self.layers for o in layer.outputs if o}

    def captured(self) -> list:
        """Names read from enclosing graphs (a subgraph's outer-scope references), in order of first use.

        >>> body.captured()   # ['scale'] when a Loop body reads the outer graph's 'scale'
        """
        local = set(self.inputs) | set(self.weights)
        found: dict = {}
        for layer in self.layers:
            found.update(dict.fromkeys(n for n in layer.reads() if n not in local))
            local.update(o for o in layer.outputs if o)
        found.update(dict.fromkeys(n for n in self.outputs if n not in local))
        return list(found)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"network {self.name!r} has no layer {name!r}")

    def copy(self) -> "Network":
        """A copy whose layers and tensors can be edited freely; weights arrays are shared (read-only)."""
        new = copy.copy(self)
        new.inputs, new.outputs = list(self.inputs), list(self.outputs)
        new.layers = [copy.copy(layer) for layer in self.layers]
        for layer in new.layers:
            layer.inputs, layer.outputs = list(layer.inputs), list(layer.outputs)
            layer.attrs = {k: v.copy() if isinstance(v, Network) else v for k, v in layer.attrs.items()}
            layer.fused = list(layer.fused)
        new.tensors = {k: copy.copy(v) for k, v in self.tensors.items()}
        new.weights = dict(self.weights)
        new.metadata = dict(self.metadata)
        return new

    def __repr__(self) -> str:  # short: a layer holding a subgraph prints its attributes
        return (f"Network({self.name!r}, inputs={self.inputs}, outputs={self.outputs}, "
                f"layers={len(self.layers)}, weights={len(self.weights)})")

    def op_histogram(self) -> dict:
        hist: dict = {}
        for layer in self.layers:
            hist[layer.op] = hist.get(layer.op, 0) + 1
        return dict(sorted(hist.items(), key=lambda kv: -kv[1]))

    def parameter_count(self) -> int:
        return int(sum(np.asarray(w).size for w in self.weights.values()))

    # ---- checks ---------------------------------------------------------------------------------
    def validate(self, outer=frozenset(), depth: int = 0) -> "Network":
        """Check names, edges, order and ops, subgraphs included; raise ValidationError naming what is wrong.

        outer: the names visible from enclosing graphs (for a subgraph), depth: how deep it is nested.
        """
        from .ops import spec_for

        if depth > MAX_SUBGRAPH_DEPTH:
            raise ValidationError(f"subgraph {self.name!r} is nested more than {MAX_SUBGRAPH_DEPTH} deep")
        known = set(self.inputs) | set(self.weights)
        where = f"subgraph {self.name!r}: " if depth else ""
        for name in self.inputs:
            if name not in self.tensors:
                raise ValidationError(f"{where}graph input {name!r} has no tensor entry")
        seen_layers = set()
        for layer in self.layers:
            if layer.name in seen_layers:
                raise ValidationError(f"two layers are named {layer.name!r}; layer names must be unique")
            seen_layers.add(layer.name)
            if spec_for(layer.op, layer.domain) is None and not _is_plugin(layer):
                raise ValidationError(f"layer {layer.name!r}: unknown op {layer.op!r} (domain {layer.domain!r})")
            for name in layer.inputs:
                if name and name not in known and name not in outer:
                    raise ValidationError(f"{where}layer {layer.name!r} ({layer.op}) reads {name!r}, which no "
                                          f"earlier layer, input or weight provides (dangling edge or cycle)")
            for key, sub in layer.subgraphs():
                try:
                    sub.validate(known | set(outer), depth + 1)
                except ValidationError as e:
                    raise ValidationError(f"{where}layer {layer.name!r} ({layer.op}) attribute {key!r}: {e}") \
                        from None
            for name in layer.outputs:
                if name and name in known:
                    raise ValidationError(f"{where}layer {layer.name!r} writes {name!r}, which is already defined")
                if name:
                    known.add(name)
        for name in self.outputs:
            if name not in known and name not in outer:
                raise ValidationError(f"{where}marked output {name!r} is not produced by any layer or input")
        return self

    # ---- building by hand (TensorRT's INetworkDefinition spirit) -------------------------------
    def _unique(self, base: str) -> str:
        taken = set(self.tensors) | set(self.weights) | {layer.name for layer in self.layers}
        if base not in taken:
            return base
        for i in itertools.count(1):
            if f"{base}_{i}" not in taken:
                return f"{base}_{i}"

    def add_input(self, name: str, dtype="float32", shape=None) -> str:
        """Declare a graph input.  >>> net.add_input("images", "float32", ("batch", 3, 224, 224))"""
        if name in self.tensors:
            raise ValidationError(f"a tensor named {name!r} already exists")
        self.tensors[name] = Tensor(name, np.dtype(dtype).name if dtype != "bfloat16" else dtype,
                                    tuple(shape) if shape is not None else None)
        self.inputs.append(name)
        return name

    def add_constant(self, value, name: str = "const") -> str:
        """Add a weight tensor.  >>> w = net.add_constant(np.ones((4, 4), np.float32), "w")"""
        arr = np.asarray(value)
        name = self._unique(name)
        self.weights[name] = arr
        self.tensors[name] = Tensor(name, arr.dtype.name, arr.shape)
        return name

    def add_layer(self, op: str, inputs, attrs=None, name: str | None = None, num_outputs: int = 1,
                  domain: str = "") -> Layer:
        """Append a layer of any registered op; its output tensors get fresh names and inferred shapes."""
        name = self._unique(name or op.lower())
        outputs = [self._unique(f"{name}_out{i}" if num_outputs > 1 else f"{name}_out")
                   for i in range(num_outputs)]
        attrs = dict(attrs or {})
        if op == "Split" and not domain:
            attrs.setdefault("_num_outputs", num_outputs)
        layer = Layer(name, op, [i or "" for i in inputs], outputs, attrs, domain)
        self.layers.append(layer)
        for out in outputs:
            self.tensors[out] = Tensor(out, "float32", None)
        from .shapes import infer_layer

        infer_layer(self, layer)
        return layer

    def mark_output(self, name: str) -> None:
        """Make tensor `name` an output of the network."""
        if name not in self.tensors:
            raise ValidationError(f"cannot mark {name!r} as output: no such tensor")
        if name not in self.outputs:
            self.outputs.append(name)

    def _weight(self, value, name):
        return value if isinstance(value, str) else self.add_constant(np.asarray(value), name)

    def add_convolution(self, input: str, kernel, bias=None, stride=1, padding=0, dilation=1,
                        groups: int = 1, name: str | None = None) -> Layer:
        """2-D (or N-D) convolution; kernel is (out_ch, in_ch/groups, *k).

        >>> conv = net.add_convolution(x, np.random.randn(8, 3, 3, 3).astype("f4"), padding=1)
        """
        k = np.asarray(kernel) if not isinstance(kernel, str) else self.weights[kernel]
        nd = k.ndim - 2
        as_list = lambda v: [int(v)] * nd if np.isscalar(v) else [int(i) for i in v]  # noqa: E731
        pads = as_list(padding)
        inputs = [input, self._weight(kernel, f"{name or 'conv'}_w")]
        if bias is not None:
            inputs.append(self._weight(bias, f"{name or 'conv'}_b"))
        attrs = dict(strides=as_list(stride), pads=pads + pads, dilations=as_list(dilation), group=int(groups),
                     kernel_shape=list(k.shape[2:]))
        return self.add_layer("Conv", inputs, attrs, name)

    def add_matmul(self, a: str, b, name: str | None = None) -> Layer:
        """Matrix product with numpy semantics; `b` may be a tensor name or an array (a weight)."""
        return self.add_layer("MatMul", [a, self._weight(b, f"{name or 'matmul'}_w")], {}, name)

    def add_fully_connected(self, input: str, weight, bias=None, name: str | None = None) -> Layer:
        """y = x @ weight.T + bias, weight (out, in), like a torch Linear."""
        inputs = [input, self._weight(weight, f"{name or 'fc'}_w")]
        if bias is not None:
            inputs.append(self._weight(bias, f"{name or 'fc'}_b"))
        return self.add_layer("Gemm", inputs, {"transB": 1}, name)

    def add_activation(self, input: str, kind: str = "Relu", name: str | None = None, **attrs) -> Layer:
        """An activation by its ONNX op name: Relu, Sigmoid, Tanh, LeakyRelu(alpha=), Gelu, Clip..."""
        return self.add_layer(kind, [input], attrs, name)

    def add_elementwise(self, a: str, b, kind: str = "Add", name: str | None = None) -> Layer:
        """A binary elementwise op by its ONNX name: Add, Sub, Mul, Div, Pow, Max, Min..."""
        return self.add_layer(kind, [a, self._weight(b, f"{name or kind.lower()}_c")], {}, name)

    def add_pooling(self, input: str, kind: str = "MaxPool", kernel=2, stride=None, padding=0,
                    name: str | None = None) -> Layer:
        """MaxPool / AveragePool over the spatial dims, or GlobalAveragePool / GlobalMaxPool."""
        if kind.startswith("Global"):
            return self.add_layer(kind, [input], {}, name)
        nd = len(self.tensors[input].shape) - 2 if self.tensors[input].shape else 2
        as_list = lambda v: [int(v)] * nd if np.isscalar(v) else [int(i) for i in v]  # noqa: E731
        k = as_list(kernel)
        pads = as_list(padding)
        attrs = dict(kernel_shape=k, strides=as_list(stride if stride is not None else kernel), pads=pads + pads)
        return self.add_layer(kind, [input], attrs, name)

    def add_softmax(self, input: str, axis: int = -1, name: str | None = None) -> Layer:
        return self.add_layer("Softmax", [input], {"axis": axis}, name)

    def add_shuffle(self, input: str, shape=None, perm=None, name: str | None = None) -> Layer:
        """Reshape and/or transpose, like TensorRT's shuffle layer (0 in shape copies that dim)."""
        out = input
        if perm is not None:
            out = self.add_layer("Transpose", [out], {"perm": list(perm)}, name).output
        if shape is not None:
            shape_w = self.add_constant(np.asarray(shape, np.int64), f"{name or 'reshape'}_shape")
            return self.add_layer("Reshape", [out, shape_w], {}, name)
        return self.layers[-1]

    def add_plugin(self, op: str, inputs, attrs=None, num_outputs: int = 1, name: str | None = None) -> Layer:
        """A layer of a registered plugin op (see `workbench.plugin`)."""
        from ..plugins import PLUGIN_DOMAIN

        return self.add_layer(op, inputs, attrs, name, num_outputs, domain=PLUGIN_DOMAIN)


def _is_plugin(layer: Layer) -> bool:
    from ..plugins import lookup

    return lookup(layer.op) is not None
