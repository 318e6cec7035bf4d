"""Error metrics between an output and its reference: pure functions of two arrays."""
from __future__ import annotations

import numpy as np

HIST_BINS = 20


def _float(x) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(np.float64) if x.dtype.kind in "fciub" or x.dtype.name == "bfloat16" else x


def closeness(actual, expected, atol: float, rtol: float) -> np.ndarray:
    """Elementwise |a - e| <= atol + rtol * |e|, with NaN matching NaN and infinities matching exactly."""
    a, e = _float(actual), _float(expected)
    with np.errstate(invalid="ignore"):
        ok = np.abs(a - e) <= atol + rtol * np.abs(e)
    return ok | (np.isnan(a) & np.isnan(e)) | ((a == e) & np.isinf(e))


def topk_agreement(actual: np.ndarray, expected: np.ndarray, k: int) -> tuple:
    """(top-1 agreement, mean top-k overlap) over the rows of 2-D logits."""
    k = min(k, expected.shape[-1])
    top1 = float(np.mean(actual.argmax(-1) == expected.argmax(-1)))
    ka = np.argsort(-actual, axis=-1)[:, :k]
    ke = np.argsort(-expected, axis=-1)[:, :k]
    overlap = [len(set(r1) & set(r2)) / k for r1, r2 in zip(ka, ke)]
    return top1, float(np.mean(overlap))


def error_stats(actual, expected, atol: float, rtol: float, top_k: int = 5) -> dict:
    """Per-output statistics: abs/rel errors, cosine similarity, SNR (dB), top-k agreement, histogram, pass.

    Relative errors are over the elements whose reference is non-zero; the histogram is of absolute errors.
    """
    a, e = _float(actual), _float(expected)
    if a.shape != e.shape:
        return {"passed": False, "shape": list(a.shape), "expected_shape": list(e.shape),
                "reason": f"shape {a.shape} differs from the baseline's {e.shape}"}
    ok = closeness(a, e, atol, rtol)
    finite = np.isfinite(a) & np.isfinite(e)
    diff = np.abs(a - e)[finite]
    nonzero = e[finite] != 0  # relative error is undefined where the reference is exactly zero (post-ReLU)
    rel = diff[nonzero] / np.abs(e[finite][nonzero])
    af, ef = a[finite].ravel(), e[finite].ravel()
    norms = np.linalg.norm(af) * np.linalg.norm(ef)
    noise = float(np.sum(diff ** 2))
    counts, edges = np.histogram(diff, bins=HIST_BINS) if diff.size else (np.zeros(0), np.zeros(0))
    stats = {
        "shape": list(a.shape), "dtype": str(np.asarray(actual).dtype),
        "max_abs": float(diff.max()) if diff.size else 0.0, "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "max_rel": float(rel.max()) if rel.size else 0.0, "mean_rel": float(rel.mean()) if rel.size else 0.0,
        "cosine": float(af @ ef / norms) if norms > 0 else float(np.array_equal(af, ef)),
        "snr_db": float(10 * np.log10(np.sum(ef ** 2) / noise)) if noise > 0 else float("inf"),
        "mismatches": int(ok.size - ok.sum()), "elements": int(ok.size), "nonfinite": int((~finite).sum()),
        "passed": bool(ok.all()), "hist_counts": counts.tolist(), "hist_edges": edges.tolist(),
    }
    if a.ndim == 2 and a.shape[-1] > 1 and a.dtype.kind == "f":
        stats["top1"], stats["topk"] = topk_agreement(a, e, top_k)
        stats["k"] = min(top_k, a.shape[-1])
    return stats


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of logits (argmax over the last axis) against integer labels."""
    pred = np.asarray(outputs).reshape(len(labels), -1).argmax(-1)
    return float(np.mean(pred == np.asarray(labels).reshape(-1)))
