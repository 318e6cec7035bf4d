"""The conformance harness: verdicts on hand-made cases, comparisons, the report, and the real suite."""
from __future__ import annotations

import dataclasses
import json
import time

import ml_dtypes
import numpy as np
import pytest

from workbench import conformance as conf
from workbench.backends.cpu import registry
from workbench.errors import ShapeError, UnsupportedError
from workbench.ir import ops

from .cases import relu_case, sequence_case, single_node_case


def run(case, timeout: float = conf.CASE_TIMEOUT) -> dict:
    return conf.run_case(case, "Relu", timeout)


@pytest.fixture
def relu_kernel(monkeypatch):
    """Replace the Relu kernel for one test: relu_kernel(fn)."""
    registry.load_all()
    return lambda fn: monkeypatch.setitem(registry.KERNELS, ("", "Relu"), fn)


@pytest.fixture
def relu_spec(monkeypatch):
    """Replace fields of the Relu op spec for one test: relu_spec(deterministic=False, ...)."""
    ops.load_all()
    spec = ops.OPS[("", "Relu")]
    return lambda **fields: monkeypatch.setitem(ops.OPS, ("", "Relu"), dataclasses.replace(spec, **fields))


# ---------------------------------------------------------------------------------- verdicts
def test_a_correct_case_passes():
    result = run(relu_case())
    assert (result["status"], result["oracle"], result["reason"]) == ("passed", "test", "")
    assert result["in_scope"] and not result["expanded"] and result["seconds"] >= 0


def test_expected_data_that_onnx_reference_disagrees_with_falls_back_to_the_reference():
    result = run(relu_case(wrong=True))
    assert (result["status"], result["oracle"]) == ("passed", "onnx.reference")


def test_wrong_numbers_fail_with_the_worst_value(relu_kernel):
    relu_kernel(lambda x: np.abs(x))
    result = run(relu_case())
    assert result["status"] == "failed"
    assert "output 'y'" in result["reason"] and "values differ beyond rtol=0.001" in result["reason"]


def test_wrong_numbers_fail_even_when_the_expected_data_is_also_wrong(relu_kernel):
    relu_kernel(lambda x: np.abs(x))  # ours disagrees with onnx.reference too: no fallback
    assert run(relu_case(wrong=True))["status"] == "failed"


def test_an_unregistered_op_is_unsupported(monkeypatch):
    ops.load_all()
    monkeypatch.delitem(ops.OPS, ("", "Relu"))
    result = run(relu_case())
    assert result["status"] == "unsupported" and "'Relu'" in result["reason"] and "not supported" in result["reason"]
    assert result["in_scope"]


def test_a_kernel_refusing_a_dtype_is_unsupported(relu_kernel):
    def refuse(x):
        raise UnsupportedError(f"Relu on {x.dtype} is not implemented")

    relu_kernel(refuse)
    result = run(relu_case())
    assert result["status"] == "unsupported" and "UnsupportedError" in result["reason"]


def test_a_broken_shape_rule_fails_rather_than_counting_as_unsupported(relu_spec):
    def broken(x):
        raise ShapeError("deliberately broken rule")

    relu_spec(shape_rule=broken)
    result = run(relu_case())
    assert result["status"] == "failed" and "deliberately broken rule" in result["reason"]


def test_an_unexpected_exception_fails_with_its_type_and_place(relu_kernel):
    def crash(x):
        raise RuntimeError("kaboom")

    relu_kernel(crash)
    result = run(relu_case())
    assert result["status"] == "failed"
    assert "unexpected RuntimeError: kaboom" in result["reason"] and "test_conformance.py" in result["reason"]


def test_a_hanging_case_times_out_and_the_run_goes_on(relu_kernel):
    relu_kernel(lambda x: time.sleep(1.0) or np.maximum(x, 0))
    t0 = time.perf_counter()
    result = run(relu_case(), timeout=0.2)
    assert time.perf_counter() - t0 < 0.9
    assert result["status"] == "failed" and result["reason"] == "timed out after 0.2 s"


def test_nondeterministic_ops_are_compared_by_shape_and_dtype_only(relu_spec, relu_kernel):
    relu_spec(deterministic=False)
    relu_kernel(lambda x: np.full_like(x, 7.0))
    assert (run(relu_case())["status"], run(relu_case())["oracle"]) == ("passed", "shape")
    relu_kernel(lambda x: np.zeros((1,), x.dtype))
    result = run(relu_case())
    assert result["status"] == "failed" and "shape" in result["reason"]


def test_sequence_cases_are_out_of_scope():
    result = run(sequence_case())
    assert result["status"] == "unsupported" and not result["in_scope"] and "sequence" in result["reason"]


def test_dynamic_dims_get_a_profile_from_the_test_inputs():
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    case = single_node_case("test_relu_dynamic", "Relu", {"x": x}, {"y": np.maximum(x, 0)},
                            declared={"x": ("n", 4), "y": ("n", 4)})
    assert run(case)["status"] == "passed"


def test_inputs_given_as_tensor_protos_are_converted():
    from onnx import numpy_helper

    case = relu_case()
    (inputs, outputs), = case.data_sets
    case.data_sets = [([numpy_helper.from_array(inputs[0], "x")], [numpy_helper.from_array(outputs[0], "y")])]
    assert run(case)["status"] == "passed"


def test_the_op_of_a_case():
    plain, other = relu_case("test_relu_thing"), relu_case("test_other")
    expanded = single_node_case("test_relu_thing_expanded_ver18", "Abs", {"x": np.ones(2, np.float32)},
                                {"y": np.ones(2, np.float32)})
    by_name = {c.name: c for c in (plain, other, expanded)}
    assert conf.case_op(plain, by_name) == "Relu"
    assert conf.case_op(expanded, by_name) == "Relu"  # counts toward the op it expands
    assert run(expanded)["expanded"] is True


# ---------------------------------------------------------------------------------- comparing
F32 = np.float32


@pytest.mark.parametrize("got, want, ok", [
    (np.array([1.0, np.nan], F32), np.array([1.0, np.nan], F32), True),   # NaN == NaN
    (np.array([np.inf, -np.inf], F32), np.array([np.inf, -np.inf], F32), True),
    (np.array([np.inf], F32), np.array([-np.inf], F32), False),
    (np.array([np.nan], F32), np.array([0.0], F32), False),
    (np.array([0.0], F32), np.array([np.nan], F32), False),
    (np.array([1.0005], F32), np.array([1.0], F32), True),               # within rtol 1e-3
    (np.array([1.002], F32), np.array([1.0], F32), False),
    (np.array([1.0], F32), np.array([1.0]), False),                       # dtype must match
    (np.array([1.0], F32), np.array([[1.0]], F32), False),                # shape must match
    (np.array([1, 2], np.int64), np.array([1, 2], np.int64), True),
    (np.array([1, 2], np.int64), np.array([1, 3], np.int64), False),
    (np.array([2**63 - 1], np.uint64), np.array([2**63 - 2], np.uint64), False),  # no float rounding of ints
    (np.array([True]), np.array([False]), False),
    (np.array([1.5], ml_dtypes.bfloat16), np.array([1.5], ml_dtypes.bfloat16), True),
    (np.array([1.5], ml_dtypes.bfloat16), np.array([1.75], ml_dtypes.bfloat16), False),
    (np.array([3, -2], ml_dtypes.int4), np.array([3, -2], ml_dtypes.int4), True),
    (np.array([3, -2], ml_dtypes.int4), np.array([3, -1], ml_dtypes.int4), False),
    (np.zeros((0, 3), F32), np.zeros((0, 3), F32), True),
    (np.float32(2.0), np.array(2.0, F32), True),                          # a numpy scalar vs a 0-d array
])
def test_compare(got, want, ok):
    assert (conf.compare(got, want, rtol=1e-3, atol=1e-7) is None) is ok


def test_compare_says_where_and_how_much():
    why = conf.compare(np.array([[1.0, 2.0], [3.0, 9.0]], F32), np.array([[1.0, 2.0], [3.0, 4.0]], F32), 1e-3, 1e-7)
    assert why.startswith("1 of 4 values differ") and "(1, 1)" in why and "9.0" in why and "4.0" in why
    assert conf.compare(np.ones(2, F32), np.ones(3, F32), 0, 0) == "shape (2,), expected (3,)"


# ---------------------------------------------------------------------------------- the report
def _case(name, op, status, expanded=False, in_scope=True):
    return {"name": name, "op": op, "expanded": expanded, "in_scope": in_scope, "status": status,
            "reason": "", "oracle": "test", "seconds": 0.0}


@pytest.fixture
def report():
    return conf.ConformanceReport([
        _case("a1", "A", "passed"), _case("a2", "A", "failed"), _case("a3", "A", "unsupported"),
        _case("a4", "A", "passed", expanded=True), _case("a5", "A", "unsupported", in_scope=False),
        _case("b1", "B", "unsupported"), _case("b2", "B", "passed", expanded=True),  # B: only its expansion runs
        _case("c1", "C", "passed"),
    ])


def test_report_counts_and_definitions(report):
    assert report.by_op() == {"A": {"cases": 5, "passed": 2, "failed": 1, "unsupported": 2},
                              "B": {"cases": 2, "passed": 1, "failed": 0, "unsupported": 1},
                              "C": {"cases": 1, "passed": 1, "failed": 0, "unsupported": 0}}
    assert report.supported_ops == ["A", "C"] and report.supported_op_count == 2
    assert report.pass_rate == pytest.approx(3 / 5)  # A's 4 in-scope cases + C's one; B is not supported
    assert report.summary()["failed"] == 1 and [c["name"] for c in report.failures()] == ["a2"]
    assert "8 cases: 4 passed, 1 failed, 3 unsupported" in str(report)


def test_report_exports(report):
    frame = report.to_dataframe()
    assert list(frame.columns) == ["name", "op", "expanded", "in_scope", "status", "reason", "oracle", "seconds"]
    assert len(frame) == 8 and frame["status"].value_counts()["passed"] == 4
    data = json.loads(report.to_json())
    assert data["summary"]["supported_ops"] == 2 and data["by_op"]["B"]["cases"] == 2 and len(data["cases"]) == 8


def test_empty_report():
    assert conf.ConformanceReport().pass_rate == 0.0


def test_run_conformance_on_a_given_suite():
    suite = [relu_case("test_relu_x"), sequence_case("test_seq_y")]
    report = conf.run_conformance("_x$", progress=False, suite=suite)
    assert [c["name"] for c in report.cases] == ["test_relu_x"] and report.pass_rate == 1.0


def test_a_bad_pattern_is_a_workbench_error():
    with pytest.raises(conf.WorkbenchError, match="regular expression"):
        conf.run_conformance("(", progress=False, suite=[])


# ---------------------------------------------------------------------------------- the ONNX suite
def test_relu_and_add_node_tests_pass():
    report = conf.run_conformance(r"^test_relu$|^test_add", progress=False)
    assert {c["op"] for c in report.cases} == {"Add", "Relu"} and len(report.cases) >= 8
    assert report.failures() == [] and report.count("passed") == len(report.cases), report.cases


@pytest.mark.slow
def test_full_suite_meets_the_bar():
    """>= 95% of in-scope cases of supported ops pass, over >= 90 supported op types (see workbench.conformance)."""
    report = conf.run_conformance(progress=False)
    failures = "\n".join(f"{c['name']}: {c['reason'][:200]}" for c in report.failures())
    assert report.supported_op_count >= 90, report.summary()
    assert report.pass_rate >= 0.95, f"{report}\n{failures}"
