"""Fuzz case generators shared by the hardening tests (hypothesis) and scripts/fuzz_long.py.

Every generator takes a `random.Random` (hypothesis passes its own, shrinkable one) and every case
runs through `outcome(fn)`, which sorts what happened into: "ok" (a result, correct where an oracle
exists), "refused" (a WorkbenchError), or a bug: "exception" (any other exception), "mismatch" (a
result that differs from onnx.reference), "timeout", or "memory" (an allocation that failed instead of
being refused up front by the size limits). The property under test: no bugs.

    >>> rng = random.Random(3)
    >>> outcome(lambda: run_model(random_graph(rng), rng))   # ('ok', '')
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import signal
import threading
import time
import traceback
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import workbench as wb
from workbench.backends.cpu.registry import kernel_for
from workbench.errors import WorkbenchError

OPSET = 21
BUG_KINDS = ("exception", "mismatch", "timeout", "memory")
# Fuzzed tensors stay tiny; anything bigger than this is a bomb the limits must refuse.
FUZZ_TENSOR_LIMIT = 64 << 20
FUZZ_LOOP_ITERATIONS = 10_000


class Mismatch(AssertionError):
    """Workbench ran and returned something other than onnx.reference's answer."""


class CaseTimeout(BaseException):
    """A case ran past its time bound (a BaseException so no `except Exception` swallows it)."""


# ------------------------------------------------------------------------------------ running
@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt the body with CaseTimeout after `seconds` (main thread only; elsewhere no bound)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def expire(signum, frame):
        raise CaseTimeout(f"case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def small_limits():
    """Fuzz under a low tensor limit, so an unrefused bomb shows up fast instead of eating memory."""
    from workbench import limits

    saved = limits._override, limits.MAX_LOOP_ITERATIONS
    limits.set_tensor_limit(FUZZ_TENSOR_LIMIT)
    limits.MAX_LOOP_ITERATIONS = FUZZ_LOOP_ITERATIONS
    try:
        yield
    finally:
        limits._override, limits.MAX_LOOP_ITERATIONS = saved


def outcome(fn, seconds: float = 10.0) -> tuple:
    """(kind, detail) of calling fn(): kind is 'ok', 'refused' or one of BUG_KINDS."""
    try:
        # garbage weights overflow and produce NaNs: numerically meaningless, not what is under test
        with small_limits(), time_limit(seconds), np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fn()
        return "ok", ""
    except WorkbenchError as e:
        if "MemoryError" in str(e):  # a kernel's allocation failed: the limits should have refused it first
            return "memory", f"{type(e).__name__}: {e}"
        return "refused", f"{type(e).__name__}: {str(e)[:200]}"
    except CaseTimeout as e:
        return "timeout", str(e)
    except Mismatch as e:
        return "mismatch", str(e)[:2000]
    except Exception as e:  # noqa: BLE001 - exactly what the fuzzers look for
        return "exception", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}"


def run_model(model, rng: random.Random, compare: str = "if valid") -> None:
    """Load, build and execute `model` (ModelProto or bytes) on random inputs; compare with onnx.reference.

    compare: "always" (a model valid by construction), "if valid" (only when onnx's checker accepts the
    model: a mutated model's result is defined only then) or "never". Raises Mismatch when workbench's
    outputs differ from the reference's.
    """
    net = wb.load_onnx(model)
    shapes = input_shapes(net, rng)
    profile = {name: (shape,) * 3 for name, shape in shapes.items()}
    engine = wb.build(net, wb.BuilderConfig(device="cpu", profiles=[profile] if profile else []))
    feeds = {name: random_array(shape, net.tensors[name].dtype, rng) for name, shape in shapes.items()}
    got = engine.create_execution_context().execute(feeds)
    if compare == "never" or reference_quirk(model) or (compare == "if valid" and not is_valid_onnx(model)):
        return
    want = reference_outputs(model, feeds, strict=compare == "always")
    if want is not None:
        assert_close(got, want)


def input_shapes(net, rng: random.Random) -> dict:
    """A concrete shape per input: symbolic dims get small sizes (one size per name)."""
    sizes: dict = {}
    return {name: tuple(d if isinstance(d, int) else sizes.setdefault(d, rng.randint(1, 3))
                        for d in net.tensors[name].shape or ()) for name in net.inputs}


def random_array(shape, dtype: str, rng: random.Random) -> np.ndarray:
    gen = np.random.default_rng(rng.getrandbits(32))
    if dtype == "bool":
        return gen.random(shape) < 0.5
    if np.issubdtype(np.dtype(dtype) if dtype != "bfloat16" else np.float32, np.integer):
        return gen.integers(0, 3, size=shape).astype(dtype)
    from workbench.dtypes import np_dtype

    return gen.uniform(-2, 2, size=shape).astype(np_dtype(dtype))


def is_valid_onnx(model) -> bool:
    """Whether onnx's checker (types and shapes included) accepts the model: only then is a result defined."""
    try:
        proto = model if isinstance(model, onnx.ModelProto) else onnx.load_from_string(model)
        if _negative_dims(proto):
            return False  # onnx's shape inference aborts the process on them (an assertion in Slice)
        onnx.checker.check_model(proto, full_check=True)
        return True
    except Exception:  # noqa: BLE001
        return False


def _negative_dims(proto) -> bool:
    graph = proto.graph
    return any(d.HasField("dim_value") and d.dim_value < 0
               for vi in [*graph.input, *graph.output, *graph.value_info] for d in vi.type.tensor_type.shape.dim)


def reference_quirk(model) -> str:
    """Why onnx.reference's answer for this model is known to be wrong ('' when it is trusted)."""
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load_from_string(model)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    for node in proto.graph.node:
        if any(a.type == onnx.AttributeProto.FLOAT and not math.isfinite(a.f) for a in node.attribute):
            return "an infinite or NaN attribute: where NaNs appear then is not specified by ONNX"
        if node.op_type == "BatchNormalization" and opset < 14 and any(a.name == "momentum" for a in node.attribute):
            return "BatchNormalization-9 with momentum: the reference normalizes with batch statistics"
        if node.op_type in ("Softmax", "LogSoftmax", "Hardmax") and opset < 13:
            return f"{node.op_type} before opset 13: the reference ignores the 2-D coercion (onnxruntime agrees with us)"
        if node.op_type == "GlobalMaxPool":
            return "GlobalMaxPool: the reference reduces the wrong axes for inputs not of rank 4"
    return ""


def reference_outputs(model, feeds: dict, strict: bool = False):
    """onnx.reference's outputs; when it cannot run a mutated model, None (nothing to compare)."""
    from onnx.reference import ReferenceEvaluator

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load_from_string(model)
    try:
        with np.errstate(all="ignore"):
            ref = ReferenceEvaluator(proto)
            values = ref.run(None, feeds)
    except Exception:  # noqa: BLE001 - the reference refusing a mutated model is not our bug
        if strict:
            raise
        return None
    return dict(zip(ref.output_names, values))


# Values are compared in these dtypes only: low-precision floats round differently depending on
# whether each step or only the result is rounded, and ONNX does not say which (dtype and shape still are).
EXACT_ENOUGH = ("float32", "float64", "complex64", "complex128")


def assert_close(got: dict, want: dict, rtol: float = 1e-3, atol: float = 1e-4) -> None:
    for name, w in want.items():
        w = np.asarray(w)
        g = got.get(name)
        if g is None or g.shape != w.shape or g.dtype != w.dtype:
            raise Mismatch(f"output {name!r}: workbench {None if g is None else (g.dtype, g.shape)}, "
                           f"reference {(w.dtype, w.shape)}")
        try:
            if w.dtype.name in EXACT_ENOUGH:
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
            elif w.dtype.kind in "fV":
                continue
            else:
                np.testing.assert_array_equal(g, w)
        except AssertionError as e:
            raise Mismatch(f"output {name!r}: {e}") from None


# ------------------------------------------------------------------------ random valid graphs
class GraphMaker:
    """Builds a random valid ONNX graph of tiny float32 tensors from ops that have CPU kernels.

    Each `add_*` method appends one node (with its constants) and returns the new tensor's name;
    shapes are tracked here so every choice is valid by construction.
    """

    # no Log/Sqrt: NaNs from negative inputs meet ops whose NaN handling ONNX leaves open (MaxPool...)
    UNARY = ["Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Softplus", "Softsign", "Erf", "Floor", "Ceil",
             "Sin", "Cos", "Atan", "Sign", "Reciprocal", "Round", "HardSwish", "Mish"]
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


# ------------------------------------------------------------------------- mutated protobufs
def seed_models(rng: random.Random) -> onnx.ModelProto:
    """A model to mutate: the zoo's digits CNN, a tiny hand-written one, one with control flow (If,
    Loop, Scan, nested subgraphs), or a random valid graph."""
    choice = rng.randrange(4)
    if choice == 0:
        return copy.deepcopy(_digits())
    if choice == 1:
        from tests.models.tiny import add_relu

        return add_relu(seed=rng.randrange(100))
    if choice == 2:
        from tests.models import control

        makers = [control.if_model, control.loop_model, control.scan_model, lambda: control.nested_model(3)]
        return rng.choice(makers)()
    return random_graph(rng, 6)


_DIGITS: list = []


def _digits() -> onnx.ModelProto:
    if not _DIGITS:
        from workbench.zoo import digits

        _DIGITS.append(onnx.load(str(digits().model)))
    return _DIGITS[0]


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Flip, overwrite, insert or delete a few bytes, or truncate."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            break
        kind, pos = rng.randrange(5), rng.randrange(len(buf))
        if kind == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            buf[pos] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        elif kind == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 3:
            del buf[pos:pos + rng.randint(1, 8)]
        else:
            del buf[pos:]
    return bytes(buf)


HUGE = [2**31, 2**40, 2**62, 2**63 - 1]
ODD_INTS = [0, 1, -1, -2, 3, 7, 2**31 - 1, -(2**31), *HUGE, -(2**62)]


def _odd_int(rng: random.Random) -> int:
    return rng.choice(ODD_INTS) if rng.random() < 0.7 else rng.randint(-10, 10)


def _all_names(model) -> list:
    g = model.graph
    return [n for node in g.node for n in list(node.input) + list(node.output) if n] + \
        [i.name for i in g.initializer] + [i.name for i in g.input]


def _mutate_dims(model, rng):
    """A graph input or initializer gets odd dims (huge, negative, zero, symbolic)."""
    g = model.graph
    if g.input and rng.random() < 0.5:
        vi = rng.choice(list(g.input))
        dims = vi.type.tensor_type.shape.dim
        if not dims:
            dims.add()
        d = rng.choice(list(dims))
        if rng.random() < 0.2:
            d.dim_param = rng.choice(["n", "", "a*b", "((((", "__import__('os')", "n" * 500])
        else:
            d.dim_value = _odd_int(rng)
    elif g.initializer:
        t = rng.choice(list(g.initializer))
        if t.dims and rng.random() < 0.7:
            t.dims[rng.randrange(len(t.dims))] = _odd_int(rng)
        else:
            t.dims.append(_odd_int(rng))


def _mutate_dtype(model, rng):
    """An input, output or initializer gets another element type code (valid or not)."""
    g = model.graph
    code = rng.choice(list(range(0, 26)) + [99, -1])
    pools = [p for p in (g.input, g.output, g.initializer) if len(p)]
    target = rng.choice(list(rng.choice(pools)))
    if isinstance(target, onnx.TensorProto):
        target.data_type = max(code, 0)
    else:
        target.type.tensor_type.elem_type = max(code, 0)


def _mutate_attribute(model, rng):
    """An attribute gets an odd value, another type, or is added to / removed from a node."""
    nodes = list(model.graph.node)
    if not nodes:
        return
    node = rng.choice(nodes)
    if node.attribute and rng.random() < 0.7:
        attr = rng.choice(list(node.attribute))
        choice = rng.randrange(5)
        if choice == 0:
            attr.type, attr.i = onnx.AttributeProto.INT, _odd_int(rng)
        elif choice == 1:
            attr.type, attr.f = onnx.AttributeProto.FLOAT, rng.choice([math.nan, math.inf, -1.0, 1e30, 0.0])
        elif choice == 2:
            del attr.ints[:]
            attr.type = onnx.AttributeProto.INTS
            attr.ints.extend(_odd_int(rng) for _ in range(rng.randint(0, 6)))
        elif choice == 3:
            attr.type, attr.s = onnx.AttributeProto.STRING, rng.choice([b"", b"\xff\xfe", b"SAME_UPPER", b"x" * 100])
        else:
            node.attribute.remove(attr)
    else:
        name = rng.choice(["axis", "perm", "pads", "kernel_shape", "group", "strides", "alpha", "bogus", "to",
                           "keepdims", "dilations", "auto_pad", "value"])
        node.attribute.append(helper.make_attribute(name, rng.choice([_odd_int(rng), [1, 2], 0.5, "VALID"])))


def _mutate_names(model, rng):
    """Dangling inputs, duplicate outputs or initializers, renamed graph outputs, empty names."""
    g = model.graph
    names = _all_names(model) or ["x"]
    choice = rng.randrange(5)
    nodes = list(g.node)
    if choice == 0 and nodes:
        node = rng.choice(nodes)
        if node.input:
            node.input[rng.randrange(len(node.input))] = rng.choice(["ghost", "", node.output[0] if node.output
                                                                     else "x"])
    elif choice == 1 and len(nodes) > 1:
        a, b = rng.sample(nodes, 2)
        if a.output and b.output:
            b.output[0] = a.output[0]
    elif choice == 2 and g.initializer:
        dup = copy.deepcopy(rng.choice(list(g.initializer)))
        dup.name = rng.choice(names)
        g.initializer.append(dup)
    elif choice == 3 and g.output:
        g.output[rng.randrange(len(g.output))].name = rng.choice(names + ["nowhere"])
    elif nodes:
        rng.choice(nodes).output.append(rng.choice(names))


def _mutate_structure(model, rng):
    """Drop or duplicate a node, swap two nodes (order), change an op type, domain or the opset."""
    g = model.graph
    nodes = list(g.node)
    choice = rng.randrange(6)
    if choice == 0 and nodes:
        g.node.remove(rng.choice(nodes))
    elif choice == 1 and nodes:
        g.node.append(copy.deepcopy(rng.choice(nodes)))
    elif choice == 2 and len(nodes) > 1:
        i, j = rng.sample(range(len(nodes)), 2)
        a, b = copy.deepcopy(nodes[i]), copy.deepcopy(nodes[j])
        g.node[i].CopyFrom(b)
        g.node[j].CopyFrom(a)
    elif choice == 3 and nodes:
        rng.choice(nodes).op_type = rng.choice(["Relu", "Conv", "MaxPool", "Reshape", "Gemm", "Add", "Concat",
                                                "Range", "Expand", "Tile", "If", "Loop", "Nope", ""])
    elif choice == 4 and nodes:
        rng.choice(nodes).domain = rng.choice(["ai.onnx.ml", "com.microsoft", "workbench.plugin", "x"])
    else:
        model.opset_import[0].version = rng.choice([1, 6, 7, 11, 13, 18, 21, 23, 24, 99, 2**40])


def _mutate_tensor_data(model, rng):
    """Initializer data of the wrong length, or pointing at external data that does not exist."""
    g = model.graph
    if not g.initializer:
        return
    t = rng.choice(list(g.initializer))
    if rng.random() < 0.5 and t.raw_data:
        t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data))]
    else:
        t.data_location = onnx.TensorProto.EXTERNAL
        entry = t.external_data.add()
        entry.key, entry.value = "location", rng.choice(["w.bin", "../w.bin", "/etc/passwd", ""])


PROTO_MUTATIONS = [_mutate_dims, _mutate_dtype, _mutate_attribute, _mutate_names, _mutate_structure,
                   _mutate_tensor_data]


def mutate_proto(model: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    """Apply 1..3 field-level mutations through the protobuf API (the model is changed in place)."""
    for _ in range(rng.randint(1, 3)):
        rng.choice(PROTO_MUTATIONS)(model, rng)
    return model


# ----------------------------------------------------------------------------------- plans
_PLANS: dict = {}


PLAN_KINDS = 3


def base_plan(which: int = 0) -> bytes:
    """A plan to mutate (cached per process): random graphs (0, 1) or a Loop with subgraphs (2)."""
    if which not in _PLANS:
        _PLANS[which] = _build_plan(which)
    return _PLANS[which]


def _build_plan(which: int) -> bytes:
    if which == 2:
        from tests.models.control import loop_model

        net = wb.load_onnx(loop_model())
        shapes = input_shapes(net, random.Random(0))
        profile = {name: (shape,) * 3 for name, shape in shapes.items()}
        return wb.build(net, wb.BuilderConfig(device="cpu", profiles=[profile])).serialize()
    rng = random.Random(1234 + which)
    while True:  # the first random graph that builds
        try:
            return wb.build(wb.load_onnx(random_graph(rng, 6)), wb.BuilderConfig(device="cpu")).serialize()
        except WorkbenchError:
            continue


def run_plan(data: bytes, rng: random.Random) -> None:
    """Load a plan and run it on random inputs of its input specs."""
    engine = wb.load_plan(data)
    feeds = {}
    for spec in engine.inputs:
        shape = tuple(d if isinstance(d, int) else 1 for d in spec.shape or ())
        if math.prod(shape) > 4096 or min(shape, default=0) < 0:
            return  # a forged plan may declare any input shape: the user would not feed a huge one
        feeds[spec.name] = random_array(shape, spec.dtype, rng)
    engine.create_execution_context().execute(feeds)


def mutate_plan_bytes(data: bytes, rng: random.Random) -> bytes:
    """Bit flips or truncation anywhere in the file (the checksum should catch most)."""
    return mutate_bytes(data, rng)


def forge_plan(data: bytes, rng: random.Random) -> bytes:
    """Mutate the JSON header and re-seal the file with a valid checksum: what an attacker can do.

    The checksum guards against accidents, not forgers, so everything behind it must hold too.
    """
    from workbench.runtime import plan as P

    magic, version, head_len = P._PREFIX.unpack_from(data)
    header = json.loads(data[P._PREFIX.size:P._PREFIX.size + head_len])
    start = P._PREFIX.size + head_len
    start += -start % P._ALIGN
    blob = data[start:-P._DIGEST]
    for _ in range(rng.randint(1, 3)):
        _mutate_json(header, rng)
    head = json.dumps(header).encode()
    body = P._PREFIX.pack(magic, version, len(head)) + head
    body += b"\0" * (-len(body) % P._ALIGN) + blob
    import hashlib

    return body + hashlib.sha256(body).digest()


def _json_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _json_paths(v, path + (i,))


def _odd_json(rng: random.Random):
    return rng.choice([None, True, 0, -1, 2**40, 2**64, 1.5, math.inf, "", "cpu", "x" * 50, "__import__('os')",
                       "os.system", [], [1, 2], {}, {"a": 1}, [[2**40, 2**40]], "float32", "object", "Relu",
                       "batch", {"__ndarray__": "int64", "shape": [2], "data": "AAAA"}])


def _mutate_json(header: dict, rng: random.Random) -> None:
    """Replace, delete or duplicate one value somewhere in the header tree."""
    paths = [p for p in _json_paths(header) if p]
    path = rng.choice(paths)
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    choice = rng.randrange(4)
    if choice == 0 or not isinstance(parent, (list, dict)):
        parent[key] = _odd_json(rng)
    elif choice == 1:
        del parent[key]
    elif choice == 2 and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    elif isinstance(parent[key], int) and not isinstance(parent[key], bool):
        parent[key] = _odd_int(rng)
    else:
        parent[key] = _odd_json(rng)


# ---------------------------------------------------------------------------- dims expressions
def random_dim_expression(rng: random.Random, depth: int = 0) -> str:
    """A string for the safe dim evaluator: valid arithmetic, junk, or attempts at code."""
    if depth > 4 or rng.random() < 0.3:
        return rng.choice(["batch", "seq", "n", str(rng.randint(-5, 10**6)), "0", "ceil", "__class__",
                           "__import__('os').system('echo pwned')", "().__class__.__bases__[0]", "a.b", "lambda: 1",
                           "[1]*10**9", "9" * 50, "'s'", "1e308", "True", "None", "x[0]", "f(1)", "ceil(1, 2)"])
    op = rng.choice(["+", "-", "*", "//", "/", "**", "%", "<<", " if 1 else ", ","])
    left, right = random_dim_expression(rng, depth + 1), random_dim_expression(rng, depth + 1)
    expr = f"{left}{op}{right}"
    return f"ceil({expr})" if rng.random() < 0.2 else f"({expr})" if rng.random() < 0.5 else expr


# ---------------------------------------------------------------------------- the case table
def case_onnx_bytes(rng):
    data = mutate_bytes(seed_models(rng).SerializeToString(), rng)
    run_model(data, rng, compare="never")


def case_onnx_fields(rng):
    model = mutate_proto(seed_models(rng), rng)
    try:
        data = model.SerializeToString()
    except Exception:  # noqa: BLE001 - protobuf refuses some mutations (e.g. bad UTF-8 names)
        return
    run_model(data, rng)


def case_valid_graph(rng):
    model = random_graph(rng)
    onnx.checker.check_model(model, full_check=True)  # the generator's own shape bookkeeping, checked
    run_model(model, rng, compare="always")


def case_plan_bytes(rng):
    run_plan(mutate_plan_bytes(base_plan(rng.randrange(PLAN_KINDS)), rng), rng)


def case_plan_forged(rng):
    run_plan(forge_plan(base_plan(rng.randrange(PLAN_KINDS)), rng), rng)


def case_dims(rng):
    from workbench.ir import dims

    expr = random_dim_expression(rng)
    value = dims.evaluate(expr, {"batch": rng.randint(1, 8), "seq": rng.randint(1, 8), "n": 3})
    if not isinstance(value, (int, str)):
        raise TypeError(f"dims.evaluate({expr!r}) returned {type(value).__name__}")


def case_calibration_cache(rng):
    """A calibration cache with garbage in it: a mutated valid file, or random bytes."""
    import tempfile
    from pathlib import Path

    from workbench.quant.cache import read_cache, write_cache

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.calib"
        scales = {f"t{i}": rng.uniform(1e-4, 10) for i in range(rng.randint(0, 20))}
        write_cache(path, scales, "0123456789abcdef", "MinMaxCalibrator")
        data = path.read_bytes()
        path.write_bytes(mutate_bytes(data, rng) if rng.random() < 0.8 else rng.randbytes(rng.randint(0, 300)))
        read_cache(path, "0123456789abcdef", "MinMaxCalibrator")


CASES = {"onnx-bytes": case_onnx_bytes, "onnx-fields": case_onnx_fields, "valid-graph": case_valid_graph,
         "plan-bytes": case_plan_bytes, "plan-forged": case_plan_forged, "dims-expr": case_dims,
         "calibration-cache": case_calibration_cache}


def _selftest_crash(rng):
    if rng.random() < 0.5:
        os.abort()


def _selftest_hang(rng):
    if rng.random() < 0.5:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])  # as if stuck in C code: no alarm arrives
        time.sleep(3600)


if os.environ.get("WORKBENCH_FUZZ_SELFTEST"):  # lets the long-run script's own test see a crash and a hang
    CASES.update({"selftest-crash": _selftest_crash, "selftest-hang": _selftest_hang})


def run_case(kind: str, seed: int, seconds: float = 10.0) -> tuple:
    """(outcome, detail) of fuzz case `seed` of `kind` (see CASES); reproducible from the two."""
    rng = random.Random(f"{kind}:{seed}")
    return outcome(lambda: CASES[kind](rng), seconds)
