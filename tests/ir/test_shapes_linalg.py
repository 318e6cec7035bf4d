import pytest

from tests.ir.shapecheck import agrees, infer
from tests.oracle import rand
from workbench.errors import ShapeError
from workbench.ir.ops import Info


@pytest.mark.parametrize("a, b, sa, sb, bind", [
    ((2, 3, 4), (4, 5), ("B", "S", 4), (4, 5), {"B": 2, "S": 3}),
    ((4,), (2, 4, 5), (4,), ("B", 4, 5), {"B": 2}),
    ((2, 1, 3, 4), (4, 5), ("B", 1, "S", 4), (4, 5), {"B": 2, "S": 3}),
    ((2, 3, 4), (4,), ("B", "S", 4), (4,), {"B": 2, "S": 3}),
    ((4,), (4,), ("K",), (4,), {"K": 4}),
    ((2, 1, 3, 4), (1, 6, 4, 2), ("B", 1, "S", 4), (1, 6, 4, 2), {"B": 2, "S": 3}),
])
def test_matmul_broadcasts_and_promotes_vectors(a, b, sa, sb, bind):
    agrees("MatMul", [rand(*a), rand(*b)], [sa, sb], bind)


def test_matmul_inner_mismatch_is_an_error():
    with pytest.raises(ShapeError, match="inner"):
        infer("MatMul", Info("float32", ("B", 3, 4)), Info("float32", (5, 6)))


@pytest.mark.parametrize("ta, tb", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm_transposes(ta, tb):
    a = rand(*((5, 3) if ta else (3, 5)))
    b = rand(*((7, 5) if tb else (5, 7)))
    sa = (5, "M") if ta else ("M", 5)
    out = agrees("Gemm", [a, b, rand(7)], [sa, None, None], {"M": 3}, transA=ta, transB=tb)
    assert out[0].shape == ("M", 7)


def test_integer_matmuls():
    a, b = Info("uint8", ("M", 4)), Info("int8", (4, 3))
    assert infer("MatMulInteger", a, b)[0] == Info("int32", ("M", 3))
    s = Info("float32", ())
    assert infer("QLinearMatMul", a, s, Info("uint8", ()), b, s, Info("int8", ()), s,
                 Info("int8", ()))[0] == Info("int8", ("M", 3))


@pytest.mark.parametrize("eq, shapes, sym, expect", [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], [("B", 3, 4), ("B", 4, 5)], ("B", 3, 5)),
    ("ij->ji", [(3, 4)], [("I", 4)], (4, "I")),
    ("...ii->...i", [(2, 5, 3, 3)], [("B", 5, 3, 3)], ("B", 5, 3)),
    ("i,i", [(4,), (4,)], [("I",), (4,)], ()),
    ("ij,jk", [(3, 4), (4, 2)], [("I", 4), (4, 2)], ("I", 2)),
    ("b...d,d->b...", [(2, 3, 4), (4,)], [("B", 3, 4), (4,)], ("B", 3)),
])
def test_einsum_shapes(eq, shapes, sym, expect):
    bind = {"B": 2, "I": shapes[0][0]}
    out = agrees("Einsum", [rand(*s) for s in shapes], sym, bind, equation=eq)
    assert out[0].shape == expect


def test_einsum_bad_equation():
    with pytest.raises(ShapeError):
        infer("Einsum", Info("float32", (2, 3)), equation="ij,jk->ik")
