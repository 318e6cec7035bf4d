"""Fused elementwise kernels generated from recipes: CUDA C compiled by NVRTC through CuPy.

A recipe is data: an expression tree over the kernel's inputs, their dtypes, the output dtype and
the rounding the layer's precision asks for. `source(recipe)` turns it into CUDA C with workbench's
own generator; CuPy compiles it once per GPU architecture and keeps the binary in its on-disk cache
(keyed by the source, hence by the recipe, and by the architecture), so a rebuild or a plan load
compiles nothing twice and a plan never carries code.

Expression nodes (JSON lists):
    ["in", i]                          input i, converted to the compute type
    ["const", value]
    ["act", name, alpha, beta, child]  an activation (ACTIVATIONS below)
    ["bin", name, left, right]         Add Sub Mul Div Pow Max Min PRelu
    ["clip", child, lo, hi]            lo/hi are nodes or null

    >>> recipe = {"expr": ["act", "Relu", None, None, ["bin", "Add", ["in", 0], ["in", 1]]],
    ...           "inputs": ["float16", "float16"], "output": "float16", "round": None}
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from .device import cp
from .tactics import Kernel, ops, tactic

# name -> (C template over v, A (alpha), B (beta); default alpha; default beta)
ACTIVATIONS = {
    "Identity": ("{v}", None, None),
    "Relu": ("({v} < ({T})0 ? ({T})0 : {v})", None, None),
    "LeakyRelu": ("({v} < ({T})0 ? {v} * {A} : {v})", 0.01, None),
    "Sigmoid": ("(({T})1 / (({T})1 + wb_exp(-{v})))", None, None),
    "Tanh": ("wb_tanh({v})", None, None),
    "Gelu": ("(({T})0.5 * {v} * (({T})1 + wb_erf({v} * ({T})0.70710678118654752)))", None, None),
    "GeluTanh": ("(({T})0.5 * {v} * (({T})1 + wb_tanh(({T})0.79788456080286536 * "
                 "({v} + ({T})0.044715 * {v} * {v} * {v}))))", None, None),
    "Clip": ("wb_clip({v}, {A}, {B})", -math.inf, math.inf),
    "HardSigmoid": ("wb_clip({A} * {v} + {B}, ({T})0, ({T})1)", 0.2, 0.5),
    "HardSwish": ("({v} * wb_clip({v} / ({T})6 + ({T})0.5, ({T})0, ({T})1))", None, None),
    "Elu": ("({v} < ({T})0 ? {A} * (wb_exp({v}) - ({T})1) : {v})", 1.0, None),
    "Selu": ("({v} <= ({T})0 ? {B} * ({A} * wb_exp({v}) - {A}) : {B} * {v})", 1.67326319217681884765625,
             1.05070102214813232421875),
    "Celu": ("(wb_max(({T})0, {v}) + wb_min(({T})0, {A} * (wb_exp({v} / {A}) - ({T})1)))", 1.0, None),
    "ThresholdedRelu": ("({v} > {A} ? {v} : ({T})0)", 1.0, None),
    "Softplus": ("({v} > ({T})20 ? {v} : wb_log1p(wb_exp({v})))", None, None),
    "Softsign": ("({v} / (({T})1 + wb_abs({v})))", None, None),
    "Mish": ("({v} * wb_tanh({v} > ({T})20 ? {v} : wb_log1p(wb_exp({v}))))", None, None),
    "Erf": ("wb_erf({v})", None, None),
    "Exp": ("wb_exp({v})", None, None),
    "Log": ("wb_log({v})", None, None),
    "Sqrt": ("wb_sqrt({v})", None, None),
    "Neg": ("(-{v})", None, None),
    "Abs": ("wb_abs({v})", None, None),
    "Reciprocal": ("(({T})1 / {v})", None, None),
}
BINARY = {"Add": "({a} + {b})", "Sub": "({a} - {b})", "Mul": "({a} * {b})", "Div": "({a} / {b})",
          "Pow": "wb_pow({a}, {b})", "Max": "wb_max({a}, {b})", "Min": "wb_min({a}, {b})",
          "PRelu": "({a} < ({T})0 ? {a} * {b} : {a})"}
# attribute names that feed A and B for the standalone ops
ACT_ATTRS = {"LeakyRelu": ("alpha", None), "Elu": ("alpha", None), "Selu": ("alpha", "gamma"),
             "HardSigmoid": ("alpha", "beta"), "ThresholdedRelu": ("alpha", None), "Celu": ("alpha", None)}
C_TYPES = {"float16": "float16", "float32": "float", "float64": "double", "bfloat16": "float"}

_PREAMBLE = r"""
#define WB_UNARY(NAME, F, D) \
  __device__ inline float NAME(float x) { return F(x); } \
  __device__ inline double NAME(double x) { return D(x); }
WB_UNARY(wb_exp, expf, exp)
WB_UNARY(wb_tanh, tanhf, tanh)
WB_UNARY(wb_erf, erff, erf)
WB_UNARY(wb_log, logf, log)
WB_UNARY(wb_log1p, log1pf, log1p)
WB_UNARY(wb_sqrt, sqrtf, sqrt)
WB_UNARY(wb_abs, fabsf, fabs)
__device__ inline float wb_pow(float a, float b) { return powf(a, b); }
__device__ inline double wb_pow(double a, double b) { return pow(a, b); }
template <typename T> __device__ inline T wb_max(T a, T b) { return (a != a || a > b) ? a : b; }
template <typename T> __device__ inline T wb_min(T a, T b) { return (a != a || a < b) ? a : b; }
template <typename T> __device__ inline T wb_clip(T v, T lo, T hi) {
  return v != v ? v : (v < lo ? lo : (v > hi ? hi : v)); }
__device__ inline float wb_half(float x) {  // round to fp16 and back, without cuda_fp16.h
  unsigned short h; float r;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
  asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h));
  return r; }
__device__ inline float wb_bf16(float x) {  // round to bf16 (nearest even), kept in a float
  unsigned int b = __float_as_uint(x);
  if ((b & 0x7f800000u) == 0x7f800000u) return x;
  b = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
  return __uint_as_float(b); }
"""

_KERNELS: dict = {}


def _literal(value, acc: str) -> str:
    v = float(value)
    if math.isinf(v):
        return f"(({acc})({'-' if v < 0 else ''}1.0/0.0))"
    if math.isnan(v):
        return f"(({acc})(0.0/0.0))"
    return f"(({acc}){v!r})"


class _Gen:
    """Emits one statement per activation (a temporary), so the kernel body stays plain C."""

    def __init__(self, recipe: dict, acc: str):
        self.recipe, self.acc, self.lines = recipe, acc, []

    def value(self, node) -> str:
        kind, acc = node[0], self.acc
        if kind == "in":
            i, rnd = node[1], self.recipe.get("round")
            if self.recipe["inputs"][i] == "float32" and rnd in ("fp16", "bf16"):
                return f"(({acc})wb_{'half' if rnd == 'fp16' else 'bf16'}((float)in{i}))"
            return f"(({acc})in{i})"
        if kind == "const":
            return _literal(node[1], acc)
        if kind == "bin":
            return BINARY[node[1]].format(a=self.value(node[2]), b=self.value(node[3]), T=acc)
        if kind == "clip":
            lo = self.value(node[2]) if node[2] is not None else _literal(-math.inf, acc)
            hi = self.value(node[3]) if node[3] is not None else _literal(math.inf, acc)
            return f"wb_clip({self.value(node[1])}, {lo}, {hi})"
        if kind == "act":
            _, name, alpha, beta, child = node
            template, da, db = ACTIVATIONS[name]
            a = _literal(alpha if alpha is not None else (da if da is not None else 0.0), acc)
            b = _literal(beta if beta is not None else (db if db is not None else 0.0), acc)
            inner = self.value(child)
            v = f"t{len(self.lines)}"
            self.lines.append(f"{acc} {v} = {inner};")
            return "(" + template.format(v=v, A=a, B=b, T=acc) + ")"
        raise ValueError(f"unknown expression node {node!r}")


def source(recipe: dict) -> tuple:
    """(in_params, out_params, operation, name, preamble) of the kernel for `recipe`."""
    dtypes = list(recipe["inputs"]) + [recipe["output"]]
    acc = "double" if "float64" in dtypes else "float"
    ins = ", ".join(f"{d} in{i}" for i, d in enumerate(recipe["inputs"]))
    out_dtype = "float32" if recipe["output"] == "bfloat16" else recipe["output"]
    gen = _Gen(recipe, acc)
    value = gen.value(recipe["expr"])
    if recipe["output"] == "bfloat16":
        value = f"wb_bf16((float)({value}))"
    operation = " ".join(gen.lines + [f"out0 = ({C_TYPES[out_dtype]})({value});"])
    digest = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return ins, f"{out_dtype} out0", operation, f"wb_pw_{digest}", _PREAMBLE


def kernel_for(recipe: dict):
    """The compiled ElementwiseKernel for a recipe (made once per process; CuPy caches binaries on disk)."""
    key = json.dumps(recipe, sort_keys=True)
    k = _KERNELS.get(key)
    if k is None:
        ins, outs, operation, name, preamble = source(recipe)
        k = cp.ElementwiseKernel(ins, outs, operation, name, preamble=preamble)
        _KERNELS[key] = k
    return k


def act_node(name: str | None, alpha, beta, child):
    """child wrapped in an activation (the FusedConv / FusedGemm `activation` attribute), or child."""
    if not name:
        return child
    name = {"FastGelu": "GeluTanh", "QuickGelu": "GeluTanh"}.get(name, name)
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} has no generated kernel")
    return ["act", name, alpha, beta, child]


def activation_supported(name) -> bool:
    return not name or name in ACTIVATIONS or name in ("FastGelu",)


def dtype_name(x) -> str:
    return np.dtype(x.dtype).name


def run(recipe: dict, args: list):
    """Launch the recipe's kernel on device arrays (broadcasting like NumPy)."""
    return kernel_for(recipe)(*args)


# ------------------------------------------------------------------------------- the standalone tactic
UNARY_OPS = tuple(n for n in ACTIVATIONS if n not in ("Identity", "GeluTanh"))


def _expr_for(site) -> list:
    op, attrs = site.op, site.attrs
    if op in BINARY:
        if op in ("Max", "Min") and len(site.inputs) == 1:
            return ["in", 0]
        return ["bin", op, ["in", 0], ["in", 1]]
    if op == "Clip":
        lo = ["in", 1] if site.present(1) else None
        hi = ["in", 2] if site.present(2) else None
        return ["clip", ["in", 0], lo, hi]
    if op == "Gelu" and attrs.get("approximate", "none") == "tanh":
        return ["act", "GeluTanh", None, None, ["in", 0]]
    a_name, b_name = ACT_ATTRS.get(op, (None, None))
    alpha = attrs.get(a_name) if a_name else None
    beta = attrs.get(b_name) if b_name else None
    return ["act", op, alpha, beta, ["in", 0]]


@tactic("nvrtc", ops=ops(*UNARY_OPS, *BINARY, "Clip", "Identity"), rank=20)
class Pointwise:
    """One generated kernel for an elementwise op (broadcasting, any strides, precision rounding fused)."""

    @staticmethod
    def check(site):
        n = sum(1 for i in site.inputs if i)
        if site.op in ("Max", "Min") and n > 2:
            return "more than two inputs"
        if site.op in BINARY and site.op not in ("Max", "Min") and n != 2:
            return "needs two inputs"
        if not site.all_float() or not site.outputs or not site.outputs[0]:
            return "non-float tensors"
        if any(i and i[2] != "device" for i in site.inputs):
            return "an input lives on the host"
        if site.op == "Clip" and any(site.present(i) and site.shape(i) not in ((), (1,)) for i in (1, 2)):
            return "Clip bounds are not scalars"
        return None

    @staticmethod
    def prepare(site, params, dev):
        present = [i for i in range(len(site.inputs)) if site.present(i)]
        remap = {old: new for new, old in enumerate(present)}
        expr = _renumber(_expr_for(site), remap)
        recipe = {"expr": expr, "inputs": [site.dtype(i) for i in present], "output": site.outputs[0],
                  "round": site.precision if site.precision in ("fp16", "bf16") else None}
        k = kernel_for(recipe)
        shape_fix = _clip_scalar_fix if site.op == "Clip" else None

        def run_kernel(args):
            xs = [args[i] for i in present]
            if shape_fix:
                xs = shape_fix(xs)
            return [k(*xs)]

        return Kernel(run_kernel, label="nvrtc")


def _renumber(node, remap: dict):
    if not isinstance(node, list):
        return node
    if node and node[0] == "in":
        return ["in", remap[node[1]]]
    return [_renumber(c, remap) for c in node]


def _clip_scalar_fix(xs: list) -> list:
    """Clip bounds of shape (1,) must not broadcast the output to rank 1: use them as 0-d arrays."""
    return [xs[0]] + [x.reshape(()) if x.ndim == 1 else x for x in xs[1:]]
