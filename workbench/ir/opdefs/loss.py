"""Shape rules of the losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.

Both take scores (N, C, d1...) and integer targets (N, d1...); the loss has the target's shape
with reduction="none", else it is a scalar. SoftmaxCrossEntropyLoss may also output log_prob,
the log-softmax of the scores (their shape).
"""
from __future__ import annotations

from ...errors import ShapeError
from ..ops import Info, op

REDUCTIONS = ("none", "sum", "mean")


def loss_shape(x: Info, target: Info, reduction: str, what: str) -> Info:
    """The loss output: target-shaped for reduction 'none', else a scalar; x's dtype."""
    if reduction not in REDUCTIONS:
        raise ShapeError(f"{what}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if x.shape is not None and len(x.shape) < 2:
        raise ShapeError(f"{what}: scores need shape (N, C, ...), got {x.shape}")
    if target.dtype not in ("int32", "int64"):
        raise ShapeError(f"{what}: target must be int32 or int64, got {target.dtype}")
    if reduction != "none":
        return Info(x.dtype, ())
    if target.shape is not None:
        return Info(x.dtype, target.shape)
    return Info(x.dtype, None if x.shape is None else x.shape[:1] + x.shape[2:])


@op("NegativeLogLikelihoodLoss", since=12, ignore_index=None, reduction="mean")
def negative_log_likelihood_loss(x, target, weight=None, *, ignore_index, reduction):
    """loss: -x[n, target[n, d...], d...], weighted and reduced."""
    return loss_shape(x, target, reduction, "NegativeLogLikelihoodLoss")


@op("SoftmaxCrossEntropyLoss", since=12, ignore_index=None, reduction="mean")
def softmax_cross_entropy_loss(scores, labels, weights=None, *, ignore_index, reduction):
    """(loss, log_prob): NegativeLogLikelihoodLoss of LogSoftmax(scores, axis=1), and that log-softmax."""
    return (loss_shape(scores, labels, reduction, "SoftmaxCrossEntropyLoss"),
            Info(scores.dtype, scores.shape))
