"""NumPy kernels of NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (ONNX semantics).

Per element: loss[n, d...] = -weight[c] * x[n, c, d...] with c = target[n, d...], and 0 where
c == ignore_index. reduction "mean" divides the sum by the sum of the weights that were used
(the count of non-ignored targets when there are no weights), as ONNX's reference does.
"""
from __future__ import annotations

import numpy as np

from ..registry import kernel
from .elementwise import widen
from .softmax import log_softmax


def nll(x: np.ndarray, target: np.ndarray, weight, ignore_index, reduction: str) -> np.ndarray:
    """The negative log-likelihood loss of log-probabilities x (N, C, d...) at targets (N, d...)."""
    ignored = target == ignore_index if ignore_index is not None else np.zeros(target.shape, bool)
    # An ignored target may lie outside [0, C): clip it to read any class, then zero its loss.
    classes = np.clip(target, 0, x.shape[1] - 1).astype(np.intp)
    picked = np.take_along_axis(x, classes[:, None], axis=1)[:, 0]
    w = np.ones(target.shape, x.dtype) if weight is None else weight[classes].astype(x.dtype)
    w = np.where(ignored, 0, w).astype(x.dtype)
    loss = -picked * w
    if reduction == "sum":
        return np.sum(loss)
    if reduction == "mean":
        return np.sum(loss) / np.sum(w)
    return loss


@kernel("NegativeLogLikelihoodLoss")
def negative_log_likelihood_loss(x, target, weight=None, *, ignore_index=None, reduction="mean"):
    wx, ww = widen(x, weight)
    with np.errstate(all="ignore"):  # a mean over only ignored targets is 0/0 = NaN, as in ONNX
        return np.asarray(nll(wx, target, ww, ignore_index, reduction)).astype(x.dtype)


@kernel("SoftmaxCrossEntropyLoss")
def softmax_cross_entropy_loss(scores, labels, weights=None, *, ignore_index=None, reduction="mean"):
    """(loss, log_prob); the executor keeps log_prob only when the node asks for it."""
    ws, ww = widen(scores, weights)
    with np.errstate(all="ignore"):
        log_prob = log_softmax(ws, axis=1)
        loss = nll(log_prob, labels, ww, ignore_index, reduction)
    return np.asarray(loss).astype(scores.dtype), log_prob.astype(scores.dtype)
