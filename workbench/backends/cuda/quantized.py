"""INT8 tactics for the quantizer's ops (domain "workbench"; recipes in ir/opdefs/quantized.py).

    int8-gemm  QGemm, and QLinearConvFused 1x1 (any stride, no padding) as a GEMM over NHWC pixels:
               X quantized by a generated kernel, int8 x int8 -> int32 by cuBLAS gemmEx in TN layout
               (both operands K-contiguous: W is stored (N, K)), then one generated epilogue.
    int8-conv  other QLinearConvFused (integer recipes): the centred integers as fp16 through cuDNN with
               float32 accumulation and output, exact while partial sums stay below 2**24 (checked
               against the CPU at build time), then the same epilogue.

Bit-exact with the CPU kernel: x / x_scale is IEEE division (`__fdiv_rn`) rounded half-even
(`rintf`), the int32 accumulator plus the int32 bias is converted to float once and multiplied by
float32(x_scale * w_scale[c]) with `__fmul_rn` (NVRTC would otherwise fuse it with the residual add
into an FMA), the output grid is applied as the CPU does. Transcendental activations (GELU, ...)
follow CUDA's libm, within float rounding of NumPy's.
"""
from __future__ import annotations

import hashlib
import json
import struct

import numpy as np

from .conv import CudnnConv, geometry
from .cudnn_plans import cudnn_missing
from .device import cp, library
from .pointwise import _PREAMBLE, _Gen, act_node, activation_supported
from .site import Site
from .tactics import Kernel, ops, tactic

QGEMM_OPS = ops("QGemm", domain="workbench")
QCONV_OPS = ops("QLinearConvFused", domain="workbench")
CUBLAS_WORKSPACE = 32 << 20
R_8I, R_32I = 3, 10  # cudaDataType
# x_dtype -> (zero point the centred integers need to fit int8, lowest and highest centred value)
CENTRED = {"int8": (0, -128, 127), "uint8": (128, -128, 127)}
_KERNELS: dict = {}


def _f32(v: float) -> str:
    """An exact float32 literal (its bits), so NVRTC's decimal parsing cannot round it differently."""
    return f"__int_as_float(0x{struct.unpack('<I', struct.pack('<f', np.float32(v)))[0]:08x})"


def _name(prefix: str, recipe: dict) -> str:
    return f"{prefix}_{hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]}"


def _elementwise(recipe: dict, build):
    key = json.dumps(recipe, sort_keys=True)
    k = _KERNELS.get(key)
    if k is None:
        ins, outs, operation, name = build(recipe)
        k = _KERNELS[key] = cp.ElementwiseKernel(ins, outs, operation, name, preamble=_PREAMBLE)
    return k


def _quantize_source(r: dict) -> tuple:
    """X -> centred integers (int8, or float16 holding them): saturate(rint(x / x_scale)) into [lo, hi]."""
    cast = "signed char" if r["out"] == "int8" else "float16"
    op = (f"float v = rintf(__fdiv_rn((float)x, {_f32(r['scale'])})); "
          f"q = ({cast})fminf(fmaxf(v, {float(r['lo'])}f), {float(r['hi'])}f);")
    return f"{r['in']} x", f"{r['out']} q", op, _name("wb_q8", r)


def _epilogue_source(r: dict) -> tuple:
    """int32 (or exact float32) accumulator -> float32 output, in the CPU kernel's order."""
    ins = [f"{r['acc']} acc", "float32 unit"] + (["int32 bias"] if r["bias"] else []) + \
        ([f"{r['residual']} res"] if r["residual"] else [])
    total = "(long long)acc + (long long)bias" if r["bias"] else "(long long)acc"
    lines = [f"float in0 = __fmul_rn((float)({total}), unit);"]
    if r["residual"]:
        lines.append("in0 = __fadd_rn(in0, (float)res);")
    gen = _Gen({"inputs": ["float32"], "round": None}, "float")
    value = gen.value(act_node(*(r["act"] or [None, None, None]), ["in", 0]))
    lines += gen.lines + [f"float v = {value};"]
    if r["grid"]:
        s, zp, lo, hi = r["grid"]
        lines.append(f"float g = fminf(fmaxf(rintf(__fdiv_rn(v, {_f32(s)})) + {float(zp)}f, {float(lo)}f), "
                     f"{float(hi)}f); v = __fmul_rn(g - {float(zp)}f, {_f32(s)});")
    lines.append("y = v;")
    return ", ".join(ins), "float32 y", " ".join(lines), _name("wb_dq8", r)


class Recipe:
    """What a quantized layer needs on the device: scales, the output grid, the activation."""

    def __init__(self, site):
        a = site.attrs
        self.x_dtype = a["x_dtype"]
        zp, self.lo, self.hi = CENTRED.get(self.x_dtype, (None, 0, 0))
        self.ok_zero_point = zp is not None and int(a.get("x_zero_point") or 0) == zp
        self.x_scale = float(np.float32(a["x_scale"]))
        w_scale = np.asarray(a["w_scale"], np.float32).reshape(-1)
        self.unit = (np.float32(a["x_scale"]) * w_scale).astype(np.float32)
        self.w_zero = a.get("w_zero_point") is None or not np.any(np.asarray(a["w_zero_point"]))
        act = a.get("activation")
        self.act = [act, a.get("activation_alpha"), a.get("activation_beta")] if act else None
        y_scale = a.get("y_scale")
        self.grid = None
        if y_scale is not None:
            info = np.iinfo(a["y_dtype"]) if a["y_dtype"] in CENTRED else None
            self.grid = None if info is None else [float(np.float32(y_scale)), int(a.get("y_zero_point") or 0),
                                                   int(info.min), int(info.max)]
        self.fp8_grid = y_scale is not None and self.grid is None

    def why_not(self, site) -> str | None:
        if self.x_dtype not in CENTRED or not self.ok_zero_point:
            return "needs int8 X with zero point 0 (or uint8 with 128): the centred values must fit int8"
        if site.dtype(1) != "int8" or not site.const[1]:
            return "needs constant int8 weights"
        if not self.w_zero:
            return "weight zero points are not handled"
        if self.fp8_grid:
            return "a float8 output grid is not handled"
        if site.present(2) and site.dtype(2) != "int32":
            return "the bias must be int32"
        if any(site.present(i) and site.inputs[i][2] != "device" for i in (0, 1, 3)):
            return "an input lives on the host"
        if site.dtype(0) not in ("float16", "float32") or site.outputs[0] != "float32":
            return "X must be float16/float32 and the output float32"
        if self.act and not activation_supported(self.act[0]):
            return f"activation {self.act[0]!r} not supported"
        return None

    def quantize(self, x_view, out: str = "int8"):
        """The centred integers of X as `out` (int8 or float16; any strides in, contiguous out)."""
        r = {"in": np.dtype(x_view.dtype).name, "out": out, "scale": self.x_scale, "lo": self.lo, "hi": self.hi}
        return _elementwise(r, _quantize_source)(x_view)

    def epilogue(self, acc, unit, bias=None, residual=None):
        r = {"acc": np.dtype(acc.dtype).name, "bias": bias is not None,
             "residual": np.dtype(residual.dtype).name if residual is not None else None,
             "act": self.act, "grid": self.grid}
        args = [acc, unit] + ([bias] if bias is not None else []) + ([residual] if residual is not None else [])
        return _elementwise(r, _epilogue_source)(*args)


def _host(x):
    return x.get() if hasattr(x, "get") else np.asarray(x)


def _vector(values, n: int, dtype):
    return cp.asarray(np.ascontiguousarray(np.broadcast_to(np.asarray(values, dtype).reshape(-1), (n,))))


class Cublas:
    """A cuBLAS handle through nvmath's bindings (capturable: CuPy's refuse inside a stream capture)."""

    def __init__(self, dev):
        self.lib = lib = library("nvmath.bindings.cublas")
        self.handle = lib.create()
        lib.set_stream(self.handle, dev.stream.ptr)
        self.workspace = dev.pool.malloc(CUBLAS_WORKSPACE)  # kept: captured calls use it
        lib.set_workspace(self.handle, self.workspace.ptr, CUBLAS_WORKSPACE)
        self.one, self.zero = np.array(1, np.int32), np.array(0, np.int32)

    def igemm(self, xq, wq):
        """xq (M, K) int8 times wq (N, K) int8 transposed -> (M, N) int32: the TN product."""
        (m, k), n = xq.shape, wq.shape[0]
        c = cp.empty((m, n), np.int32)
        lib = self.lib
        lib.gemm_ex(self.handle, lib.Operation.T, lib.Operation.N, n, m, k, self.one.ctypes.data,
                    wq.data.ptr, R_8I, k, xq.data.ptr, R_8I, k, self.zero.ctypes.data, c.data.ptr, R_32I, n,
                    lib.ComputeType.COMPUTE_32I, lib.GemmAlgo.DEFAULT)
        return c


def _common(site) -> str | None:
    if library("nvmath.bindings.cublas") is None:
        return "nvmath-python (cuBLAS bindings) is not installed"
    return Recipe(site).why_not(site)


def _is_pointwise_conv(site) -> bool:
    g = geometry(site)
    return g.r == g.s == 1 and g.group == 1 and g.pad_begin == g.pad_end == (0, 0) and g.dilation == (1, 1)


@tactic("int8-gemm", ops=QGEMM_OPS | QCONV_OPS, precisions=("int8",), rank=10)
class Int8Gemm:
    """QGemm / 1x1 QLinearConvFused as quantize -> cuBLAS int8 TN GEMM -> generated epilogue."""

    @staticmethod
    def check(site):
        why = _common(site)
        if why:
            return why
        if site.op == "QLinearConvFused" and not _is_pointwise_conv(site):
            return "not a 1x1 convolution without padding (int8-conv runs those)"
        n, k = (site.shape(1)[0], int(np.prod(site.shape(1)[1:])))
        if n % 4 or k % 4:
            return f"int8 tensor-core GEMMs need N and K multiples of 4, got N={n}, K={k}"
        return None

    @staticmethod
    def prepare(site, params, dev):
        recipe, conv = Recipe(site), site.op == "QLinearConvFused"
        n, k = site.shape(1)[0], int(np.prod(site.shape(1)[1:]))
        cublas = dev.cached(("cublas-int8",), lambda: Cublas(dev))
        unit = _vector(recipe.unit, n, np.float32)
        bias_index = 2 if site.present(2) else None
        g = geometry(site) if conv else None

        def weights(w):
            return cp.ascontiguousarray(w.reshape(n, k))

        def run(args):
            w = dev.derive(args[1], ("int8-nk",), weights, site.const[1])
            bias = dev.derive(args[bias_index], ("int8-bias", n), lambda b: _vector(_host(b), n, np.int32),
                              site.const[bias_index]) if bias_index is not None else None
            x = args[0]
            if conv:  # pixels as rows: NHWC order, strided 1x1 reads every stride-th pixel
                x = x[:, :, ::g.stride[0], ::g.stride[1]].transpose(0, 2, 3, 1)
            xq = recipe.quantize(x)
            acc = cublas.igemm(xq.reshape(-1, k), w)
            if not conv:
                return [recipe.epilogue(acc, unit, bias).reshape(*site.shape(0)[:-1], n)]
            residual = args[3].transpose(0, 2, 3, 1) if site.present(3) else None
            y = recipe.epilogue(acc.reshape(g.n, g.p, g.q, n), unit, bias, residual)
            return [y.transpose(0, 3, 1, 2)]

        return Kernel(run, label="int8-gemm")


@tactic("int8-conv", ops=QCONV_OPS, precisions=("int8",), rank=20)
class Int8Conv:
    """k x k QLinearConvFused: centred integers as fp16 through cuDNN (float32 accumulate and output)."""

    @staticmethod
    def check(site):
        return cudnn_missing() or _common(site)

    @staticmethod
    def candidates(site, level):
        return [{"plan": i} for i in range(min(2, max(1, level)))]

    @staticmethod
    def prepare(site, params, dev):
        recipe = Recipe(site)
        # the convolution alone, as an fp16 conv with a float32 output, on the site's geometry
        plain = Site("Conv", "", {k: v for k, v in site.attrs.items() if k in
                                  ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")},
                     "fp16", site.inputs[:2], site.const[:2], ("float32",), site.opset)
        conv = dev.cached(("cudnn-conv-int8", plain.key()), lambda: CudnnConv(plain, dev, False, out_float=True))
        index = int(params.get("plan", 0))
        ws, name = conv.build(index)
        g = conv.geo
        unit = _vector(recipe.unit, g.k, np.float32)
        half = np.dtype(np.float16)

        def weights(w):  # (K, C, R, S) int8 -> KRSC fp16 holding the same integers
            return cp.ascontiguousarray(w.transpose(0, 2, 3, 1).astype(half)).transpose(0, 3, 1, 2)

        def run(args):
            w = dev.derive(args[1], ("int8-krsc-fp16",), weights, site.const[1])
            bias = dev.derive(args[2], ("int8-bias", g.k), lambda b: _vector(_host(b), g.k, np.int32),
                              site.const[2]) if site.present(2) else None
            xq = recipe.quantize(args[0].transpose(0, 2, 3, 1), "float16")  # NHWC integers
            y = cp.empty((g.n, g.p, g.q, g.k), np.float32)
            conv.execute(index, {"X": xq.transpose(0, 3, 1, 2), "W": w, "Y": y}, dev.workspace(ws), dev.cudnn_handle())
            residual = args[3].transpose(0, 2, 3, 1) if site.present(3) else None
            return [recipe.epilogue(y, unit, bias, residual).transpose(0, 3, 1, 2)]

        return Kernel(run, workspace=ws, label=f"int8-conv:{name}")
