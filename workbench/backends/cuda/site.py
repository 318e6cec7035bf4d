"""Site: one layer at concrete shapes, as a tactic sees it; precision emulation; tolerances.

A tactic is prepared for a Site and returns a Kernel: `kernel(args) -> [outputs]`. Arguments come
as stored (device arrays, or small host arrays for shape-like constants), outputs leave in the
layer's storage dtypes on the device (bfloat16 is emulated: float32 holding bf16-rounded values).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from ...builder.precision import MATMUL_OPS
from .device import cp, device_dtype, is_device

# relative L2, as in METHOD.md; int8 / fp8 layers may differ from the CPU kernel by the odd rounding step
# (a float bias added after scaling, FP8 sums in another order)
GRID_TOLERANCE = 3e-3  # relative L2 for int8 grid integers compared as numbers (see mismatch)
TOLERANCE = {"fp32": 1e-5, "tf32": 1e-3, "fp16": 1e-2, "bf16": 1e-2, "int8": 1e-3, "fp8": 1e-3}
LOW = {"fp16": "float16", "bf16": "bfloat16"}
SIGNATURE_VERSION = 1  # bump when a tactic's meaning changes, so cached timings are not reused


@dataclass
class Site:
    """A layer at concrete input shapes: what a tactic is prepared for and what the timing cache keys on.

    inputs: per input (shape, dtype name, "device" | "host") or None for an omitted optional input.
    const:  per input, True when it is a weight (constant for the engine's life).
    outputs: per output the storage dtype name ("bfloat16" included), "" for an omitted output.
    """

    op: str
    domain: str
    attrs: dict
    precision: str
    inputs: tuple
    const: tuple
    outputs: tuple
    opset: int = 21
    name: str = field(default="", compare=False)

    def key(self) -> str:
        body = json.dumps([SIGNATURE_VERSION, self.op, self.domain, self.attrs, self.precision,
                           [list(i) if i else None for i in self.inputs], list(self.const), list(self.outputs),
                           self.opset], default=_jsonable, sort_keys=True)
        return hashlib.sha1(body.encode()).hexdigest()

    def shape(self, i: int) -> tuple | None:
        return tuple(self.inputs[i][0]) if i < len(self.inputs) and self.inputs[i] else None

    def dtype(self, i: int) -> str | None:
        return self.inputs[i][1] if i < len(self.inputs) and self.inputs[i] else None

    def on_host(self, i: int) -> bool:
        return bool(i < len(self.inputs) and self.inputs[i] and self.inputs[i][2] == "host")

    def present(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] is not None

    @property
    def lowp(self) -> str | None:
        """float16 / bfloat16 when the layer runs at a reduced float precision."""
        return LOW.get(self.precision)

    @property
    def tf32(self) -> bool:
        return self.precision == "tf32" and self.op in MATMUL_OPS

    def all_float(self, inputs=None) -> bool:
        idx = range(len(self.inputs)) if inputs is None else inputs
        ins = [self.dtype(i) for i in idx if self.present(i)]
        return all(d in ("float16", "float32", "float64") for d in ins) and \
            all(o in ("", "float16", "float32", "float64", "bfloat16") for o in self.outputs)


def make_site(layer, attrs: dict, args: list, precision: str, out_dtypes: list, weights, opset: int) -> Site:
    """The Site of `layer` for these concrete arguments."""
    inputs = tuple((tuple(int(d) for d in a.shape), a.dtype.name, "device" if is_device(a) else "host")
                   if a is not None else None for a in args)
    const = tuple(bool(n) and n in weights for n in layer.inputs)
    return Site(layer.op, layer.domain, dict(attrs), precision, inputs, const,
                tuple(d or "" for d in out_dtypes), opset, layer.name)


def _jsonable(o):
    if isinstance(o, np.ndarray):
        return {"ndarray": o.dtype.name, "shape": list(o.shape), "sha1": hashlib.sha1(o.tobytes()).hexdigest()}
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (bytes, bytearray)):
        return o.decode(errors="replace")
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return repr(o)


# ------------------------------------------------------------------------------- precision emulation
def xp_of(x):
    return cp if is_device(x) else np


def round_bf16(x):
    """float32 values rounded to bfloat16 (nearest even), kept as float32; NaN and inf pass through."""
    xp = xp_of(x)
    bits = xp.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    lsb = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = ((bits + np.uint32(0x7FFF) + lsb) & np.uint32(0xFFFF0000)).view(np.float32)
    return xp.where(xp.isfinite(x), rounded, x).astype(np.float32, copy=False)


def round_tf32(x):
    """float32 values rounded to TF32 (10 mantissa bits), as tensor cores read operands."""
    xp = xp_of(x)
    bits = xp.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    lsb = (bits >> np.uint32(13)) & np.uint32(1)
    rounded = ((bits + np.uint32(0x0FFF) + lsb) & np.uint32(0xFFFFE000)).view(np.float32)
    return xp.where(xp.isfinite(x), rounded, x)


def lower(x, precision: str):
    """An input as a layer of `precision` reads it: float32 rounded to fp16/bf16 (kept in float32 for bf16)."""
    if x is None or x.dtype != np.float32:
        return x
    if precision == "fp16":
        return x.astype(np.float16)
    if precision == "bf16":
        return round_bf16(x)
    return x


def store(x, dtype_name: str):
    """An output in its storage dtype on the device representation (bf16: float32 rounded to bf16)."""
    if x is None or not dtype_name:
        return x
    if dtype_name == "bfloat16":
        return round_bf16(x.astype(np.float32, copy=False))
    want = device_dtype(dtype_name)
    return x if x.dtype == want else x.astype(want)


# ------------------------------------------------------------------------------- comparison
def mismatch(got, want, precision: str, scale: float = 1.0) -> str | None:
    """Why `got` is not `want` within the precision's tolerance (relative L2), or None when it is.

    Integer and bool outputs must be equal; NaN must sit where the reference has NaN. Two device
    arrays are compared on the device (only scalars come back): at batch 256 a host comparison of
    one convolution's output took seconds, most of a cold build.
    """
    for i, (g, w) in enumerate(zip(got, want)):
        if (g is None) != (w is None):
            return f"output {i}: one side is missing"
        if g is None:
            continue
        xp = cp if is_device(g) and is_device(w) else np
        if xp is np:
            g, w = _host(g), _host(w)
        if tuple(g.shape) != tuple(w.shape):
            return f"output {i}: shape {tuple(g.shape)}, reference {tuple(w.shape)}"
        tol = TOLERANCE.get(precision, 1e-5) * scale
        if precision == "int8" and g.dtype.kind in "iu" and w.dtype.kind in "iu":  # grid integers
            g, w = g.astype(np.float32), w.astype(np.float32)
            # one step is the grid's own rounding: a kernel that computes the value before rounding in
            # fp16 (int8-held) moves a few percent of the values by one step, never by two
            steps = float(xp.abs(g - w).max()) if g.size else 0.0
            if steps > 1:
                return f"output {i}: grid integers differ by {steps:.0f} steps (one allowed)"
            tol = GRID_TOLERANCE * scale
        why = _differ(xp, g, w, tol)
        if why:
            return f"output {i}: {why}"
    return None


def _differ(xp, g, w, tol: float) -> str | None:
    if w.dtype.kind not in "fc" or g.dtype.kind not in "fc":
        same = bool(xp.all(g == w))
        return None if same else f"{int(xp.sum(g != w))} of {w.size} values differ"
    wide = np.float64 if xp is np else np.float32  # on the device: float32 values, float64 sums
    g, w = g.astype(wide, copy=False), w.astype(wide, copy=False)
    nan_g, nan_w = xp.isnan(g), xp.isnan(w)
    if not bool(xp.all(nan_g == nan_w)):
        return f"NaN at {int(xp.sum(nan_g != nan_w))} places where the reference differs"
    inf = xp.isinf(w) | xp.isinf(g)
    if not bool(xp.all(xp.where(inf, g == w, True))):
        return "infinities differ"
    ok = ~(nan_w | inf)
    with np.errstate(invalid="ignore"):  # inf - inf where both sides agree: masked out
        diff = xp.where(ok, g - w, 0)
    num = float(xp.sqrt(xp.sum(diff * diff, dtype=np.float64)))
    ref = xp.where(ok, w, 0)
    den = float(xp.sqrt(xp.sum(ref * ref, dtype=np.float64)))
    err = num / den if den > 0 else num
    return None if err <= tol else f"relative L2 error {err:.2e} over {tol:.0e}"


def _host(x):
    return cp.asnumpy(x) if is_device(x) else np.asarray(x)
