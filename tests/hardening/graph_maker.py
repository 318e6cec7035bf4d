"""Random small VALID graphs of the ops that have CPU kernels, for comparing workbench with onnx.reference.

    >>> model = random_graph(random.Random(3))   # an onnx.ModelProto of 1..8 nodes on tiny tensors
"""
from __future__ import annotations

import math
import random

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from workbench.backends.cpu.registry import kernel_for

OPSET = 21


class GraphMaker:
    """Builds a random valid ONNX graph of tiny float32 tensors from ops that have CPU kernels.

    Each `add_*` method appends one node (with its constants) and returns the new tensor's name;
    shapes are tracked here so every choice is valid by construction.
    """

    # no Log/Sqrt: NaNs from negative inputs meet ops whose NaN handling ONNX leaves open (MaxPool...);
    # no Reciprocal: near 0 it amplifies rounding differences upstream beyond any tolerance, and makes infs
    UNARY = ["Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Softplus", "Softsign", "Erf", "Floor", "Ceil",
             "Sin", "Cos", "Atan", "Sign", "Round", "HardSwish", "Mish"]
    ACTIVATIONS = {"LeakyRelu": {"alpha": (0.01, 0.3)}, "Elu": {"alpha": (0.5, 2.0)},
                   "HardSigmoid": {"alpha": (0.1, 0.5), "beta": (0.2, 0.8)}, "Selu": {},
                   "Celu": {"alpha": (0.5, 2.0)}, "ThresholdedRelu": {"alpha": (0.0, 1.0)},
                   "Gelu": {}, "Shrink": {"lambd": (0.0, 1.0), "bias": (0.0, 1.0)}}
    BINARY = ["Add", "Sub", "Mul", "Div", "Max", "Min"]
    REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceSumSquare", "ReduceLogSumExp"]

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.nodes, self.inits, self.inputs = [], [], []
        self.shapes: dict = {}
        self.count = 0

    # ---- plumbing
    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}{self.count}"

    def const(self, array, base: str = "c") -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weights(self, shape, low=-1.0, high=1.0) -> str:
        gen = np.random.default_rng(self.rng.getrandbits(32))
        return self.const(gen.uniform(low, high, size=shape).astype(np.float32), "w")

    def node(self, op: str, inputs: list, shape: tuple, **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name("n"), **attrs))
        self.shapes[out] = tuple(shape)
        return out

    def add_input(self) -> str:
        rank = self.rng.randint(1, 4)
        shape = tuple(self.rng.randint(1, 4) for _ in range(rank))
        name = self.name("x")
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        self.shapes[name] = shape
        return name

    def uniform(self, bounds) -> float:
        return round(self.rng.uniform(*bounds), 3)

    # ---- ops
    def add_unary(self, x):
        ops = [o for o in self.UNARY + list(self.ACTIVATIONS) if kernel_for(o)]
        op = self.rng.choice(ops)
        attrs = {k: self.uniform(b) for k, b in self.ACTIVATIONS.get(op, {}).items()}
        return self.node(op, [x], self.shapes[x], **attrs)

    def add_binary(self, x):
        shape = self.shapes[x]
        keep = self.rng.randint(0, len(shape))  # the other operand broadcasts over a suffix of x's dims
        other_shape = tuple(d if self.rng.random() < 0.7 else 1 for d in shape[len(shape) - keep:])
        op = self.rng.choice([o for o in self.BINARY if kernel_for(o)])
        other = self.weights(other_shape, 0.5, 2.0) if op == "Div" else self.weights(other_shape)
        args = [x, other] if self.rng.random() < 0.5 else [other, x]
        if op == "Div":
            args = [x, other]
        return self.node(op, args, shape)

    def add_transpose(self, x):
        perm = list(range(len(self.shapes[x])))
        self.rng.shuffle(perm)
        return self.node("Transpose", [x], tuple(self.shapes[x][p] for p in perm), perm=perm)

    def add_reshape(self, x):
        shape = self.shapes[x]
        target, i = [], 0
        while i < len(shape):  # merge runs of adjacent dims
            j = self.rng.randint(i + 1, len(shape))
            target.append(math.prod(shape[i:j]))
            i = j
        if self.rng.random() < 0.3:
            target.insert(self.rng.randint(0, len(target)), 1)
        out = tuple(target)
        coded = list(target)
        if self.rng.random() < 0.5:
            coded[self.rng.randrange(len(coded))] = -1
        return self.node("Reshape", [x, self.const(np.array(coded, np.int64), "shape")], out)

    def add_flatten(self, x):
        shape = self.shapes[x]
        axis = self.rng.randint(-len(shape), len(shape))
        a = axis + len(shape) if axis < 0 else axis
        return self.node("Flatten", [x], (math.prod(shape[:a]), math.prod(shape[a:])), axis=axis)

    def add_concat(self, x):
        shape = self.shapes[x]
        axis = self.rng.randrange(len(shape))
        same = [t for t, s in self.shapes.items() if len(s) == len(shape) and t != x
                and all(a == b for i, (a, b) in enumerate(zip(s, shape)) if i != axis)]
        other = self.rng.choice(same) if same and self.rng.random() < 0.7 else self.add_unary(x)
        out = list(shape)
        out[axis] += self.shapes[other][axis]
        return self.node("Concat", [x, other], tuple(out), axis=axis - len(shape) * self.rng.randint(0, 1))

    def add_slice(self, x):
        shape = self.shapes[x]
        axes = self.rng.sample(range(len(shape)), self.rng.randint(1, len(shape)))
        starts, ends, steps, out = [], [], [], list(shape)
        for a in axes:
            step = self.rng.choice([1, 1, 2, -1, -2])
            start, end = self.rng.randint(-5, 5), self.rng.randint(-5, 5)
            if self.rng.random() < 0.2:
                end = (2**63 - 1) if step > 0 else -(2**63)
            n = len(range(*slice(start, end, step).indices(shape[a])))
            starts.append(start), ends.append(end), steps.append(step)
            out[a] = n
        if 0 in out:
            return x  # keep the graph's tensors non-empty: reference and numpy disagree on nothing then
        ins = [x] + [self.const(np.array(v, np.int64), "s") for v in (starts, ends, axes, steps)]
        return self.node("Slice", ins, tuple(out))

    def add_unsqueeze(self, x):
        shape = self.shapes[x]
        axis = self.rng.randint(-len(shape) - 1, len(shape))
        out = list(shape)
        out.insert(axis % (len(shape) + 1), 1)
        return self.node("Unsqueeze", [x, self.const(np.array([axis], np.int64), "axes")], tuple(out))

    def add_squeeze(self, x):
        shape = self.shapes[x]
        ones = [i for i, d in enumerate(shape) if d == 1]
        if not ones or len(shape) == 1:
            return x
        axes = self.rng.sample(ones, self.rng.randint(1, min(len(ones), len(shape) - 1)))  # keep rank >= 1
        out = tuple(d for i, d in enumerate(shape) if i not in axes)
        return self.node("Squeeze", [x, self.const(np.array(axes, np.int64), "axes")], out)

    def add_softmax(self, x):
        shape = self.shapes[x]
        op = self.rng.choice([o for o in ("Softmax", "LogSoftmax") if kernel_for(o)])
        return self.node(op, [x], shape, axis=self.rng.randint(-len(shape), len(shape) - 1))

    def add_reduce(self, x):
        shape = self.shapes[x]
        op = self.rng.choice([o for o in self.REDUCE if kernel_for(o)])
        axes = sorted(self.rng.sample(range(len(shape)), self.rng.randint(1, len(shape))))
        # no scalars: several of onnx.reference's unary ops fail on 0-d arrays
        keep = 1 if len(axes) == len(shape) else self.rng.randint(0, 1)
        out = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keep else \
            tuple(d for i, d in enumerate(shape) if i not in axes)
        if op == "ReduceProd" and math.prod(shape[a] for a in axes) > 8:
            return x  # products of many values overflow float32 in ways not worth comparing
        return self.node(op, [x, self.const(np.array(axes, np.int64), "axes")], out, keepdims=keep)

    def add_matmul(self, x):
        shape = self.shapes[x]
        n = self.rng.randint(1, 4)
        w = self.weights((shape[-1], n))
        out = shape[:-1] + (n,) if len(shape) > 1 else (n,)
        return self.node("MatMul", [x, w], out)

    def add_gemm(self, x):
        shape = self.shapes[x]
        if len(shape) != 2:
            return self.add_flatten(x)
        n, trans_b = self.rng.randint(1, 4), self.rng.randint(0, 1)
        b = self.weights((n, shape[1]) if trans_b else (shape[1], n))
        return self.node("Gemm", [x, b, self.weights((n,))], (shape[0], n), transB=trans_b,
                         alpha=self.uniform((0.5, 2.0)), beta=self.uniform((0.5, 2.0)))

    def _spatial(self, x):
        """x's shape when it is (N, C, 1 to 3 spatial dims) (onnx.reference pools no more), else None."""
        shape = self.shapes[x]
        return shape if 3 <= len(shape) <= 5 else None

    def _window(self, size: int):
        """(kernel, pad, stride, dilation) for one spatial dim: pads under half the kernel (the reference's
        pooling mis-indexes larger ones) and a window that fits the padded size."""
        k = self.rng.randint(1, 3)
        pad = self.rng.randint(0, k // 2)
        k = min(k, size + 2 * pad)
        return k, min(pad, k // 2), self.rng.randint(1, 2), 1

    def add_conv(self, x):
        shape = self._spatial(x)
        if shape is None:
            return self.add_unary(x)
        c = shape[1]
        group = self.rng.choice([g for g in range(1, c + 1) if c % g == 0])
        m = group * self.rng.randint(1, 2)
        wins = [self._window(d) for d in shape[2:]]
        out = (shape[0], m) + tuple((d + 2 * p - k) // s + 1 for d, (k, p, s, _) in zip(shape[2:], wins))
        w = self.weights((m, c // group) + tuple(k for k, *_ in wins))
        ins = [x, w] + ([self.weights((m,))] if self.rng.random() < 0.5 else [])
        pads = [p for _, p, _, _ in wins] * 2
        return self.node("Conv", ins, out, kernel_shape=[k for k, *_ in wins], pads=pads,
                         strides=[s for *_, s, _ in wins], group=group)

    def add_pool(self, x):
        shape = self._spatial(x)
        if shape is None:
            return self.add_unary(x)
        op = self.rng.choice([o for o in ("MaxPool", "AveragePool") if kernel_for(o)])
        wins = [self._window(d) for d in shape[2:]]
        if op == "MaxPool":  # onnx.reference's MaxPool gets padded shapes wrong (onnxruntime agrees with us)
            wins = [(min(k, d), 0, s, dil) for d, (k, _, s, dil) in zip(shape[2:], wins)]
        out = shape[:2] + tuple((d + 2 * p - k) // s + 1 for d, (k, p, s, _) in zip(shape[2:], wins))
        attrs = dict(kernel_shape=[k for k, *_ in wins], pads=[p for _, p, _, _ in wins] * 2,
                     strides=[s for *_, s, _ in wins])
        if op == "AveragePool":
            attrs["count_include_pad"] = self.rng.randint(0, 1)
        return self.node(op, [x], out, **attrs)

    def add_global_pool(self, x):
        shape = self._spatial(x)
        if shape is None or len(shape) != 4:  # onnx.reference reduces the wrong axes at other ranks
            return self.add_unary(x)
        op = self.rng.choice([o for o in ("GlobalAveragePool", "GlobalMaxPool") if kernel_for(o)])
        return self.node(op, [x], shape[:2] + (1,) * (len(shape) - 2))

    def add_batchnorm(self, x):
        shape = self.shapes[x]
        if len(shape) < 2:
            return self.add_unary(x)
        c = shape[1]
        ins = [x, self.weights((c,)), self.weights((c,)), self.weights((c,)), self.weights((c,), 0.5, 2.0)]
        return self.node("BatchNormalization", ins, shape, epsilon=1e-5)

    FAMILIES = {  # method -> ops that must have kernels for it to be used
        "add_unary": ["Relu"], "add_binary": ["Add"], "add_transpose": ["Transpose"], "add_reshape": ["Reshape"],
        "add_flatten": ["Flatten"], "add_concat": ["Concat"], "add_slice": ["Slice"],
        "add_unsqueeze": ["Unsqueeze"], "add_squeeze": ["Squeeze"], "add_softmax": ["Softmax"],
        "add_reduce": ["ReduceSum"], "add_matmul": ["MatMul"], "add_gemm": ["Gemm", "Flatten"],
        "add_conv": ["Conv"], "add_pool": ["MaxPool"], "add_global_pool": ["GlobalAveragePool"],
        "add_batchnorm": ["BatchNormalization"],
    }

    def families(self) -> list:
        return [m for m, ops in self.FAMILIES.items() if all(kernel_for(o) for o in ops)]

    def model(self, n_ops: int) -> onnx.ModelProto:
        tensors = [self.add_input()]
        if self.rng.random() < 0.3:
            tensors.append(self.add_input())
        families = self.families()
        for _ in range(n_ops):
            x = self.rng.choice(tensors)
            tensors.append(getattr(self, self.rng.choice(families))(x))
        # every tensor nothing reads is an output, so no node is dead code the builder may drop
        read = {name for node in self.nodes for name in node.input}
        outs = [t for t in dict.fromkeys(tensors) if t not in read and t not in {i.name for i in self.inputs}]
        outs = outs or [self.node("Identity", [tensors[0]], self.shapes[tensors[0]])]
        graph = helper.make_graph(self.nodes, "fuzz", self.inputs,
                                  [helper.make_tensor_value_info(o, TensorProto.FLOAT, self.shapes[o]) for o in outs],
                                  self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def random_graph(rng: random.Random, max_ops: int = 8) -> onnx.ModelProto:
    """A random valid model of 1..max_ops nodes (see GraphMaker)."""
    return GraphMaker(rng).model(rng.randint(1, max_ops))
