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

import workbench as wb
from workbench.errors import WorkbenchError

from .graph_maker import random_graph
from .mutators import forge_plan, mutate_bytes, mutate_plan_bytes, mutate_proto, random_dim_expression, seed_models

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
            return f"{node.op_type} before opset 13: the reference ignores the 2-D coercion (onnxruntime agrees)"
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
