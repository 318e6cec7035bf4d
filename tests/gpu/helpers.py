"""Helpers for the GPU tests: run one tactic on one op, and float64 NumPy references."""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np

STORE = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}
TOLERANCE = {"fp32": 1e-5, "tf32": 1e-3, "fp16": 1e-2, "bf16": 1e-2}


def rounded(x: np.ndarray, precision: str) -> np.ndarray:
    """What a layer of `precision` reads from float32 data, as float64."""
    if x.dtype != np.float32:
        return x.astype(np.float64) if x.dtype.kind == "f" else x
    if precision == "fp16":
        return x.astype(np.float16).astype(np.float64)
    if precision == "bf16":
        return x.astype(ml_dtypes.bfloat16).astype(np.float64)
    return x.astype(np.float64)


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    assert not np.isnan(got).any(), "NaN in the output (unwritten or poisoned elements?)"
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


def run_tactic(tactic: str, op: str, inputs: list, attrs: dict, precision: str, params=None, const=(),
               domain: str = "", out_dtype: str | None = None, n_out: int = 1, channels_last=()):
    """Prepare `tactic` for one layer and run it on fresh device copies of `inputs`, output poisoned first.
    channels_last: indices of 4-D inputs stored NHWC (as convolutions write them), seen as NCHW views.

    Returns the outputs as float64 NumPy arrays (or in their own dtype when not float).
    """
    import cupy as cp

    from workbench.backends.cuda import device, tactics
    from workbench.backends.cuda.site import make_site
    from workbench.ir.network import Layer

    tactics.load_all()
    dev = device.Device(device.Shared({}))
    names = [f"in{i}" if x is not None else "" for i, x in enumerate(inputs)]
    layer = Layer("t", op, names, ["y"] + [f"y{i}" for i in range(1, n_out)], attrs, domain)
    weights = {names[i] for i in const}
    try:
        with dev.active():
            args = [device.to_device(x) if x is not None else None for x in inputs]
            args = [cp.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if i in channels_last else a
                    for i, a in enumerate(args)]
            site = make_site(layer, attrs, args, precision, [out_dtype or STORE[precision]] + [""] * (n_out - 1),
                             weights, 21)
            t = tactics.TACTICS[tactic]
            why = t.applies(site)
            if why is not None:
                raise NotApplicable(why)
            kernel = t.prepare(site, params or {}, dev)
            poison = cp.empty(256 << 20, cp.uint8)
            poison.fill(255)  # all-ones bytes are NaN in every float format: unwritten outputs show up
            del poison
            outs = kernel(args)
            dev.synchronize()
            host = [cp.asnumpy(o) if o is not None else None for o in outs]
            del outs, kernel, args  # back to the device's pool before it is emptied
    finally:
        dev.close()  # each call makes a device: its memory and library handles must not pile up
    return [h.astype(np.float64) if h is not None and h.dtype.kind == "f" else h for h in host]


class NotApplicable(Exception):
    pass


# ------------------------------------------------------------------------------- references
def conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1), group=1):
    """float64 grouped 2-D cross-correlation, ONNX pads (top, left, bottom, right)."""
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    xp = np.pad(x, [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])])
    p = (h + pads[0] + pads[2] - (r - 1) * dil[0] - 1) // stride[0] + 1
    q = (wd + pads[1] + pads[3] - (s - 1) * dil[1] - 1) // stride[1] + 1
    kg = k // group
    y = np.zeros((n, k, p, q))
    for g in range(group):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * kg:(g + 1) * kg]
        for i in range(r):
            for j in range(s):
                tap = xg[:, :, i * dil[0]: i * dil[0] + stride[0] * (p - 1) + 1: stride[0],
                         j * dil[1]: j * dil[1] + stride[1] * (q - 1) + 1: stride[1]]
                y[:, g * kg:(g + 1) * kg] += np.einsum("ncpq,kc->nkpq", tap, wg[:, :, i, j])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def _erf(x):
    return np.vectorize(math.erf)(x)


def activation(name: str, x, alpha=None, beta=None):
    a = {"LeakyRelu": 0.01, "Elu": 1.0, "HardSigmoid": 0.2, "Selu": 1.67326319217681884765625,
         "Celu": 1.0, "ThresholdedRelu": 1.0, "Clip": -np.inf}.get(name) if alpha is None else alpha
    b = {"HardSigmoid": 0.5, "Selu": 1.05070102214813232421875, "Clip": np.inf}.get(name) if beta is None else beta
    table = {
        None: lambda v: v, "Relu": lambda v: np.maximum(v, 0), "LeakyRelu": lambda v: np.where(v < 0, a * v, v),
        "Sigmoid": lambda v: 1 / (1 + np.exp(-v)), "Tanh": np.tanh,
        "Gelu": lambda v: 0.5 * v * (1 + _erf(v / math.sqrt(2))),
        "GeluTanh": lambda v: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))),
        "Clip": lambda v: np.clip(v, a, b), "HardSigmoid": lambda v: np.clip(a * v + b, 0, 1),
        "HardSwish": lambda v: v * np.clip(v / 6 + 0.5, 0, 1), "Elu": lambda v: np.where(v < 0, a * (np.exp(v) - 1), v),
        "Selu": lambda v: np.where(v <= 0, b * (a * np.exp(v) - a), b * v),
        "Softplus": lambda v: np.log1p(np.exp(v)), "Softsign": lambda v: v / (1 + np.abs(v)),
        "Erf": _erf, "Exp": np.exp, "Neg": np.negative, "Abs": np.abs, "Tanh_": np.tanh,
        "Celu": lambda v: np.maximum(0, v) + np.minimum(0, a * (np.exp(v / a) - 1)),
        "ThresholdedRelu": lambda v: np.where(v > a, v, 0),
        "Mish": lambda v: v * np.tanh(np.log1p(np.exp(v))),
    }
    return table[name](x)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps) * w
    return y + b if b is not None else y
