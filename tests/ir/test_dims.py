import pytest

from workbench.errors import ShapeError
from workbench.ir import dims


def test_broadcast_keeps_symbols_and_ints():
    assert dims.broadcast(("batch", 1, 4), (3, 1)) == ("batch", 3, 4)
    assert dims.broadcast((2, 3), (3,)) == (2, 3)


def test_broadcast_rejects_incompatible_ints():
    with pytest.raises(ShapeError):
        dims.broadcast((2, 3), (4, 3))


def test_arithmetic_is_exact_on_ints_and_symbolic_otherwise():
    assert dims.mul(3, 4) == 12 and dims.mul("n", 1) == "n"
    expr = dims.add(dims.mul("n", 3), 2)
    assert dims.evaluate(expr, {"n": 5}) == 17
    assert dims.evaluate(dims.ceildiv("n", 2), {"n": 7}) == 4
    assert dims.evaluate(dims.floordiv(dims.sub("n", 1), 2), {"n": 8}) == 3


def test_evaluate_never_runs_code():
    hostile = "__import__('os').system('echo hi')"
    assert dims.evaluate(hostile, {}) == hostile
    assert dims.evaluate("n", {}) == "n"


def test_negative_offsets_stay_parseable():
    assert dims.add("w", -1) == "w-1" and dims.sub("w", -2) == "w+2"
    assert dims.evaluate(dims.add("w", -1), {"w": 5}) == 4
    assert dims.evaluate("-n+10", {"n": 3}) == 7
