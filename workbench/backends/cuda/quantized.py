"""INT8 and FP8 tactics for the quantizer's ops (domain "workbench"; recipes in ir/opdefs/quantized.py).

    int8-gemm   QGemm, and QLinearConvFused 1x1 (any stride, no padding) as a GEMM over NHWC pixels:
                X quantized by a generated kernel, int8 x int8 -> int32 by cuBLAS gemmEx in TN layout
                (both operands K-contiguous: W is stored (N, K)), then one generated epilogue.
    int8-mma    the same products as one generated int8 tensor-core kernel with the epilogue fused
                (imma.py): int8 read, int8/fp16 written once; scales folded into one multiply-add.
    int8-implicit  QLinearConvFused k x k the same way, X's patches read in place (implicit GEMM).
    int8-cudnn  QLinearConvFused as one cuDNN int8 graph: conv (int32) x per-channel scale + bias
                (+ residual) (+ ReLU), written as float, or as int8 on the next layer's grid.
    fp8-cudnn   the same graph on E4M3 operands (float32 accumulation), written as float.
    int8-held / fp8-held  the layer's grid values dequantized to fp16 (q(X) * x_scale, Wq * w_scale),
                then cuDNN's fp16 conv + bias (+ residual) (+ ReLU) graph, which has no per-channel
                multiply and so runs on the engines fp16 convolutions get: for shapes the int8/FP8
                engines run slowly (an RGB stem, FP8 convolutions). Operands round to fp16 (2**-11).
    int8-conv   QLinearConvFused (integer recipes): the centred integers as fp16 through cuDNN with
                float32 accumulation and output, exact while partial sums stay below 2**24 (checked
                against the CPU at build time), then the same epilogue.
    fp8-gemm    float8 QGemm / 1x1 QLinearConvFused: X to E4M3 bits by a generated kernel, cuBLASLt
                FP8 TN product scaled by x_scale * w_scale, then the epilogue.
    fp8-mma     the same layers through int8-mma's generated kernel on E4M3 bits (its wgmma forms,
                float32 accumulators), the epilogue fused.
    fp8-conv    float8 QLinearConvFused: E4M3 values held in fp16 (exact) through cuDNN with float32
                accumulation, as FP8 tensor cores compute, then the epilogue.

Float outputs are written in the storage dtype the builder chose (fp16 when every reader runs at
fp16 or is quantized, else float32).

Integer tactics other than the cuDNN graphs (int8-cudnn, int8-held) and the generated int8 kernel
(int8-mma, int8-implicit: scales folded, within a grid step) are bit-exact with the CPU kernel:
x / x_scale rounds half-even as the IEEE quotient does (wb_div_rint: a reciprocal product,
the division only at halves), the int32 accumulator plus the int32 bias is converted to float once
and multiplied by float32(x_scale * w_scale[c]) with `__fmul_rn` (NVRTC would otherwise fuse it with
the residual add into an FMA), the output grid is applied as the CPU does. Integer <-> float steps
use imma.EXACT's helpers, which give the conversions' results on the FP32 pipes.
Transcendental activations (GELU, ...) follow CUDA's libm, within float rounding of NumPy's.

Chained layers (quant/chain.py) pass int8 tensors: X may arrive already quantized (its dtype is
x_dtype), the output may be the grid integers (`y_quantized`), and the residual may be int8 with
`r_scale` / `r_zero_point`.
"""
from __future__ import annotations

import functools
import hashlib
import json
import struct

import numpy as np

from ...ir.opdefs.quantized import GRID_TYPES as INTS
from ...quant.numerics import FP8
from . import imma
from .conv import CudnnConv, geometry
from .cudnn_plans import CudnnPlans, cudnn_missing
from .device import cp, library
from .lt import E4M3, R8I, R16F, R32F, R32I, LtMatmul, lt_missing
from .pointwise import _PREAMBLE, _Gen, act_node, activation_supported
from .site import Site
from .stream import C_TYPES, HALF_TYPE, StreamKernel
from .tactics import EXHAUSTIVE_LEVEL, PLANS_PER_LEVEL, Kernel, ops, tactic

QGEMM_OPS = ops("QGemm", domain="workbench")
QCONV_OPS = ops("QLinearConvFused", domain="workbench")
CUBLAS_WORKSPACE = 32 << 20
# x_dtype -> (zero point the centred integers need to fit int8, lowest and highest centred value)
CENTRED = {"int8": (0, -128, 127), "uint8": (128, -128, 127)}
FLOAT_OUT = ("float16", "float32")
_KERNELS: dict = {}

_FP8_PREAMBLE = _PREAMBLE + imma.EXACT + r"""
__device__ inline unsigned char wb_e4m3_bits(float v) {  // saturate to +-448, round to nearest even
#if __CUDA_ARCH__ >= 890
  unsigned short b;  // the conversion instruction (sm_89+): the same bits as the dozen below, NaN 0x7F
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(b) : "f"(0.0f), "f"(v));
  return v != v ? 0x7F : (unsigned char)(b & 0xFF);
#else
  if (v != v) return 0x7F;
  v = fminf(fmaxf(v, -448.0f), 448.0f);
  unsigned char sign = signbit(v) ? 0x80 : 0;
  float a = fabsf(v);
  if (a < 0.015625f) return sign | (unsigned char)rintf(a * 512.0f);  // subnormals: units of 2**-9
  unsigned int u = __float_as_uint(a);
  u += 0x7FFFFu + ((u >> 20) & 1u);                                     // 3 mantissa bits, half-even
  return sign | (unsigned char)((((u >> 23) - 120u) << 3) | ((u >> 20) & 7u));
#endif
}
__device__ inline float wb_e4m3_value(unsigned char b) {
  int e = (b >> 3) & 15, m = b & 7;
  float a = e ? ldexpf(1.0f + m * 0.125f, e - 7) : ldexpf((float)m, -9);
  if ((b & 0x7F) == 0x7F) a = __int_as_float(0x7fc00000);
  return (b & 0x80) ? -a : a;
}
"""


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
        k = _KERNELS[key] = StreamKernel(ins, outs, operation, name, preamble=_FP8_PREAMBLE)
    return k


_OUT_C = {"int8": "signed char", "float16": "float16", "e4m3": "unsigned char", "held": "float16"}
_STORED = {"int8": "int8", "float16": "float16", "e4m3": "uint8", "held": "float16"}


def _quantize_source(r: dict) -> tuple:
    """X -> what the product reads: centred integers (int8, or float16 holding them), E4M3 bits, or
    E4M3 values held in float16; "held": either dequantized (times x_scale) in float16. An integer X
    was quantized by the layer before: it is only centred."""
    if r["in"] in INTS:
        v = f"wb_small_i2f((int)x - {int(r['offset'])})"
    elif r["fp8"]:
        v = f"__fdiv_rn((float)x, {_f32(r['scale'])})"
    else:
        v = f"fminf(fmaxf({_div_rint('(float)x', r['scale'])}, {float(r['lo'])}f), {float(r['hi'])}f)"
    if r["fp8"]:
        v = f"wb_e4m3_bits({v})" if r["out"] == "e4m3" else f"wb_e4m3_value(wb_e4m3_bits({v}))"
    elif r["out"] == "int8":
        v = f"wb_small_f2i({v})"
    if r["out"] == "held":
        v = f"__fmul_rn({v}, {_f32(r['scale'])})"
    return f"{r['in']} x", f"{_STORED[r['out']]} q", f"q = ({_OUT_C[r['out']]})({v});", _name("wb_q8", r)


def _div_rint(v: str, scale: float) -> str:
    """C for rintf(v / scale) with the IEEE quotient (see wb_div_rint), saturating callers only."""
    inv = np.float32(1) / np.float32(scale)
    if np.isfinite(inv) and abs(inv) >= np.finfo(np.float32).tiny:
        return f"wb_div_rint({v}, {_f32(inv)}, {_f32(scale)})"
    return f"rintf(__fdiv_rn({v}, {_f32(scale)}))"


def _epilogue_source(r: dict) -> tuple:
    """The epilogue as an elementwise kernel: accumulator, unit, bias, residual -> y."""
    ins = [f"{r['acc']} acc", "float32 unit"] + ([f"{r['bias']} bias"] if r["bias"] else []) + \
        ([f"{r['residual']} res"] if r["residual"] else [])
    return ", ".join(ins), f"{r['out']} y", " ".join(epilogue_lines(r)), _name("wb_dq8", r)


def epilogue_lines(r: dict) -> list:
    """C statements from `acc`, `unit`, `bias`, `res` to `y`, in the CPU kernel's order: int32 + int32
    bias then one multiply (integers), multiply then + float bias (float8); residual; activation;
    output grid (values, or the integers)."""
    if r["fp8"]:
        lines = ["float in0 = __fmul_rn((float)acc, unit);"] + (["in0 = __fadd_rn(in0, bias);"] if r["bias"] else [])
    else:
        total = "wb_sum_i2f(acc, (long long)bias)" if r["bias"] else "wb_i2f(acc)"
        lines = [f"float in0 = __fmul_rn({total}, unit);"]
    if r["residual"] in INTS:
        s, zp = r["r_grid"]
        lines.append(f"in0 = __fadd_rn(in0, __fmul_rn(wb_small_i2f((int)res - {int(zp)}), {_f32(s)}));")
    elif r["residual"]:
        lines.append("in0 = __fadd_rn(in0, (float)res);")
    gen = _Gen({"inputs": ["float32"], "round": None}, "float")
    value = gen.value(act_node(*(r["act"] or [None, None, None]), ["in", 0]))
    lines += gen.lines + [f"float v = {value};"]
    if r["grid"]:
        lines += _grid_lines(r["grid"], r["y_int"])
    elif r["fp8_grid"] is not None:
        s = _f32(r["fp8_grid"])
        lines.append(f"y = __fmul_rn(wb_e4m3_value(wb_e4m3_bits(__fdiv_rn(v, {s}))), {s});")
    else:
        lines.append("y = v;")
    return lines


def _grid_lines(grid: list, y_int: str | None) -> list:
    """float v -> y on the output grid: its integers (y_int) or their float values, as the CPU rounds."""
    s, zp, lo, hi = grid
    lines = [f"float g = fminf(fmaxf({_div_rint('v', s)} + {float(zp)}f, {float(lo)}f), {float(hi)}f);"]
    if y_int:
        return lines + [f"y = ({'signed char' if y_int == 'int8' else 'unsigned char'})wb_small_f2i(g);"]
    return lines + [f"y = __fmul_rn(g - {float(zp)}f, {_f32(s)});"]


# activations that commute with a positive scale: the output grid's 1/scale folds into the per-channel
# multiplier before them (ReLU also folds into the clamp)
_HOMOGENEOUS = (None, "Relu")
_MAGIC = 12582912.0  # 1.5 * 2**23: v + _MAGIC rounds v to an integer (half to even) in the low mantissa bits


def folded_lines(r: dict, small_acc: bool) -> list:
    """Epilogue statements for the fused int8 kernel, with scales folded as TensorRT folds them.

    y = grid(act(acc * alpha + beta + res * gamma)): alpha[c] = unit[c] (/ y_scale), beta[c] the bias
    in the same units (folded_columns), gamma the residual's scale (/ y_scale); rounded by one add of
    1.5 * 2**23 after the clamp. Not bit-exact with the CPU kernel's order of roundings: a value at a
    half may round the other way (one grid step), as cuDNN's int8 graphs do. small_acc: every
    accumulator is below 2**22 in magnitude, so it converts to float in two FP32 operations. A float8
    layer's accumulator is already a float (E4M3 products summed in float32).
    """
    name = (r["act"] or [None])[0]
    fold = _folds_grid(r["grid"], r["act"])
    post = 1.0 / np.float64(r["grid"][0]) if fold else 1.0
    acc = "acc" if r["fp8"] else "wb_small_i2f(acc)" if small_acc else "wb_i2f(acc)"
    lines = [f"float v = {f'fmaf({acc}, alpha, beta)' if r['bias'] else f'__fmul_rn({acc}, alpha)'};"]
    if r["residual"] in INTS:
        s, zp = r["r_grid"]
        lines.append(f"v = fmaf(wb_small_i2f((int)res - {int(zp)}), {_f32(s * post)}, v);")
    elif r["residual"]:
        lines.append(f"v = fmaf((float)res, {_f32(post)}, v);")
    if name == "Gelu":
        lines.append("v = wb_gelu(v);")  # imma.EXACT's: erff's branches took most of FFN1's epilogue
    elif not fold:
        gen = _Gen({"inputs": ["float32"], "round": None}, "float")
        value = gen.value(act_node(*(r["act"] or [None, None, None]), ["in", 0]))
        lines += ["float in0 = v;"] + gen.lines + [f"v = {value};"]
    if r["grid"] is None:
        return lines + ["y = v;"]
    s, zp, lo, hi = r["grid"]
    if not fold:
        lines.append(f"v = __fmul_rn(v, {_f32(1.0 / np.float64(s))});")
    low = max(lo, zp) if fold and name == "Relu" else lo  # ReLU in grid units: nothing below the zero point
    shifted = f"v + {float(zp)}f" if zp else "v"
    lines.append(f"const float g = fminf(fmaxf({shifted}, {float(low)}f), {float(hi)}f) + {_MAGIC}f;")
    integer = "(__float_as_int(g) - 0x4B400000)"
    if r["y_int"]:
        return lines + [f"y = ({C_TYPES[r['y_int']]}){integer};"]
    return lines + [f"y = __fmul_rn((float)({integer} - {int(zp)}), {_f32(s)});"]


def _folds_grid(grid, act) -> bool:
    """Whether the output grid's 1/scale goes into the per-channel multiplier (before the activation)."""
    return grid is not None and (act or [None])[0] in _HOMOGENEOUS


def folded_columns(recipe, bias) -> list:
    """The per-channel vectors folded_lines reads: alpha = unit (/ y_scale), and beta the bias in the same
    units: bias * alpha for integer layers (an int32 bias counts units), bias (/ y_scale) for float8."""
    post = 1.0 / recipe.grid[0] if _folds_grid(recipe.grid, recipe.act) else 1.0
    alpha = recipe.unit.astype(np.float64) * post
    columns = [alpha.astype(np.float32)]
    if bias is not None:
        columns.append((np.asarray(bias, np.float64) * (post if recipe.fp8 else alpha)).astype(np.float32))
    return columns


def _requantize_source(r: dict) -> tuple:
    return f"{r['in']} x", f"{r['y_int']} y", " ".join(["float v = (float)x;"] + _grid_lines(r["grid"], r["y_int"])), \
        _name("wb_rq8", r)


class Recipe:
    """What a quantized layer needs on the device: scales, the output grid, the activation, the dtypes."""

    def __init__(self, site):
        a = site.attrs
        self.x_dtype = a["x_dtype"]
        self.fp8 = self.x_dtype == FP8
        zp, self.lo, self.hi = CENTRED.get(self.x_dtype, (0 if self.fp8 else None, 0, 0))
        self.ok_zero_point = zp is not None and int(a.get("x_zero_point") or 0) == zp
        self.offset = zp or 0
        self.x_scale = float(np.float32(a["x_scale"]))
        w_scale = np.asarray(a["w_scale"], np.float32).reshape(-1)
        self.per_tensor = w_scale.size == 1
        self.unit = (np.float32(a["x_scale"]) * w_scale).astype(np.float32)
        self.w_zero = a.get("w_zero_point") is None or not np.any(np.asarray(a["w_zero_point"]))
        act = a.get("activation")
        self.act = [act, a.get("activation_alpha"), a.get("activation_beta")] if act else None
        y_scale, y_dtype = a.get("y_scale"), a.get("y_dtype")
        self.grid = self.fp8_grid = None
        if y_scale is not None and y_dtype in CENTRED:
            info = np.iinfo(y_dtype)
            self.grid = [float(np.float32(y_scale)), int(a.get("y_zero_point") or 0), int(info.min), int(info.max)]
        elif y_scale is not None:
            self.fp8_grid = float(np.float32(y_scale))
        self.y_int = y_dtype if a.get("y_quantized") and self.grid else None
        # what the layer writes: the grid integers, or floats in the storage dtype (fp16 for fp16 readers)
        self.out = self.y_int or (site.outputs[0] if site.outputs[0] in FLOAT_OUT else "float32")
        self.r_grid = [float(np.float32(a.get("r_scale") or 0)), int(a.get("r_zero_point") or 0)]
        self._kernels: dict = {}  # by operand dtypes: a run looks its kernels up without building recipes

    def why_not(self, site) -> str | None:
        if not self.ok_zero_point:
            return "needs int8 X with zero point 0 (or uint8 with 128), or float8 X with zero point 0"
        weight = "float16" if self.fp8 else "int8"  # float8 weights live on the device as float16 (exact)
        if site.dtype(1) != weight or not site.const[1]:
            return f"needs constant {self.x_dtype} weights"
        if not self.w_zero:
            return "weight zero points are not handled"
        if site.present(2) and site.dtype(2) != ("float32" if self.fp8 else "int32"):
            return "the bias must be int32 (float32 for float8 layers)"
        if any(site.present(i) and site.inputs[i][2] != "device" for i in (0, 1, 3)):
            return "an input lives on the host"
        x = site.dtype(0)
        if x not in ("float16", "float32") and not (x in INTS and x == self.x_dtype):
            return f"X must be float16/float32 or already quantized to {self.x_dtype}, got {x}"
        if site.outputs[0] != self.out:
            return f"the output must be {self.y_int or 'float16 or float32'}, got {site.outputs[0]}"
        if site.present(3) and site.dtype(3) in INTS and not site.attrs.get("r_scale"):
            return "an integer residual needs r_scale"
        if self.act and not activation_supported(self.act[0]):
            return f"activation {self.act[0]!r} not supported"
        return None

    def _kernel(self, key, recipe, source):
        """The pass for `key`, built from recipe() with `source` on first use (a run only looks it up)."""
        k = self._kernels.get(key)
        if k is None:
            k = self._kernels[key] = _elementwise(recipe(), source)
        return k

    def _quantize_recipe(self, dtype, out: str) -> dict:
        """What _quantize_source needs to turn X of `dtype` into `out`."""
        return {"in": np.dtype(dtype).name, "out": out, "fp8": self.fp8, "scale": self.x_scale, "lo": self.lo,
                "hi": self.hi, "offset": self.offset}

    def quantize(self, x_view, out: str = "int8"):
        """What the product reads (see _quantize_source), contiguous, from X in any strides."""
        return self._kernel(("q", x_view.dtype, out), lambda: self._quantize_recipe(x_view.dtype, out),
                            _quantize_source)(x_view)

    def quantize_nhwc(self, x, channels: int, fold: int = 1):
        """X (N, C, H, W) as int8 NHWC with `channels` >= C (the rest zero), for the implicit GEMM, and
        with fold 2 folded space-to-depth (see _nhwc_kernel). An NCHW X (a network's image input) takes
        one pass that reads each pixel's channels and writes them as whole 32-bit words; a chained NHWC
        int8 X is used as it is (padded, or folded by a copy)."""
        nhwc = x.transpose(0, 2, 3, 1)
        if nhwc.flags.c_contiguous or not x.flags.c_contiguous or channels % 4 or channels > 64:
            q = _pad_channels(_int8_rows(self, nhwc), channels - x.shape[1])
            return q if fold == 1 else _fold(q, fold)
        key = ("nhwc", x.dtype, x.shape, channels, fold)
        k = self._kernels.get(key)
        if k is None:
            ins, _, op, name = _quantize_source(self._quantize_recipe(x.dtype, "int8"))
            k = self._kernels[key] = _nhwc_kernel(ins.split()[0], x.shape, channels, fold, op, name)
        n, _, h, w = x.shape
        y = cp.empty((n, -(-h // fold), -(-w // fold), fold * fold * channels), np.int8)
        pixels = y.size // y.shape[-1]
        k((-(-pixels // 256),), (256,), (x, y, np.int64(pixels)))
        return y

    def requantize(self, v):
        """Float values -> the output grid's integers (y_int), in v's layout."""
        return self._kernel(("r", v.dtype), lambda: {"in": np.dtype(v.dtype).name, "grid": self.grid,
                                                     "y_int": self.y_int}, _requantize_source)(v)

    def epilogue_recipe(self, acc: str, bias: str | None, residual: str | None) -> dict:
        """What the epilogue statements (epilogue_lines, folded_lines) need, for these operand dtypes."""
        return {"acc": acc, "bias": bias, "residual": residual, "r_grid": self.r_grid if residual in INTS else None,
                "fp8": self.fp8, "act": self.act, "grid": self.grid, "fp8_grid": self.fp8_grid, "y_int": self.y_int,
                "out": self.out}

    def epilogue(self, acc, unit, bias=None, residual=None):
        args = [acc, unit] + ([bias] if bias is not None else []) + ([residual] if residual is not None else [])
        dtypes = tuple(None if a is None else a.dtype for a in (acc, bias, residual))
        return self._kernel(("e", *dtypes), lambda: self.epilogue_recipe(
            *(None if d is None else np.dtype(d).name for d in dtypes)), _epilogue_source)(*args)


def _nhwc_kernel(in_type: str, shape: tuple, channels: int, fold: int, op: str, name: str):
    """A RawKernel quantizing an NCHW image (n, c, h, w) into NHWC int8 words: a thread per output pixel,
    `op` from _quantize_source (x -> q) per channel, channels beyond c zero. fold 2: space-to-depth, each
    output pixel the 2 x 2 input pixels (dy, dx) it covers, in that order (zero beyond the image)."""
    _, c, h, w = shape
    h2, w2 = -(-h // fold), -(-w // fold)
    words = []
    for dy in range(fold):
        for dx in range(fold):
            inside = f"wb_y * {fold} + {dy} < {h} && wb_x * {fold} + {dx} < {w}"
            at = f"src + (wb_y * {fold} + {dy}) * {w} + wb_x * {fold} + {dx}"
            for word in range(channels // 4):
                parts = [f"{{ const {C_TYPES[in_type]} x = ({at})[{ch} * {h * w}LL]; signed char q; {op} "
                         f"v |= (unsigned)(unsigned char)q << {8 * (ch - word * 4)}; }}"
                         for ch in range(word * 4, min(word * 4 + 4, c))]
                words.append(f"{{ unsigned v = 0; if ({inside}) {{ {' '.join(parts)} }} *dst++ = v; }}")
    kname = f"{name}_nhwc{c}x{channels}f{fold}_{h}x{w}"
    code = _FP8_PREAMBLE + HALF_TYPE + f"""
extern "C" __global__ void {kname}(const {C_TYPES[in_type]}* __restrict__ X, unsigned* __restrict__ Y,
                                   long long pixels) {{
  const long long p = blockIdx.x * 256LL + threadIdx.x;
  if (p >= pixels) return;
  const int wb_x = (int)(p % {w2}), wb_y = (int)(p / {w2} % {h2});
  const {C_TYPES[in_type]}* src = X + p / {h2 * w2} * {c * h * w}LL;
  unsigned* dst = Y + p * {fold * fold * channels // 4};
  {" ".join(words)}
}}
"""
    return cp.RawKernel(code, kname)


def space_to_depth(g, channels: int) -> dict:
    """A stride-2 convolution over `channels` (padded) input channels as a stride-1 one over the image
    folded 2 x 2 into 4 * channels: tap r of the original is tap (r + oy) // 2, sub-row (r + oy) % 2 of
    the folded one, with oy = 2 * ceil(pad / 2) - pad (the same across). The RGB stem then reads 16-byte
    units (4 pixels of 4 channels) where it read 4-byte ones."""
    (pt, pl), (h, w) = g.pad_begin, (g.h, g.w)
    ay, ax = -(-pt // 2), -(-pl // 2)
    oy, ox = 2 * ay - pt, 2 * ax - pl
    return {"h": -(-h // 2), "w": -(-w // 2), "c": 4 * channels, "r": -(-(g.r + oy) // 2),
            "s": -(-(g.s + ox) // 2), "p": g.p, "q": g.q, "stride": [1, 1], "dilation": [1, 1], "pad": [ay, ax],
            "offset": [oy, ox]}


def _host(x):
    return x.get() if hasattr(x, "get") else np.asarray(x)


def _vector(values, n: int, dtype):
    return cp.asarray(np.ascontiguousarray(np.broadcast_to(np.asarray(values, dtype).reshape(-1), (n,))))


def _bias(site, args, dev, n: int, dtype):
    """The bias as a device vector of n values, or None."""
    if not site.present(2):
        return None
    return dev.derive(args[2], ("q-bias", n, np.dtype(dtype).str), lambda b: _vector(_host(b), n, dtype),
                      site.const[2])


class Cublas:
    """A cuBLAS handle through nvmath's bindings (capturable: CuPy's refuse inside a stream capture)."""

    def __init__(self, dev):
        self.lib = lib = library("nvmath.bindings.cublas")
        self.handle = handle = lib.create()
        dev.on_close(lambda: lib.destroy(handle))
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
                    wq.data.ptr, R8I, k, xq.data.ptr, R8I, k, self.zero.ctypes.data, c.data.ptr, R32I, n,
                    lib.ComputeType.COMPUTE_32I, lib.GemmAlgo.DEFAULT)
        return c


def _is_pointwise_conv(site) -> bool:
    g = geometry(site)
    return g.r == g.s == 1 and g.group == 1 and g.pad_begin == g.pad_end == (0, 0) and g.dilation == (1, 1)


def _gemm_sizes(site) -> tuple:
    return site.shape(1)[0], int(np.prod(site.shape(1)[1:]))


def _gemm_rows(site) -> int:
    """The product's rows: output pixels of a 1x1 conv, or X's leading dims."""
    if site.op == "QLinearConvFused":
        g = geometry(site)
        return g.n * g.p * g.q
    return int(np.prod(site.shape(0)[:-1]))


def _gemm_check(site, fp8: bool, missing) -> str | None:
    """Why a GEMM tactic of this kind (int8 or float8) does not take the site, or None."""
    recipe = Recipe(site)
    if recipe.fp8 != fp8:
        return "float8 layers run fp8-gemm" if recipe.fp8 else "integer layers run int8-gemm"
    why = missing or recipe.why_not(site)
    if why:
        return why
    if site.op == "QLinearConvFused" and not _is_pointwise_conv(site):
        return "not a 1x1 convolution without padding (the conv tactics run those)"
    n, k = _gemm_sizes(site)
    n_align, k_align = (8, 16) if fp8 else (4, 4)  # 16-byte aligned rows of the operands and the result
    if n % n_align or k % k_align:
        return f"{'FP8' if fp8 else 'int8'} tensor-core GEMMs need N a multiple of {n_align} and K of {k_align}, " \
               f"got N={n}, K={k}"
    return None


def _pixel_rows(x, g):
    """A 1x1 convolution's input as GEMM rows: pixels in NHWC order, every stride-th one."""
    return x[:, :, ::g.stride[0], ::g.stride[1]].transpose(0, 2, 3, 1)


def _int8_rows(recipe, x):
    """X as the product's int8 rows: a chained int8 X as it is, anything else through quantize."""
    return x if x.dtype == np.int8 and x.flags.c_contiguous else recipe.quantize(x)


def _int8_weights(site, dev, args, n: int, k: int):
    """The int8 weights as (N, K), K-contiguous (the TN layout), derived once per weight."""
    return dev.derive(args[1], ("int8-nk",), lambda w: cp.ascontiguousarray(w.reshape(n, k)), site.const[1])


def _e4m3_weights(site, dev, args, n: int, k: int):
    """A float8 layer's weights (float16 holding E4M3 values) as their E4M3 bits, (N, K), derived once."""
    return dev.derive(args[1], ("e4m3-nk",), lambda w: _encode_values(w.reshape(n, k)), site.const[1])


def _gemm_kernel(site, dev, recipe, product, unit, bias_dtype, label: str) -> Kernel:
    """QGemm / 1x1 conv around `product(rows_of_X, args) -> (rows, N) accumulator`: pixels as rows."""
    conv = site.op == "QLinearConvFused"
    n, _ = _gemm_sizes(site)
    g = geometry(site) if conv else None

    def run(args):
        bias = _bias(site, args, dev, n, bias_dtype)
        acc = product(_pixel_rows(args[0], g) if conv else args[0], args)
        if not conv:
            return [recipe.epilogue(acc, unit, bias).reshape(*site.shape(0)[:-1], n)]
        residual = args[3].transpose(0, 2, 3, 1) if site.present(3) else None
        y = recipe.epilogue(acc.reshape(g.n, g.p, g.q, n), unit, bias, residual)
        return [y.transpose(0, 3, 1, 2)]

    return Kernel(run, label=label)


@tactic("int8-gemm", ops=QGEMM_OPS | QCONV_OPS, precisions=("int8",), rank=10)
class Int8Gemm:
    """QGemm / 1x1 QLinearConvFused as quantize -> int8 TN GEMM (cuBLAS gemmEx, "algo" -1, or one of
    cuBLASLt's heuristic algorithms) -> generated epilogue."""

    @staticmethod
    def check(site):
        missing = "nvmath-python (cuBLAS bindings) is not installed" \
            if library("nvmath.bindings.cublas") is None else None
        return _gemm_check(site, False, missing)

    @staticmethod
    def candidates(site, level):
        lt = [] if lt_missing() else [{"algo": i} for i in range(PLANS_PER_LEVEL.get(level, 3))]
        return [{"algo": -1}] + lt

    @staticmethod
    def prepare(site, params, dev):
        recipe = Recipe(site)
        n, k = _gemm_sizes(site)
        m = _gemm_rows(site)
        algo = int(params.get("algo", -1))
        if algo < 0:
            cublas = dev.cached(("cublas-int8",), lambda: Cublas(dev))
        else:
            mm = dev.cached(("lt-int8", m, n, k), lambda: LtMatmul(dev, m, n, k, R8I, R32I))
            if algo >= mm.count:
                raise RuntimeError(f"cuBLASLt offers {mm.count} algorithm(s), no algorithm {algo}")
        one = np.ones(1, np.int32)

        def product(x, args):
            w, xq = _int8_weights(site, dev, args, n, k), _int8_rows(recipe, x)
            if algo < 0:
                return cublas.igemm(xq.reshape(-1, k), w)
            acc = cp.empty((m, n), np.int32)
            mm(xq.reshape(m, k), w, acc, one, algo)
            return acc

        label = "int8-gemm" if algo < 0 else f"int8-gemm:lt{algo}"
        return _gemm_kernel(site, dev, recipe, product, _vector(recipe.unit, n, np.float32), np.int32, label)


def _residual_dtype(site) -> str | None:
    return site.dtype(3) if site.op == "QLinearConvFused" and site.present(3) else None


def _gemm_mma_check(site, fp8: bool) -> str | None:
    """Why the generated kernel does not take this QGemm / 1x1 conv on int8 (or E4M3) operands, or None."""
    why = _gemm_check(site, fp8, imma.missing("wgmma") if fp8 else None)
    if why:
        return why
    recipe = Recipe(site)
    if recipe.fp8_grid is not None:
        return "an E4M3 output grid is left to fp8-gemm's epilogue"
    return imma.fits(*_gemm_sizes(site), recipe.out, _residual_dtype(site), "wgmma" if fp8 else "sync")


def _gemm_mma_kernel(site, params, dev, fp8: bool) -> Kernel:
    """The generated kernel for a QGemm / 1x1 conv: X's rows (pixels) quantized to the layer's operands."""
    recipe = Recipe(site)
    n, k = _gemm_sizes(site)
    g = geometry(site) if site.op == "QLinearConvFused" else None

    def rows(args):
        x = _pixel_rows(args[0], g) if g else args[0]
        return (recipe.quantize(x, "e4m3") if fp8 else _int8_rows(recipe, x)).reshape(-1, k)

    def weights(args):
        return (_e4m3_weights if fp8 else _int8_weights)(site, dev, args, n, k)

    return _mma_kernel(site, params, dev, k, k, rows, weights, None, "fp8-mma" if fp8 else "int8-mma")


def _gemm_mma_candidates(site, level):
    return _mma_candidates(site, level, _gemm_sizes(site)[1])


def _quant_tactic(name: str, fp8: bool, rank: int, doc: str, check, candidates, prepare, ops=QCONV_OPS):
    """Register one quantized tactic for int8 or FP8 layers (the two share their code): check(site, fp8),
    prepare(site, params, dev, fp8)."""
    impl = type(name, (), {"__doc__": doc, "check": staticmethod(lambda site: check(site, fp8)),
                           "candidates": staticmethod(candidates),
                           "prepare": staticmethod(lambda site, params, dev: prepare(site, params, dev, fp8))})
    return tactic(name, ops=ops, precisions=("fp8" if fp8 else "int8",), rank=rank)(impl)


Int8Mma = _quant_tactic(
    "int8-mma", False, 12, "QGemm / 1x1 QLinearConvFused as one generated int8 tensor-core kernel with the "
    "epilogue fused (imma.py): int8 in, int8 or fp16 out, no int32 round trip through memory. Scales fold into "
    "one multiply-add per value (folded_lines): within a grid step of the CPU kernel, not bit-exact.",
    _gemm_mma_check, _gemm_mma_candidates, _gemm_mma_kernel, ops=QGEMM_OPS | QCONV_OPS)
Fp8Mma = _quant_tactic(
    "fp8-mma", True, 12, "float8 QGemm / 1x1 QLinearConvFused as the same generated kernel on E4M3 bits "
    "(imma.py's wgmma forms, sm_90a): float32 accumulators, the epilogue fused (scale, bias, residual, "
    "activation), fp16 or float32 written once, where fp8-gemm runs a cuBLASLt product and an epilogue pass "
    "apart. Takes per-channel weight scales too (cuBLASLt's FP8 product scales by one number).",
    _gemm_mma_check, _gemm_mma_candidates, _gemm_mma_kernel, ops=QGEMM_OPS | QCONV_OPS)


@tactic("int8-implicit", ops=QCONV_OPS, precisions=("int8",), rank=12)
class Int8Implicit:
    """QLinearConvFused k x k (one group) as the generated int8 kernel reading X's patches in place (an
    implicit GEMM: no im2col in memory), the epilogue fused as in int8-mma. Input channels are padded to
    a multiple of 4, and a stride-2 convolution over fewer than 16 may run folded space-to-depth: for
    the shapes cuDNN's int8 engines run slowly (an RGB stem, C=3: 0.58 + 0.10 ms against 1.1 ms, H100).
    With wgmma (sm_90a) it also beats cuDNN's int8 engines on 16k channels (ResNet-50 stage 1: 0.16 ms
    against 0.18; mma.sync 0.21); below the exhaustive level mma.sync is only timed where channels are
    not 16k."""

    @staticmethod
    def check(site):
        recipe = Recipe(site)
        why = ("float8 layers run the fp8 tactics" if recipe.fp8 else None) or recipe.why_not(site)
        if why:
            return why
        g = geometry(site)
        if g.group != 1:
            return "grouped convolutions are not handled"
        if _is_pointwise_conv(site):
            return "a 1x1 convolution without padding is a plain GEMM (int8-mma)"
        return imma.fits(g.k, _patch_k(g), recipe.out, _residual_dtype(site))

    @staticmethod
    def candidates(site, level):
        g = geometry(site)
        plain = _mma_candidates(site, level, _implicit_form(g, 1)[1], patches=True)
        if g.c % 16 == 0 and level < EXHAUSTIVE_LEVEL:
            return [c for c in plain if c["mma"] == "wgmma"]
        if not _foldable(g):
            return plain
        return [dict(c, fold=2) for c in _mma_candidates(site, level, _implicit_form(g, 2)[1], patches=True)] + plain[:2]

    @staticmethod
    def prepare(site, params, dev):
        recipe = Recipe(site)
        g = geometry(site)
        cp_ = _channels4(g)
        fold = int(params.get("fold", 1))
        if fold == 2 and not _foldable(g):
            raise ValueError("space-to-depth needs a stride-2, undilated convolution over fewer than 16 channels")
        conv, kp = _implicit_form(g, fold)

        def rows(args):  # NHWC int8 with cp_ channels (folded: 4 * cp_)
            return recipe.quantize_nhwc(args[0], cp_, fold)

        def weights(w):  # (K, C, R, S) -> (K, kp): K-contiguous in the order the patches are read
            if fold == 2:
                return _folded_weights(w, conv, cp_)
            krsc = _pad_channels(w.transpose(0, 2, 3, 1), cp_ - g.c).reshape(g.k, -1)
            return cp.ascontiguousarray(_pad_channels(krsc, kp - krsc.shape[1]))

        return _mma_kernel(site, params, dev, kp, g.r * g.s * g.c, rows,
                           lambda args: dev.derive(args[1], ("int8-patch-weights", kp, fold), weights, site.const[1]),
                           conv, "int8-implicit" + (":s2d" if fold == 2 else ""))


def _foldable(g) -> bool:
    """Whether space-to-depth helps: stride 2, no dilation, and channels too few for 16-byte loads."""
    return g.stride == (2, 2) and g.dilation == (1, 1) and _channels4(g) % 16 != 0


def _folded_weights(w, conv: dict, channels: int):
    """(K, C, R, S) weights for the space-to-depth convolution (space_to_depth): (K, R2 * S2 * 4 * channels),
    tap (r, s) at folded tap ((r + oy) // 2, (s + ox) // 2), sub-pixel ((r + oy) % 2, (s + ox) % 2)."""
    k, c, r, s = w.shape
    oy, ox = conv["offset"]
    out = cp.zeros((k, conv["r"], conv["s"], 2, 2, channels), w.dtype)
    for i in range(r):
        for j in range(s):
            out[:, (i + oy) // 2, (j + ox) // 2, (i + oy) % 2, (j + ox) % 2, :c] = w[:, :, i, j]
    return out.reshape(k, -1)


def _implicit_form(g, fold: int) -> tuple:
    """(the patch loader's geometry, the product's K) for the implicit GEMM, plain or folded 2 x 2."""
    if fold == 2:
        conv = space_to_depth(g, _channels4(g))
        return conv, conv["r"] * conv["s"] * conv["c"]
    return imma.patches(g, _channels4(g)), _patch_k(g)


def _channels4(g) -> int:
    """Input channels padded to a multiple of 4: whole 32-bit words per pixel for the implicit GEMM."""
    return -(-g.c // 4) * 4


def _patch_k(g) -> int:
    """The implicit GEMM's K: R * S * C with C padded to a multiple of 4, then to a multiple of 16."""
    return -(-(g.r * g.s * _channels4(g)) // 16) * 16


def _mma_candidates(site, level, k: int, patches: bool = False) -> list:
    """Tiles and pipeline depths of each main-loop form the device runs on the layer's operands
    (imma.forms: pingpong, tma, wgmma, then sync for int8; `patches`: a convolution's, which the TMA-fed
    forms do not read). Below the exhaustive level, what never won is left out (H100, ResNet-50 and
    BERT, 114 int8 layers): where a fed form takes the product, wgmma only where it holds K whole and no
    mma.sync; elsewhere two mma.sync tiles beside wgmma."""
    n, keep = site.shape(1)[0], PLANS_PER_LEVEL.get(level, 3) + 1
    forms = [f for f in imma.forms(_operand(Recipe(site))) if not (patches and f in imma.FED)]
    found = {mma: imma.configs(n, k, Recipe(site).out, _residual_dtype(site), mma)[:keep] for mma in forms}
    if level < EXHAUSTIVE_LEVEL:
        if any(found.get(f) for f in imma.FED):
            found["wgmma"] = [c for c in found.get("wgmma", []) if imma.holds_whole(k, c[2], "wgmma")]
            found.pop("sync", None)
        elif "wgmma" in forms:
            found["sync"] = found.get("sync", [])[:2]
    return [{"tile": [bm, bn], "stages": s, "mma": mma} for mma in forms for bm, bn, s in found.get(mma, [])]


def _operand(recipe) -> str:
    """What the generated kernel's operands hold for this layer (imma.OPERANDS)."""
    return "e4m3" if recipe.fp8 else "int8"


def _mma_kernel(site, params, dev, k: int, k_real: int, rows, weights, conv, label: str) -> Kernel:
    """The generated kernel around rows(args) (X's operand) and weights(args) ((N, k) int8, or E4M3 bits
    for float8 layers): k is the product's padded K, k_real the number of terms that may be non-zero."""
    recipe = Recipe(site)
    n, m = site.shape(1)[0], _gemm_rows(site)
    g = geometry(site) if site.op == "QLinearConvFused" else None
    residual = _residual_dtype(site)
    has_bias = site.present(2)
    acc = "float32" if recipe.fp8 else "int32"
    r = recipe.epilogue_recipe(acc, acc if has_bias else None, residual)
    small = k_real * 128 * 128 < 2 ** 22  # |acc| bound: centred int8 X times int8 weights (Q/DQ models: -128)
    mma = params.get("mma", "wgmma" if recipe.fp8 else "sync")  # int8 plans from before the wgmma form carry none
    why = imma.missing(mma) if mma in imma.FORMS else f"unknown main-loop form {mma!r}"
    if why:
        raise ValueError(why)
    default = imma.configs(n, k, recipe.out, residual, mma)[0]
    bm, bn = params.get("tile", default[:2])
    stages = int(params.get("stages", default[2]))
    kernel = imma.ImmaKernel(folded_lines(r, small), ("alpha", "beta")[:1 + has_bias], residual, recipe.out,
                             int(bm), int(bn), stages, conv, mma, imma.holds_whole(k, stages, mma),
                             _operand(recipe))

    def columns(bias):
        return [_vector(v, n, np.float32) for v in folded_columns(recipe, None if bias is None else _host(bias))]

    fixed = None if has_bias else columns(None)
    scales = hashlib.sha1(recipe.unit.tobytes()).hexdigest()  # the vectors depend on the bias and the scales

    def run(args):
        xq, w = rows(args), weights(args)
        vectors = fixed or dev.derive(args[2], ("int8-mma-columns", scales), columns, site.const[2])
        res = None
        if residual:
            res = args[3].transpose(0, 2, 3, 1)
            res = res if res.flags.c_contiguous else cp.ascontiguousarray(res)
        y = cp.empty((m, n), recipe.out)
        kernel(xq, w, *vectors, res, y)
        if g:
            return [y.reshape(g.n, g.p, g.q, n).transpose(0, 3, 1, 2)]
        return [y.reshape(*site.shape(0)[:-1], n)]

    return Kernel(run, label=f"{label}:{mma}:{bm}x{bn}x{stages}")


@tactic("fp8-gemm", ops=QGEMM_OPS | QCONV_OPS, precisions=("fp8",), rank=10)
class Fp8Gemm:
    """float8 QGemm / 1x1 conv: E4M3 bits -> cuBLASLt FP8 TN product (scaled) -> generated epilogue."""

    @staticmethod
    def check(site):
        if not Recipe(site).per_tensor:
            return "FP8 products scale by one number: the weights need one scale for the tensor"
        major = int(cp.cuda.Device().compute_capability[:-1]) if cp is not None else 0
        return _gemm_check(site, True, lt_missing() or (None if major >= 9 else "FP8 tensor cores need sm_89+"))

    @staticmethod
    def candidates(site, level):
        n = PLANS_PER_LEVEL.get(level, 3)
        return [{"algo": i, "out": out} for out in ("float32", "float16") for i in range(n)]

    @staticmethod
    def prepare(site, params, dev):
        recipe = Recipe(site)
        n, k = _gemm_sizes(site)
        m = _gemm_rows(site)
        d_type = R32F if params.get("out", "float32") == "float32" else R16F
        mm = dev.cached(("lt-fp8", m, n, k, d_type), lambda: LtMatmul(dev, m, n, k, E4M3, d_type))
        algo, alpha = int(params.get("algo", 0)), np.full(1, recipe.unit[0], np.float32)
        if algo >= mm.count:
            raise RuntimeError(f"cuBLASLt offers {mm.count} algorithm(s), no algorithm {algo}")

        def product(x, args):
            w = _e4m3_weights(site, dev, args, n, k)
            acc = cp.empty((m, n), np.float32 if d_type == R32F else np.float16)
            mm(recipe.quantize(x, "e4m3").reshape(m, k), w, acc, alpha, algo)
            return acc

        # the product is already scaled by x_scale * w_scale: the epilogue multiplies by one
        return _gemm_kernel(site, dev, recipe, product, _vector(1.0, n, np.float32), np.float32,
                            f"fp8-gemm:lt{algo}:{params.get('out', 'float32')}")


def _encode_values(w):
    """float16 arrays holding E4M3 values -> their E4M3 bits (exact: the values are on the grid)."""
    k = _elementwise({"encode": "e4m3"}, lambda r: ("float16 x", "uint8 q", "q = wb_e4m3_bits((float)x);",
                                                     _name("wb_e4m3", r)))
    return k(cp.ascontiguousarray(w))


def _pad_channels(nhwc, pad: int):
    """(..., C) -> (..., C + pad), the new channels zero (they add nothing to the products)."""
    if not pad:
        return nhwc
    out = cp.zeros(nhwc.shape[:-1] + (nhwc.shape[-1] + pad,), nhwc.dtype)
    out[..., :nhwc.shape[-1]] = nhwc
    return out


def _fold(nhwc, fold: int):
    """(n, h, w, c) -> (n, ceil(h / fold), ceil(w / fold), fold * fold * c): space-to-depth, zero beyond."""
    n, h, w, c = nhwc.shape
    h2, w2 = -(-h // fold), -(-w // fold)
    padded = cp.zeros((n, h2 * fold, w2 * fold, c), nhwc.dtype)
    padded[:, :h, :w] = nhwc
    folded = padded.reshape(n, h2, fold, w2, fold, c).transpose(0, 1, 3, 2, 4, 5)
    return cp.ascontiguousarray(folded).reshape(n, h2, w2, fold * fold * c)


def _conv_as_fp16(site, params, dev, fp8: bool) -> Kernel:
    """A quantized convolution through cuDNN in fp16 with float32 accumulation and output.

    int8: the centred integers, exact while partial sums stay below 2**24. float8: the E4M3 values,
    whose products are exact in float32 as on FP8 tensor cores; sums are float32 as there. Input
    channels are padded with zeros to a multiple of 8 where needed (an RGB stem): cuDNN offers no
    fp16 engine with a float32 output for C = 3.
    """
    recipe = Recipe(site)
    geo = geometry(site)
    pad = -geo.c % 8 if geo.group == 1 else 0
    (n, c, h, w), (k, _, r, s) = site.shape(0), site.shape(1)
    inputs = (((n, c + pad, h, w), "float16", "device"), ((k, c + pad, r, s), "float16", "device"))
    plain = Site("Conv", "", {key: v for key, v in site.attrs.items() if key in
                              ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")},
                 "fp16", inputs, site.const[:2], ("float32",), site.opset)
    conv = dev.cached(("cudnn-conv-int8", plain.key()), lambda: CudnnConv(plain, dev, False, out_float=True))
    index = int(params.get("plan", 0))
    ws, name = conv.build(index)
    g = conv.geo
    unit = _vector(recipe.unit, g.k, np.float32)
    half = np.dtype(np.float16)

    def weights(wt):  # (K, C, R, S) -> KRSC fp16 holding the same values
        return _pad_channels(cp.ascontiguousarray(wt.transpose(0, 2, 3, 1).astype(half)), pad).transpose(0, 3, 1, 2)

    def run(args):
        wq = dev.derive(args[1], ("q-krsc-fp16", pad), weights, site.const[1])
        bias = _bias(site, args, dev, g.k, np.float32 if recipe.fp8 else np.int32)
        xq = _pad_channels(recipe.quantize(args[0].transpose(0, 2, 3, 1), "float16"), pad)  # NHWC
        y = cp.empty((g.n, g.p, g.q, g.k), np.float32)
        conv.execute(index, {"X": xq.transpose(0, 3, 1, 2), "W": wq, "Y": y}, dev.workspace(ws),
                     dev.cudnn_handle())
        residual = args[3].transpose(0, 2, 3, 1) if site.present(3) else None
        return [recipe.epilogue(y, unit, bias, residual).transpose(0, 3, 1, 2)]

    return Kernel(run, workspace=ws, label=f"{'fp8' if fp8 else 'int8'}-conv:{name}")


def _conv_candidates(site, level):
    return [{"plan": i} for i in range(min(2, max(1, level)))]


def _conv_check(site, fp8: bool) -> str | None:
    recipe = Recipe(site)
    if recipe.fp8 != fp8:
        return "float8 layers run fp8-conv" if recipe.fp8 else "integer layers run int8-conv"
    return cudnn_missing() or recipe.why_not(site)


Int8Conv = _quant_tactic("int8-conv", False, 20, "QLinearConvFused: centred integers as fp16 through cuDNN (float32 "
                        "accumulate and output).", _conv_check, _conv_candidates, _conv_as_fp16)
Fp8Conv = _quant_tactic("fp8-conv", True, 20, "float8 QLinearConvFused: E4M3 values as fp16 through cuDNN (float32 "
                       "accumulate and output).", _conv_check, _conv_candidates, _conv_as_fp16)


# ------------------------------------------------------------------------------- cuDNN int8 / FP8 graphs
class CudnnQuantConv(CudnnPlans):
    """conv(q(X), Wq) x per-channel scale + bias (+ residual) (+ ReLU) as one cuDNN graph.

    int8: int8 operands, int32 accumulation; fp8: E4M3 operands (uint8 bits), float32 accumulation.
    held: fp16 operands already dequantized, float32 accumulation: no scale multiply ("S" absent).
    split: an int8 output is written as fp16 values instead (the caller rounds them to the grid).
    Input channels padded by `pad` zeros (int8 engines want multiples of 4, FP8 of 16).
    """

    def __init__(self, site, dev, pad: int, held: bool, split: bool = False):
        cudnn = library("cudnn")
        recipe, g = Recipe(site), geometry(site)
        dt = cudnn.data_type
        io, acc = (dt.HALF, dt.FLOAT) if held else (dt.FP8_E4M3, dt.FLOAT) if recipe.fp8 else (dt.INT8, dt.INT32)
        self.geo = g
        c = g.c + pad
        graph = cudnn.pygraph(io_data_type=io, intermediate_data_type=dt.FLOAT, compute_data_type=acc,
                              handle=dev.cudnn_handle())
        out_stride = [g.p * g.q * g.k, 1, g.q * g.k, g.k]
        vec = dict(dim=[1, g.k, 1, 1], stride=[g.k, 1, g.k, g.k], data_type=dt.FLOAT)
        scalar = dict(dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=dt.FLOAT)
        t = {"X": graph.tensor(name="X", dim=[g.n, c, g.h, g.w], stride=[g.h * g.w * c, 1, g.w * c, c], data_type=io),
             "W": graph.tensor(name="W", dim=[g.k, c, g.r, g.s], stride=[g.r * g.s * c, 1, g.s * c, c], data_type=io)}
        y = graph.conv_fprop(image=t["X"], weight=t["W"], pre_padding=list(g.pad_begin), post_padding=list(g.pad_end),
                             stride=list(g.stride), dilation=list(g.dilation), compute_data_type=acc)
        if not held:
            t["S"] = graph.tensor(name="S", **vec)
            y = graph.mul(a=y, b=t["S"], compute_data_type=dt.FLOAT)
        if site.present(2) and held:  # as the fp16 conv graph has it: an fp16 bias
            t["B"] = graph.tensor(name="B", **dict(vec, data_type=io))
            y = graph.bias(input=y, bias=t["B"])
        elif site.present(2):
            t["B"] = graph.tensor(name="B", **vec)
            y = graph.add(a=y, b=t["B"], compute_data_type=dt.FLOAT)
        if site.present(3):
            r_type = {"int8": dt.INT8, "float16": dt.HALF, "float32": dt.FLOAT}[site.dtype(3)]
            t["R"] = graph.tensor(name="R", dim=[g.n, g.k, g.p, g.q], stride=out_stride, data_type=r_type)
            r = t["R"]
            if site.dtype(3) == "int8":
                t["RS"] = graph.tensor(name="RS", **scalar)
                r = graph.mul(a=r, b=t["RS"], compute_data_type=dt.FLOAT)
            y = graph.add(a=y, b=r, compute_data_type=dt.FLOAT)
        if recipe.act:
            y = graph.relu(input=y, compute_data_type=dt.FLOAT)
        if recipe.y_int and not split:  # the next layer's integers: v / y_scale, rounded and saturated
            t["YS"] = graph.tensor(name="YS", **scalar)
            y = graph.mul(a=y, b=t["YS"], compute_data_type=dt.FLOAT)
        out = {"int8": dt.INT8, "float16": dt.HALF, "float32": dt.FLOAT}["float16" if split else recipe.out]
        y.set_output(True).set_data_type(out).set_dim([g.n, g.k, g.p, g.q]).set_stride(out_stride)
        t["Y"] = y
        graph.validate()
        graph.build_operation_graph()
        self.finish(graph, t, [cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK if held else cudnn.heur_mode.B])


def _graph_check(site, fp8: bool, held: bool = False) -> str | None:
    """Why the cuDNN int8 / FP8 graph tactic (or its fp16-held form) does not take the site, or None."""
    recipe = Recipe(site)
    if recipe.fp8 != fp8:
        return "float8 layers run fp8 tactics" if recipe.fp8 else "integer layers run int8 tactics"
    why = cudnn_missing() or recipe.why_not(site)
    if why:
        return why
    g = geometry(site)
    if not fp8 and not held and recipe.x_dtype != "int8":
        return "needs int8 X"
    if recipe.y_int and (recipe.y_int != "int8" or recipe.grid[1] != 0):
        return "an integer output must be int8 with zero point 0 (cuDNN's conversion saturates to int8)"
    if (recipe.grid and not recipe.y_int) or recipe.fp8_grid is not None:
        return "an output grid on a float output is left to the exact conv tactics"
    if recipe.act and recipe.act[0] != "Relu":
        return f"activation {recipe.act[0]} is not fused (ReLU only)"
    if site.present(3) and site.dtype(3) in INTS and (site.dtype(3) != "int8" or recipe.r_grid[1] != 0):
        return "an integer residual must be int8 with zero point 0"
    if g.group != 1 or g.k % (16 if fp8 else 4):
        return f"needs group 1 and output channels in multiples of {16 if fp8 else 4}, got group {g.group}, K={g.k}"
    return None


def _graph_kernel(site, params, dev, fp8: bool, held: bool = False) -> Kernel:
    recipe, g0 = Recipe(site), geometry(site)
    pad = 0 if held else -g0.c % (16 if fp8 else 4)  # fp16 engines take any channel count
    split = bool(params.get("split")) and held and recipe.y_int is not None
    conv = dev.cached(("cudnn-quant-graph", held, split, site.key()),
                      lambda: CudnnQuantConv(site, dev, pad, held, split))
    index = int(params.get("plan", 0))
    ws, name = conv.build(index)
    g = conv.geo
    scale = None if held else _vector(recipe.unit, g.k, np.float32)
    consts = {"RS": recipe.r_grid[0], "YS": 1.0 / recipe.grid[0] if recipe.y_int else None}
    scalars = {k: cp.asarray([v], np.float32) for k, v in consts.items() if v is not None and k in conv.tensors}
    kind = "held" if held else "e4m3" if fp8 else "int8"
    w_scale = cp.asarray(np.asarray(site.attrs["w_scale"], np.float32).reshape(-1, 1, 1, 1))

    def weights(w):  # (K, C, R, S) -> KRSC (int8, E4M3 bits, or dequantized fp16), channels padded
        if held:
            w = (w.astype(np.float32) * w_scale).astype(np.float16)
        w = cp.ascontiguousarray(w.transpose(0, 2, 3, 1))
        return _pad_channels(_encode_values(w) if fp8 and not held else w, pad).transpose(0, 3, 1, 2)

    def bias_values(b):  # int8: int32 in units of x_scale * w_scale[c]; fp8: already float
        b = _host(b).astype(np.float64).reshape(-1)
        return cp.asarray(b if fp8 else b * recipe.unit.astype(np.float64), np.float16 if held else np.float32)

    def run(args):
        x = args[0]
        if held or fp8 or pad or x.dtype != np.int8 or not x.transpose(0, 2, 3, 1).flags.c_contiguous:
            x = _pad_channels(recipe.quantize(x.transpose(0, 2, 3, 1), kind), pad).transpose(0, 3, 1, 2)
        bufs = {"X": x, "W": dev.derive(args[1], (f"{kind}-krsc", pad), weights, site.const[1])}
        if scale is not None:
            bufs["S"] = scale
        if site.present(2):
            bufs["B"] = dev.derive(args[2], (f"{kind}-fbias",), bias_values, site.const[2])
        if site.present(3):
            r = args[3]
            if not r.transpose(0, 2, 3, 1).flags.c_contiguous:
                r = cp.ascontiguousarray(r.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
            bufs["R"] = r
        bufs.update(scalars)
        y = cp.empty((g.n, g.p, g.q, g.k), "float16" if split else recipe.out)
        bufs["Y"] = y
        conv.execute(index, bufs, dev.workspace(ws), dev.cudnn_handle())
        return [(recipe.requantize(y) if split else y).transpose(0, 3, 1, 2)]

    kind_label = ("held+rq" if split else "held") if held else "cudnn"
    return Kernel(run, workspace=ws, label=f"{'fp8' if fp8 else 'int8'}-{kind_label}:{name}")


def _graph_candidates(site, level):
    return [{"plan": i} for i in range(PLANS_PER_LEVEL.get(level, 3))]


def _held_candidates(site, level):
    """The graph's plans; for an int8 output also each plan writing fp16 then rounded to the grid by a
    kernel of its own: the graph then has the fp16 conv's form, whose engines may be far faster (an
    RGB stem: 0.87 ms + the rounding pass against 3.3 ms with the grid scale inside the graph, H100).
    Below the exhaustive level only for input channels int8 engines take badly (not 16k)."""
    if geometry(site).c % 16 == 0 and level < EXHAUSTIVE_LEVEL:
        return []  # int8 engines take 16k input channels well (ResNet-50: it lost on all 52 such layers)
    plans = _graph_candidates(site, level)
    return plans + ([dict(p, split=True) for p in plans] if Recipe(site).y_int else [])


Int8Cudnn = _quant_tactic("int8-cudnn", False, 15, "QLinearConvFused as one cuDNN int8 graph (int8 NHWC in, "
                        "float or int8 out).", _graph_check, _graph_candidates, _graph_kernel)
Fp8Cudnn = _quant_tactic("fp8-cudnn", True, 15, "float8 QLinearConvFused as one cuDNN FP8 graph (E4M3 NHWC in, "
                        "float out).", _graph_check, _graph_candidates, _graph_kernel)


_held_check = functools.partial(_graph_check, held=True)
_held_kernel = functools.partial(_graph_kernel, held=True)


Int8Held = _quant_tactic("int8-held", False, 16, "QLinearConvFused on its grid values dequantized to fp16, through "
                        "cuDNN's fp16 conv + bias graph (an RGB stem; shapes int8 engines run slowly).",
                        _held_check, _held_candidates, _held_kernel)
Fp8Held = _quant_tactic("fp8-held", True, 16, "float8 QLinearConvFused on its E4M3 values dequantized to fp16, "
                       "through cuDNN's fp16 conv + bias graph.", _held_check, _graph_candidates, _held_kernel)
