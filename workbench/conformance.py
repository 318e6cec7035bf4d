"""Conformance: the ONNX backend node tests run through the whole pipeline, case by case.

Each case goes load_onnx(model) -> build(cpu, fp32) -> create_execution_context().execute(inputs)
and its outputs are compared with the test's expected outputs (the test's rtol/atol, NaN == NaN,
dtype and shape must match exactly).

    >>> report = workbench.conformance.run_conformance("test_relu|test_add")
    >>> report.pass_rate, report.by_op()["Relu"]

Definitions the numbers rest on:

- status: "passed"; "failed" (wrong values, shape or dtype, a timeout, or any exception other than
  the two below); "unsupported" (the parser or a kernel raised ParseError/UnsupportedError for an op,
  attribute type or dtype we do not take, or the case is not a single tensor op: sequence/optional/
  string values, training ops). A ParseError that merely wraps a ShapeError or ValidationError of a
  registered op (a shape-rule or attribute bug) counts as "failed", not "unsupported".
- op of a case: the op type of the node in the test model. Expanded tests ("..._expanded",
  "..._expanded_ver18": the op's ONNX function body, many nodes) count toward the op of the test they
  expand (the same name without the suffix), with `expanded=True`.
- in scope: a case is out of scope (in_scope=False, status "unsupported") when it is not a tensor op
  case at all: sequence/optional/string values or a training op. Everything else is in scope.
- supported op: an op type with at least one non-expanded case that got past the parser (passed
  or failed). `pass_rate` is passed / in-scope cases of supported ops (expanded cases and
  unsupported dtypes or attributes of a supported op included: they count as not passed).
- oracle: what the outputs were compared with: "test" (the test's expected data), "onnx.reference"
  (the test's expected data does not match what onnx.reference computes on the same inputs, as
  happens with unseeded random inputs, and ours matches onnx.reference), or "shape" (an op
  registered as nondeterministic, e.g. RandomNormal: only shapes and dtypes are compared).
"""
from __future__ import annotations

import json
import re
import threading
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .dtypes import is_float
from .errors import ParseError, UnsupportedError, WorkbenchError

PASSED, FAILED, UNSUPPORTED = "passed", "failed", "unsupported"
CASE_TIMEOUT = 20.0  # seconds one case may take before it counts as failed (a hang must not stall the run)
_EXPANDED = re.compile(r"_expanded(_ver\d+)?$")
_TRAINING_DOMAINS = {"ai.onnx.preview.training"}
_CASE_FIELDS = ("name", "op", "expanded", "in_scope", "status", "reason", "oracle", "seconds")
_LOW_INTS = {"int4", "uint4", "int2", "uint2"}  # ml_dtypes integers that numpy cannot compare directly


# ---------------------------------------------------------------------------------- the report
@dataclass
class ConformanceReport:
    """Per-case results of a conformance run, with per-op counts and summary figures."""

    cases: list = field(default_factory=list)  # dicts: name, op, expanded, in_scope, status, reason, oracle, seconds
    seconds: float = 0.0

    def by_op(self) -> dict:
        """{op type: {"cases", "passed", "failed", "unsupported"}}, sorted by op type."""
        table: dict = {}
        for case in self.cases:
            row = table.setdefault(case["op"], {"cases": 0, PASSED: 0, FAILED: 0, UNSUPPORTED: 0})
            row["cases"] += 1
            row[case["status"]] += 1
        return dict(sorted(table.items()))

    @property
    def supported_ops(self) -> list:
        """Op types with a non-expanded case that got past the parser (see the module docstring)."""
        return sorted({c["op"] for c in self.cases if not c["expanded"] and c["status"] != UNSUPPORTED})

    @property
    def supported_op_count(self) -> int:
        return len(self.supported_ops)

    @property
    def pass_rate(self) -> float:
        """Passed cases / in-scope cases of supported ops (0.0 when no op is supported)."""
        supported = set(self.supported_ops)
        relevant = [c for c in self.cases if c["op"] in supported and c["in_scope"]]
        return sum(c["status"] == PASSED for c in relevant) / len(relevant) if relevant else 0.0

    def count(self, status: str) -> int:
        return sum(c["status"] == status for c in self.cases)

    def summary(self) -> dict:
        return {"cases": len(self.cases), PASSED: self.count(PASSED), FAILED: self.count(FAILED),
                UNSUPPORTED: self.count(UNSUPPORTED), "op_types": len(self.by_op()),
                "supported_ops": self.supported_op_count, "pass_rate": round(self.pass_rate, 4),
                "seconds": round(self.seconds, 2)}

    def failures(self) -> list:
        return [c for c in self.cases if c["status"] == FAILED]

    def to_dataframe(self):
        """One row per case (pandas DataFrame)."""
        import pandas as pd

        return pd.DataFrame(self.cases, columns=list(_CASE_FIELDS))

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps({"summary": self.summary(), "by_op": self.by_op(), "cases": self.cases}, indent=indent)

    def __str__(self) -> str:
        s = self.summary()
        return (f"{s['cases']} cases: {s[PASSED]} passed, {s[FAILED]} failed, {s[UNSUPPORTED]} unsupported; "
                f"{s['supported_ops']} supported op types, pass rate {s['pass_rate']:.1%} over their cases")


# ---------------------------------------------------------------------------------- running
def load_suite() -> list:
    """Every ONNX backend node test case (generated by onnx on first use: a few seconds, then cached)."""
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the suite's own generators warn about deliberate overflows
        return load_model_tests(kind="node")


def _regex(pattern: str | None):
    try:
        return re.compile(pattern) if pattern else None
    except re.error as e:
        raise WorkbenchError(f"--pattern {pattern!r} is not a valid regular expression: {e}") from None


def run_conformance(pattern: str | None = None, progress: bool = True, timeout: float = CASE_TIMEOUT,
                    suite: list | None = None) -> ConformanceReport:
    """Run the node tests whose name matches `pattern` (a regex, re.search) through the pipeline.

    suite: test cases (onnx TestCase-like: name, model, data_sets, rtol, atol) to use instead of
    the ONNX node tests.

    >>> run_conformance("test_relu|test_add", progress=False).summary()
    """
    regex = _regex(pattern)  # a typo fails at once, before the suite is generated
    suite = load_suite() if suite is None else list(suite)
    cases = [t for t in suite if regex is None or regex.search(t.name)]
    by_name = {t.name: t for t in suite}
    report = ConformanceReport()
    t0 = time.perf_counter()
    bar, tally = _progress_bar(len(cases), progress), Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow/NaN warnings are what some cases test
        for test in cases:
            report.cases.append(run_case(test, case_op(test, by_name), timeout))
            tally[report.cases[-1]["status"]] += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(passed=tally[PASSED], failed=tally[FAILED], refresh=False)
    if bar is not None:
        bar.close()
    report.seconds = time.perf_counter() - t0
    return report


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc="conformance", unit="case", file=sys.stderr, leave=False)


def case_op(test, by_name: dict) -> str:
    """The op a case tests: its node's op type; an expanded case's, the op of the test it expands."""
    base = by_name.get(_EXPANDED.sub("", test.name), test)
    nodes = base.model.graph.node
    kinds = sorted({n.op_type for n in nodes})
    if len(kinds) == 1:
        return kinds[0]
    # Several op types (a multi-node test): the longest op type the test's name spells out.
    flat = test.name.replace("_", "").lower()
    named = [k for k in kinds if k.lower() in flat]
    return max(named, key=len) if named else (nodes[0].op_type if nodes else "?")


def run_case(test, op: str | None = None, timeout: float = CASE_TIMEOUT) -> dict:
    """Run one node test case; a dict with its name, op, status, reason, oracle and time taken.

    op: what the case counts toward (default: case_op of the test alone).
    """
    op = op or case_op(test, {test.name: test})
    t0 = time.perf_counter()
    out_of_scope = screen(test.model)
    if out_of_scope:
        status, reason, oracle = UNSUPPORTED, out_of_scope, "test"
    else:
        status, reason, oracle = _with_timeout(lambda: _classify(test, op), timeout)
    return {"name": test.name, "op": op, "expanded": bool(_EXPANDED.search(test.name)),
            "in_scope": not out_of_scope, "status": status, "reason": reason, "oracle": oracle,
            "seconds": round(time.perf_counter() - t0, 4)}


def _with_timeout(fn, timeout: float):
    """fn() in a daemon thread; a (FAILED, "timed out") result if it takes longer than `timeout`.

    Python cannot kill a thread: a hung case is left running in the background while the run goes
    on (a signal would clash with pytest-timeout's and only works in the main thread).
    """
    box: list = []

    def target():
        try:
            box.append(fn())
        except BaseException as e:  # noqa: BLE001 - a harness fault in one case must not end the run
            box.append((FAILED, f"harness error {type(e).__name__}: {e} (at {_where(e)})", "test"))

    worker = threading.Thread(target=target, daemon=True, name="conformance-case")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return FAILED, f"timed out after {timeout:g} s", "test"
    return box[0]


def _classify(test, op: str) -> tuple:
    """(status, reason, oracle) of one case: run and compare each of its data sets."""
    verdict = (PASSED, "", "test")
    for inputs, expected in test.data_sets or []:
        verdict = _run_data_set(test, op, inputs, expected)
        if verdict[0] != PASSED:
            break
    return verdict


def _run_data_set(test, op: str, inputs, expected) -> tuple:
    feeds = {vi.name: _array(x) for vi, x in zip(test.model.graph.input, inputs)}
    try:
        got = run_pipeline(test.model, feeds)
    except WorkbenchError as e:
        return (UNSUPPORTED if is_unsupported(e) else FAILED), f"{type(e).__name__}: {e}", "test"
    except Exception as e:  # noqa: BLE001 - an unexpected exception is a failure to report, not a crash
        return FAILED, f"unexpected {type(e).__name__}: {e} (at {_where(e)})", "test"
    names = [vi.name for vi in test.model.graph.output]
    want = [_array(x) for x in expected]
    if not _deterministic(op):
        problem = _compare_all(names, got, want, test.rtol, test.atol, values=False)
        return (FAILED, problem, "shape") if problem else (PASSED, "", "shape")
    problem = _compare_all(names, got, want, test.rtol, test.atol)
    if problem is None:
        return PASSED, "", "test"
    return _against_reference(test, feeds, names, got, want, problem)


def _against_reference(test, feeds: dict, names: list, got: dict, want: list, problem: str) -> tuple:
    """When we differ from the test's data, pass only if that data is not what onnx.reference computes
    on these inputs (unseeded random inputs, mismatched generators) and we match onnx.reference."""
    try:
        from onnx.reference import ReferenceEvaluator

        ref = [_array(x) for x in ReferenceEvaluator(test.model).run(None, feeds)]
    except Exception:  # noqa: BLE001 - the reference cannot run this case: keep our verdict
        return FAILED, problem, "test"
    if _compare_all(names, dict(zip(names, ref)), want, test.rtol, test.atol) is None:
        return FAILED, problem, "test"
    if _compare_all(names, got, ref, test.rtol, test.atol) is None:
        return PASSED, "the test's expected data differs from onnx.reference on these inputs", "onnx.reference"
    return FAILED, problem, "test"


def run_pipeline(model, feeds: dict) -> dict:
    """load_onnx -> build(cpu, fp32, profiles from the feeds' shapes where dims are dynamic) -> execute."""
    from .builder.build import build
    from .builder.config import BuilderConfig
    from .parsers.onnx import load_onnx

    net = load_onnx(model)
    profile = {name: (tuple(np.shape(x)),) * 3 for name, x in feeds.items()
               if name in net.tensors and not _is_static(net.tensors[name].shape)}
    engine = build(net, BuilderConfig(device="cpu", precision="fp32", profiles=[profile] if profile else []))
    with np.errstate(all="ignore"):
        return engine.create_execution_context().execute(feeds)


def screen(model) -> str:
    """Why a model is not a single-op tensor case we run ("" when it is one)."""
    g = model.graph
    for vi in list(g.input) + list(g.output):
        kind = vi.type.WhichOneof("value")
        if kind != "tensor_type":
            return f"{vi.name!r} has {kind.replace('_type', '')} type; only tensor values are supported"
        if vi.type.tensor_type.elem_type == 8:  # onnx.TensorProto.STRING
            return f"{vi.name!r} is a string tensor; string tensors are not supported"
    for node in g.node:
        if node.domain in _TRAINING_DOMAINS:
            return f"{node.op_type} is a training op (domain {node.domain}); workbench builds inference engines"
    return ""


def is_unsupported(error: WorkbenchError) -> bool:
    """UnsupportedError, or a ParseError that is not a wrapped shape/validation error of a known op."""
    if isinstance(error, UnsupportedError):
        return True
    if not isinstance(error, ParseError):
        return False
    inner = error.__context__  # the parser re-raises shape inference errors as ParseError "from None"
    return not isinstance(inner, WorkbenchError) or isinstance(inner, (ParseError, UnsupportedError))


# ---------------------------------------------------------------------------------- comparing
def compare(got, want, rtol: float, atol: float, values: bool = True) -> str | None:
    """None when `got` matches `want` (dtype, shape, then values within rtol/atol, NaN == NaN); else why not."""
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype:
        return f"dtype {got.dtype}, expected {want.dtype}"
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    if not values or got.size == 0:
        return None
    if is_float(want.dtype.name) or want.dtype.kind in "fc":
        return _compare_float(got, want, rtol, atol)
    if want.dtype.name in _LOW_INTS:
        got, want = got.astype(np.int64), want.astype(np.int64)
    bad = got != want
    if not bad.any():
        return None
    i = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
    return (f"{int(bad.sum())} of {bad.size} values differ "
            f"(first at {tuple(map(int, i))}: {got[i]!r}, expected {want[i]!r})")


def _compare_float(got, want, rtol: float, atol: float) -> str | None:
    wide = np.complex128 if want.dtype.kind == "c" else np.float64
    a, b = got.astype(wide), want.astype(wide)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(a) & np.isfinite(b)  # infinities must match exactly, as in np.testing
        close = np.where(finite, np.abs(a - b) <= atol + rtol * np.abs(b), a == b)
    bad = ~np.where(nan_a | nan_b, nan_a & nan_b, close)
    if not bad.any():
        return None
    with np.errstate(invalid="ignore"):
        diff = np.where(bad, np.abs(a - b), 0)
    i = np.unravel_index(int(np.argmax(np.where(np.isnan(diff), np.inf, diff))), bad.shape) if bad.ndim else ()
    return (f"{int(bad.sum())} of {bad.size} values differ beyond rtol={rtol:g}, atol={atol:g} "
            f"(worst at {tuple(map(int, i))}: {a[i]!r}, expected {b[i]!r})")


def _compare_all(names: list, got: dict, want: list, rtol, atol, values: bool = True) -> str | None:
    if len(got) != len(want):
        return f"{len(got)} outputs, expected {len(want)}"
    for name, w in zip(names, want):
        if name not in got:
            return f"output {name!r} is missing"
        problem = compare(got[name], w, rtol, atol, values)
        if problem:
            return f"output {name!r}: {problem}"
    return None


# ---------------------------------------------------------------------------------- helpers
def _array(x):
    """Test data as numpy: TensorProtos (float8, int4, ... inputs) are converted; arrays pass unchanged."""
    import onnx
    from onnx import numpy_helper

    return numpy_helper.to_array(x) if isinstance(x, onnx.TensorProto) else x


def _is_static(shape) -> bool:
    return shape is not None and all(isinstance(d, (int, np.integer)) for d in shape)


def _deterministic(op: str) -> bool:
    from .ir.ops import spec_for

    spec = spec_for(op)
    return spec is None or spec.deterministic


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
