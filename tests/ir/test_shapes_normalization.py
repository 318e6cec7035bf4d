import pytest

from tests.ir.shapecheck import agrees, infer
from tests.oracle import rand
from workbench.errors import ShapeError
from workbench.ir.ops import Info

X = Info("float32", ("B", "S", 16))


@pytest.mark.parametrize("axis", [-1, -2, 1, 0])
def test_layernorm_statistics_keep_leading_dims(axis):
    y, mean, inv = infer("LayerNormalization", X, Info("float32", (16,)), axis=axis)
    assert y.shape == X.shape
    keep = axis % 3
    assert mean.shape == inv.shape == X.shape[:keep] + (1,) * (3 - keep)
    agrees("LayerNormalization", [rand(2, 5, 16), rand(*(2, 5, 16)[keep:]), None], [X.shape, None, None],
           {"B": 2, "S": 5}, axis=axis)


def test_layernorm_half_statistics_are_float32():
    _, mean, inv = infer("LayerNormalization", Info("float16", ("B", 8)), Info("float16", (8,)))
    assert mean.dtype == inv.dtype == "float32"


def test_batchnorm_training_adds_running_statistics():
    x, c = Info("float32", ("N", 3, "H", "W")), Info("float32", (3,))
    assert len(infer("BatchNormalization", x, c, c, c, c)) == 1
    outs = infer("BatchNormalization", x, c, c, c, c, training_mode=1)
    assert [o.shape for o in outs] == [x.shape, (3,), (3,)]


@pytest.mark.parametrize("op, extra, attrs", [
    ("InstanceNormalization", 2, {}),
    ("GroupNormalization", 2, dict(num_groups=2)),
    ("LpNormalization", 0, dict(axis=1)),
    ("MeanVarianceNormalization", 0, {}),
    ("LRN", 0, dict(size=3)),
    ("RMSNormalization", 1, dict(axis=-2)),
])
def test_normalizations_keep_shape(op, extra, attrs):
    x = rand(2, 4, 3, 5)
    params = [rand(4) if op != "RMSNormalization" else rand(3, 5) for _ in range(extra)]
    agrees(op, [x, *params], [("N", 4, "H", "W")] + [None] * extra, {"N": 2, "H": 3, "W": 5}, **attrs)


def test_groupnorm_needs_divisible_channels_and_num_groups():
    c = Info("float32", (6,))
    with pytest.raises(ShapeError, match="divisible"):
        infer("GroupNormalization", Info("float32", ("N", 6, 4)), c, c, num_groups=4)
    with pytest.raises(ShapeError, match="num_groups"):
        infer("GroupNormalization", Info("float32", ("N", 6, 4)), c, c)


def test_out_of_range_axis_is_an_error():
    with pytest.raises(ShapeError):
        infer("LayerNormalization", X, Info("float32", (16,)), axis=3)
