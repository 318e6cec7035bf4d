"""Shape rules of NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, with symbolic dims."""
import numpy as np
import pytest

from tests.ir.shapecheck import agrees, infer
from tests.oracle import rand
from workbench.errors import ShapeError
from workbench.ir.ops import Info


@pytest.mark.parametrize("op", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_loss_shape_follows_target_or_is_scalar(op, reduction):
    x, t = rand(2, 3, 4), np.ones((2, 4), np.int64)
    out = agrees(op, [x, t], [("N", 3, "D"), ("N", "D")], {"N": 2, "D": 4}, reduction=reduction)
    assert out[0].shape == (("N", "D") if reduction == "none" else ())


def test_log_prob_has_the_scores_shape_and_unknown_target_falls_back_to_scores():
    loss, log_prob = infer("SoftmaxCrossEntropyLoss", Info("float16", ("N", 5, "H")), Info("int64", None),
                           reduction="none")
    assert loss == Info("float16", ("N", "H")) and log_prob == Info("float16", ("N", 5, "H"))


@pytest.mark.parametrize("bad", [dict(reduction="avg"), dict(target=Info("float32", ("N",)))])
def test_loss_rejects_bad_reduction_and_float_targets(bad):
    target = bad.pop("target", Info("int64", ("N",)))
    with pytest.raises(ShapeError):
        infer("NegativeLogLikelihoodLoss", Info("float32", ("N", 3)), target, **bad)
