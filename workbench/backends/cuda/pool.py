"""Pooling and lookup tactics: a generated kernel per 2-D MaxPool / AveragePool (and global pool over
channels-last input), CuPy reductions for other global pools, cupy.take for Gather.

The window kernel reads the input in its physical layout (channels-last views from convolutions, or
plain NCHW) and writes channels-last, so a pool between two convolutions costs no layout copy.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from .conv import _pads_for
from .device import cp
from .site import store
from .tactics import Kernel, ops, tactic

_KERNELS: dict = {}
_C = {"float16": "float16", "float32": "float", "float64": "double", "int8": "signed char", "uint8": "unsigned char"}
GRID_INTS = ("int8", "uint8")  # a max pool between int8 layers (quant/chain.py) moves grid integers
WINDOW_THREADS = 16384  # (image, channel) pairs below which a global pool stays one CuPy reduction


def _source(r: dict) -> tuple:
    """ElementwiseKernel pieces for a window recipe (kernel sizes, strides, pads, layout baked in)."""
    index = ("((n * H + h) * W + w) * C + c" if r["nhwc"] else "((n * C + c) * H + h) * W + w")
    init = "-1.0f / 0.0f" if r["max"] else "0.0f"
    update = "best = (v > best || v != v) ? v : best;" if r["max"] else "best += v;"
    if r["max"]:
        final = "best"
    elif r["include_pad"]:
        final = f"best / {float(r['kh'] * r['kw'])!r}f"
    else:
        final = "best / (float)count"
    # 32-bit index arithmetic when every index fits (64-bit division is emulated: it dominated the pool)
    ix = "int" if r.get("small", False) else "long long"
    body = f"""
    const {ix} C = {r['c']}, H = {r['h']}, W = {r['w']}, P = {r['p']}, Q = {r['q']};
    {ix} t = ({ix})i;
    const {ix} c = t % C; t /= C;
    const {ix} q = t % Q; t /= Q;
    const {ix} p = t % P; const {ix} n = t / P;
    float best = {init}; int count = 0;
    for (int kh = 0; kh < {r['kh']}; ++kh) {{
      const {ix} h = p * {r['sh']} - {r['pt']} + kh * {r['dh']};
      if (h < 0 || h >= H) continue;
      for (int kw = 0; kw < {r['kw']}; ++kw) {{
        const {ix} w = q * {r['sw']} - {r['pl']} + kw * {r['dw']};
        if (w < 0 || w >= W) continue;
        const float v = (float)x[{index}];
        {update} ++count;
      }}
    }}
    y = ({_C[r['out']]})({final});
    """
    name = "wb_pool_" + hashlib.sha1(json.dumps(r, sort_keys=True).encode()).hexdigest()[:16]
    return f"raw {r['dtype']} x", f"{r['out']} y", body, name


def _packed_source(r: dict) -> tuple:
    """(name, CUDA source): an int8/uint8 max pool over NHWC with four channels per thread, one 32-bit
    load per window tap and a byte-wise SIMD max (the element-per-thread kernel ran at a third of the
    memory's speed on ResNet's stem pool)."""
    name = "wb_pool4_" + hashlib.sha1(json.dumps(r, sort_keys=True).encode()).hexdigest()[:16]
    signed = r["dtype"] == "int8"
    c4 = r["c"] // 4
    code = f"""
extern "C" __global__ void {name}(const unsigned* __restrict__ X, unsigned* __restrict__ Y, int total) {{
  const int i = blockIdx.x * 256 + threadIdx.x;
  if (i >= total) return;
  int t = i / {c4};
  const int c = i % {c4}, q = t % {r['q']};
  t /= {r['q']};
  const int p = t % {r['p']}, n = t / {r['p']};
  unsigned best = {"0x80808080u" if signed else "0u"};
  for (int kh = 0; kh < {r['kh']}; ++kh) {{
    const int h = p * {r['sh']} - {r['pt']} + kh * {r['dh']};
    if (h < 0 || h >= {r['h']}) continue;
    for (int kw = 0; kw < {r['kw']}; ++kw) {{
      const int w = q * {r['sw']} - {r['pl']} + kw * {r['dw']};
      if (w < 0 || w >= {r['w']}) continue;
      best = {"__vmaxs4" if signed else "__vmaxu4"}(best, X[((n * {r['h']} + h) * {r['w']} + w) * {c4} + c]);
    }}
  }}
  Y[i] = best;
}}
"""
    return name, code


def _kernel(recipe: dict, packed: bool = False):
    """The compiled pool for a window recipe: the packed RawKernel, or the per-element ElementwiseKernel."""
    key = (packed, json.dumps(recipe, sort_keys=True))
    if key not in _KERNELS:
        if packed:
            name, code = _packed_source(recipe)
            _KERNELS[key] = cp.RawKernel(code, name)
        else:
            ins, outs, body, name = _source(recipe)
            _KERNELS[key] = cp.ElementwiseKernel(ins, outs, body, name)
    return _KERNELS[key]


def _window(site):
    a = site.attrs
    n, c, h, w = site.shape(0)
    k = list(a.get("kernel_shape") or ())
    stride = list(a.get("strides") or (1, 1))
    dil = list(a.get("dilations") or (1, 1))
    auto = a.get("auto_pad") or "NOTSET"
    auto = auto.decode() if isinstance(auto, bytes) else auto
    pt, _, p = _pads_for(h, k[0], stride[0], dil[0], auto, a.get("pads"), 0)
    pl, _, q = _pads_for(w, k[1], stride[1], dil[1], auto, a.get("pads"), 1)
    return dict(c=c, h=h, w=w, p=p, q=q, kh=k[0], kw=k[1], sh=stride[0], sw=stride[1], dh=dil[0], dw=dil[1],
                pt=pt, pl=pl)


@tactic("window", ops=ops("MaxPool", "AveragePool"), rank=20)
class Window:
    """A 2-D max / average pool as one generated kernel (float16/32, int8/uint8 max pools; no ceil mode,
    no indices output)."""

    @staticmethod
    def check(site):
        if not site.present(0) or len(site.shape(0)) != 4 or len(site.attrs.get("kernel_shape") or ()) != 2:
            return "not a 2-D pool"
        integers = site.op == "MaxPool" and site.dtype(0) in GRID_INTS and site.outputs[0] == site.dtype(0)
        if not integers and (site.dtype(0) not in ("float16", "float32") or
                             site.outputs[0] not in ("float16", "float32")):
            return "float16/float32 in and out (int8/uint8 for MaxPool) only"
        if site.inputs[0][2] != "device":
            return "input on the host"
        if any(site.outputs[1:]):
            return "the indices output is not produced"
        if site.attrs.get("ceil_mode"):
            return "ceil_mode is not handled"
        if site.op == "AveragePool" and (site.attrs.get("dilations") or [1, 1]) != [1, 1]:
            return "dilated average pooling is not handled"
        g = _window(site)
        return None if g["p"] > 0 and g["q"] > 0 else "empty output"

    @staticmethod
    def prepare(site, params, dev):
        geo = _window(site)
        n = site.shape(0)[0]
        base = dict(geo, dtype=site.dtype(0), out=site.outputs[0], max=site.op == "MaxPool",
                    include_pad=bool(site.attrs.get("count_include_pad", 0)),
                    small=max(n * geo["c"] * geo["h"] * geo["w"], n * geo["c"] * geo["p"] * geo["q"]) < 2 ** 31)

        packed = base["max"] and base["dtype"] in GRID_INTS and geo["c"] % 4 == 0 and base["small"]

        def run(args):
            x = args[0]
            nhwc = x.transpose(0, 2, 3, 1).flags.c_contiguous
            flat = (x.transpose(0, 2, 3, 1) if nhwc else cp.ascontiguousarray(x)).reshape(-1)
            y = cp.empty((n, geo["p"], geo["q"], geo["c"]), base["out"])
            if packed and nhwc:
                total = y.size // 4
                _kernel(base, packed=True)((-(-total // 256),), (256,),
                                           (flat.view(np.uint32), y.view(np.uint32), np.int32(total)))
            else:
                _kernel(dict(base, nhwc=bool(nhwc)))(flat, y)
            return [y.transpose(0, 3, 1, 2)]

        return Kernel(run, label="window")


@tactic("reduce", ops=ops("GlobalAveragePool", "GlobalMaxPool"), rank=20)
class GlobalPool:
    """Global pools accumulated in float32: over a 4-D input stored channels-last (a convolution's output)
    or contiguous, the window kernel with the whole image as its window, a thread per (image, channel)
    (ResNet-50's head, 256x2048x7x7 fp16: 0.022 ms, 0.095 as a CuPy reduction over the strided view);
    for other layouts, or too few (image, channel) pairs to fill the device, one CuPy reduction."""

    @staticmethod
    def check(site):
        if not site.present(0) or len(site.shape(0)) < 3 or site.inputs[0][2] != "device":
            return "needs a device tensor with spatial axes"
        if site.dtype(0) not in ("float16", "float32") or site.outputs[0] not in ("float16", "float32"):
            return "float16/float32 in and out only"
        return None

    @staticmethod
    def prepare(site, params, dev):
        shape = site.shape(0)
        axes = tuple(range(2, len(shape)))
        mean = site.op == "GlobalAveragePool"
        window = None
        if len(shape) == 4 and shape[0] * shape[1] >= WINDOW_THREADS:
            n, c, h, w = shape
            window = dict(c=c, h=h, w=w, p=1, q=1, kh=h, kw=w, sh=1, sw=1, dh=1, dw=1, pt=0, pl=0,
                          dtype=site.dtype(0), out=site.outputs[0], max=not mean, include_pad=True,
                          small=n * c * h * w < 2 ** 31)

        def run(args):
            x = args[0]
            nhwc = window is not None and x.transpose(0, 2, 3, 1).flags.c_contiguous
            if window and (nhwc or x.flags.c_contiguous):
                y = cp.empty((shape[0], 1, 1, shape[1]), window["out"])
                _kernel(dict(window, nhwc=nhwc))((x.transpose(0, 2, 3, 1) if nhwc else x).reshape(-1), y)
                return [y.transpose(0, 3, 1, 2)]
            y = x.mean(axis=axes, keepdims=True, dtype=np.float32) if mean else x.max(axis=axes, keepdims=True)
            return [y.astype(site.outputs[0], copy=False)]

        return Kernel(run, label="reduce")


@tactic("take", ops=ops("Gather"), precisions=("fp32", "tf32", "fp16", "bf16", "int8", "fp8"), rank=20)
class Take:
    """Gather as cupy.take on the device (embedding lookups), negative indices wrapped as ONNX says."""

    @staticmethod
    def check(site):
        if not site.present(0) or site.inputs[0][2] != "device" or not site.shape(0):
            return "data must be a device tensor"
        if site.dtype(1) not in ("int32", "int64"):
            return "indices must be int32/int64"
        # Computed host indices (shape arithmetic, e.g. BERT's token-type zeros) are uploaded once per
        # value: a captured graph keeps the upload of its capture, and host values that change between
        # runs come only from uncaptured steps, whose replay notices the change and drops the graphs.
        return None

    @staticmethod
    def prepare(site, params, dev):
        rank = len(site.shape(0))
        axis = int(site.attrs.get("axis", 0) or 0)
        axis = axis + rank if axis < 0 else axis
        n = site.shape(0)[axis]

        def indices(i):
            i = cp.asarray(i)
            return cp.where(i < 0, i + n, i)

        def run(args):
            idx = dev.derive(args[1], ("take-idx", n), indices, site.const[1]) if not site.on_host(1) \
                else dev.cached(("take-host-idx", args[1].shape, args[1].tobytes()), lambda: indices(args[1]))
            return [store(cp.take(args[0], idx, axis=axis), site.outputs[0])]

        return Kernel(run, label="take")
