"""2-D convolution tactics: cuDNN frontend graphs with the epilogue fused, and tap-by-tap GEMMs.

Activations between convolutions live channels-last (NHWC) on the device: a conv output is a
(N, C, H, W) *view* of an (N, H, W, C) buffer, so the next conv reads it without a copy and every
other op still sees ONNX's logical NCHW shape. A conv whose input is not channels-last (a graph
input, say) pays one transposing copy, fused with the cast to the layer's precision.

FusedConv (domain "workbench", made by the fusion passes) is Conv + optional bias + optional
residual (4th input) + activation:  Y = act(conv(X, W) + B + residual).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cudnn_plans import CudnnPlans, cudnn_missing
from .device import cp, library
from .pointwise import act_node, activation_supported, run as run_pointwise
from .site import round_bf16
from .tactics import PLANS_PER_LEVEL, Kernel, ops, tactic

CONV_OPS = ops("Conv") | ops("FusedConv", domain="workbench")
CUDNN_ACTS = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Gelu", "Clip"}


@dataclass(frozen=True)
class Geometry:
    n: int
    c: int
    h: int
    w: int
    k: int
    cg: int
    r: int
    s: int
    group: int
    stride: tuple
    dilation: tuple
    pad_begin: tuple
    pad_end: tuple
    p: int
    q: int


def _pads_for(size, k, stride, dil, auto_pad, pads, axis):
    """(begin, end, out) for one spatial axis, with ONNX auto_pad rules."""
    eff = (k - 1) * dil + 1
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = -(-size // stride)
        total = max(0, (out - 1) * stride + eff - size)
        small, big = total // 2, total - total // 2
        begin, end = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        begin = end = 0
    else:
        begin, end = (pads[axis], pads[axis + 2]) if pads else (0, 0)
    out = (size + begin + end - eff) // stride + 1
    return int(begin), int(end), int(out)


def geometry(site) -> Geometry:
    """The convolution's sizes, with explicit pads, from the site's shapes and attributes."""
    n, c, h, w = site.shape(0)
    k, cg, r, s = site.shape(1)
    a = site.attrs
    stride = tuple(a.get("strides") or (1, 1))
    dil = tuple(a.get("dilations") or (1, 1))
    auto = a.get("auto_pad") or "NOTSET"
    auto = auto.decode() if isinstance(auto, bytes) else auto
    pads = a.get("pads")
    pt, pb, p = _pads_for(h, r, stride[0], dil[0], auto, pads, 0)
    pl, pr, q = _pads_for(w, s, stride[1], dil[1], auto, pads, 1)
    return Geometry(n, c, h, w, k, cg, r, s, int(a.get("group") or 1), stride, dil, (pt, pl), (pb, pr), p, q)


@dataclass(frozen=True)
class Epilogue:
    bias: int | None       # input index of the bias, or None
    residual: int | None   # input index of the residual, or None
    act: str | None
    alpha: float | None
    beta: float | None

    @property
    def empty(self) -> bool:
        return self.bias is None and self.residual is None and not self.act


def epilogue(site) -> Epilogue:
    fused = site.op == "FusedConv"
    a = site.attrs
    act = a.get("activation") if fused else None
    act = act.decode() if isinstance(act, bytes) else act
    return Epilogue(2 if site.present(2) else None, 3 if fused and site.present(3) else None, act or None,
                    a.get("activation_alpha") if fused else None, a.get("activation_beta") if fused else None)


def _check_conv(site) -> str | None:
    if not site.present(0) or not site.present(1) or len(site.shape(0) or ()) != 4 or len(site.shape(1)) != 4:
        return "not a 2-D convolution"
    if not site.all_float() or site.dtype(0) == "float64" or site.dtype(1) == "float64":
        return "float16/float32 only"
    if any(i and i[2] != "device" for i in site.inputs):
        return "an input lives on the host"
    g = geometry(site)
    if g.c != g.cg * g.group or g.k % g.group or g.p <= 0 or g.q <= 0:
        return "shapes do not fit the group count"
    if not activation_supported(epilogue(site).act):
        return f"activation {epilogue(site).act!r} not supported"
    return None


def compute_dtype(site):
    return np.dtype(np.float16) if site.precision == "fp16" else np.dtype(np.float32)


def channels_last(x, dtype, precision: str):
    """x (N, C, H, W) as a view of an NHWC buffer of `dtype`, rounded to `precision` (copies only if needed)."""
    if precision == "bf16" and x.dtype == np.float32:
        x = round_bf16(x)
    if x.dtype == dtype and x.transpose(0, 2, 3, 1).flags.c_contiguous:
        return x
    buf = cp.empty((x.shape[0], x.shape[2], x.shape[3], x.shape[1]), dtype)
    buf[...] = x.transpose(0, 2, 3, 1)
    return buf.transpose(0, 3, 1, 2)


def _vector(b, dtype, precision):
    b = b.reshape(-1)
    if precision == "bf16" and b.dtype == np.float32:
        b = round_bf16(b)
    return cp.ascontiguousarray(b, dtype=dtype)


def _epilogue_recipe(epi: Epilogue, dtypes: list, out: str) -> dict:
    node = ["in", 0]
    for i in range(1, len(dtypes)):
        node = ["bin", "Add", node, ["in", i]]
    # operands were rounded to the layer's precision already; only the output is rounded (to its dtype)
    return {"expr": act_node(epi.act, epi.alpha, epi.beta, node), "inputs": dtypes, "output": out, "round": None}


def _finish(y_nhwc, args, site, epi: Epilogue, dev, apply_epilogue: bool):
    """The NHWC result with (if asked) bias, residual and activation applied, in the storage dtype."""
    dtype = compute_dtype(site)
    extras = []
    if apply_epilogue and epi.bias is not None:
        extras.append(dev.derive(args[epi.bias], ("vec", dtype.str, site.precision),
                                 lambda b: _vector(b, dtype, site.precision), site.const[epi.bias]))
    if apply_epilogue and epi.residual is not None:
        extras.append(channels_last(args[epi.residual], dtype, site.precision).transpose(0, 2, 3, 1))
    act = epi.act if apply_epilogue else None
    out = site.outputs[0]
    if not extras and not act and np.dtype(y_nhwc.dtype).name == out:
        return y_nhwc
    recipe = _epilogue_recipe(Epilogue(None, None, act, epi.alpha, epi.beta),
                              [np.dtype(a.dtype).name for a in [y_nhwc, *extras]], out)
    return run_pointwise(recipe, [y_nhwc, *extras])


def _weights(args, site, dev):
    dtype = compute_dtype(site)
    return dev.derive(args[1], ("krsc", dtype.str, site.precision),
                      lambda w: channels_last(w, dtype, site.precision), site.const[1])


# ------------------------------------------------------------------------------- cuDNN frontend
class CudnnConv(CudnnPlans):
    """One cuDNN frontend graph for a site: conv (+ bias + residual + activation when fused).

    out_float: the output in float32 whatever the input type (the int8 tactic's exact accumulator).
    """

    def __init__(self, site, dev, fused: bool, out_float: bool = False):
        self.cudnn = cudnn = library("cudnn")
        if cudnn is None:
            raise RuntimeError("cudnn frontend is not installed")
        g = geometry(site)
        self.geo, self.epi, self.fused = g, epilogue(site), fused
        io = cudnn.data_type.HALF if site.precision == "fp16" else cudnn.data_type.FLOAT
        f32 = cudnn.data_type.FLOAT
        kwargs = dict(io_data_type=io, intermediate_data_type=f32, compute_data_type=f32, handle=dev.cudnn_handle())
        try:
            graph = cudnn.pygraph(**kwargs, is_cuda_graph_replay_expected=True)
        except TypeError:
            graph = cudnn.pygraph(**kwargs)
        self.graph = graph
        t = {"X": graph.tensor(name="X", dim=[g.n, g.c, g.h, g.w], stride=[g.h * g.w * g.c, 1, g.w * g.c, g.c],
                               data_type=io),
             "W": graph.tensor(name="W", dim=[g.k, g.cg, g.r, g.s], stride=[g.r * g.s * g.cg, 1, g.s * g.cg, g.cg],
                               data_type=io)}
        y = graph.conv_fprop(image=t["X"], weight=t["W"], pre_padding=list(g.pad_begin), post_padding=list(g.pad_end),
                             stride=list(g.stride), dilation=list(g.dilation), compute_data_type=f32, name="conv")
        out_stride = [g.p * g.q * g.k, 1, g.q * g.k, g.k]
        if fused and self.epi.bias is not None:
            t["B"] = graph.tensor(name="B", dim=[1, g.k, 1, 1], stride=[g.k, 1, g.k, g.k], data_type=io)
            y = graph.bias(input=y, bias=t["B"], name="bias")
        if fused and self.epi.residual is not None:
            t["R"] = graph.tensor(name="R", dim=[g.n, g.k, g.p, g.q], stride=out_stride, data_type=io)
            y = graph.add(a=y, b=t["R"], name="residual")
        if fused and self.epi.act:
            y = self._activation(graph, y)
        y.set_output(True).set_data_type(f32 if out_float else io).set_dim([g.n, g.k, g.p, g.q]).set_stride(out_stride)
        t["Y"] = y
        graph.validate()
        graph.build_operation_graph()
        if site.precision in ("fp32", "bf16"):  # fp32 must not silently run as TF32
            graph.deselect_numeric_notes([cudnn.numerical_note.TENSOR_CORE, cudnn.numerical_note.DOWN_CONVERT_INPUTS])
        self.finish(graph, t, [cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])

    def _activation(self, graph, y):
        e = self.epi
        if e.act == "Relu":
            return graph.relu(input=y, name="act")
        if e.act == "LeakyRelu":
            return graph.relu(input=y, negative_slope=float(e.alpha if e.alpha is not None else 0.01), name="act")
        if e.act == "Clip":
            lo = -3.4e38 if e.alpha is None else float(e.alpha)
            hi = 3.4e38 if e.beta is None else float(e.beta)
            return graph.relu(input=y, lower_clip=lo, upper_clip=hi, name="act")
        builder = {"Sigmoid": graph.sigmoid, "Tanh": graph.tanh, "Gelu": graph.gelu}.get(e.act)
        if builder is None:
            raise RuntimeError(f"activation {e.act} not fused by cuDNN")
        return builder(input=y, name="act")


@tactic("cudnn", ops=CONV_OPS, rank=10)
class Cudnn:
    """cuDNN frontend graph; each execution plan the heuristics rank is one candidate ("plan": index).

    fused=False runs the bare convolution and applies the epilogue with one generated kernel, for
    graphs whose fused form no engine supports.
    """

    @staticmethod
    def check(site):
        return cudnn_missing() or _check_conv(site)

    @staticmethod
    def candidates(site, level):
        n = PLANS_PER_LEVEL.get(level, 3)
        out = [{"plan": i, "fused": True} for i in range(n)]
        if not epilogue(site).empty:  # timed below level 4 only when no fused plan runs
            out.append({"plan": 0, "fused": False, "fallback": True})
        return out

    @staticmethod
    def prepare(site, params, dev):
        fused = bool(params.get("fused", True))
        conv = dev.cached(("cudnn-conv", site.key(), fused), lambda: CudnnConv(site, dev, fused))
        index = int(params.get("plan", 0))
        ws, name = conv.build(index)
        if dev.workspace_limit is not None and ws > dev.workspace_limit:
            raise RuntimeError(f"needs {ws} workspace bytes, over the limit of {dev.workspace_limit}")
        g, epi, dtype = conv.geo, conv.epi, compute_dtype(site)

        def run(args):
            x = channels_last(args[0], dtype, site.precision)
            bufs = {"X": x, "W": _weights(args, site, dev)}
            if fused and epi.bias is not None:
                bufs["B"] = dev.derive(args[epi.bias], ("vec", dtype.str, site.precision),
                                       lambda b: _vector(b, dtype, site.precision), site.const[epi.bias])
            if fused and epi.residual is not None:
                bufs["R"] = channels_last(args[epi.residual], dtype, site.precision)
            y = cp.empty((g.n, g.p, g.q, g.k), dtype)
            bufs["Y"] = y
            conv.execute(index, bufs, dev.workspace(ws), dev.cudnn_handle())
            return [_finish(y, args, site, epi, dev, not fused).transpose(0, 3, 1, 2)]

        return Kernel(run, workspace=ws, label=f"cudnn:{name}")


# ------------------------------------------------------------------------------- tap GEMMs (CuPy)
@tactic("taps", ops=CONV_OPS, rank=60)
class Taps:
    """One cuBLAS GEMM per kernel tap on NHWC data (grouped: batched GEMMs; depthwise: multiply-adds)."""

    @staticmethod
    def check(site):
        return _check_conv(site)

    @staticmethod
    def candidates(site, level):
        return [{"fallback": True}]  # below level 4 timed only when no cuDNN plan runs

    @staticmethod
    def prepare(site, params, dev):
        g, epi, dtype = geometry(site), epilogue(site), compute_dtype(site)
        kg = g.k // g.group

        def taps_weights(w):  # (K, Cg, R, S) -> (R, S, G, Cg, Kg)
            w = w.astype(dtype) if w.dtype != dtype else w
            if site.precision == "bf16":
                w = round_bf16(w)
            return cp.ascontiguousarray(w.reshape(g.group, kg, g.cg, g.r, g.s).transpose(3, 4, 0, 2, 1), dtype=dtype)

        def run(args):
            x = channels_last(args[0], dtype, site.precision).transpose(0, 2, 3, 1)
            pt, pl = g.pad_begin
            xp = cp.zeros((g.n, g.h + pt + g.pad_end[0], g.w + pl + g.pad_end[1], g.c), dtype)
            xp[:, pt:pt + g.h, pl:pl + g.w, :] = x
            w = dev.derive(args[1], ("taps", dtype.str, site.precision), taps_weights, site.const[1])
            acc = cp.zeros((g.n, g.p, g.q, g.k), np.float32)
            (sh, sw), (dh, dw) = g.stride, g.dilation
            for r in range(g.r):
                for s in range(g.s):
                    tap = xp[:, r * dh: r * dh + sh * (g.p - 1) + 1: sh, s * dw: s * dw + sw * (g.q - 1) + 1: sw, :]
                    acc += _tap_product(tap, w[r, s], g, kg)
            return [_finish(acc, args, site, epi, dev, True).transpose(0, 3, 1, 2)]

        return Kernel(run, label="taps")


def _tap_product(tap, w_rs, g: Geometry, kg: int):
    """tap (N, P, Q, C) times this tap's weights (G, Cg, Kg) -> (N, P, Q, K)."""
    if g.group == 1:
        return cp.matmul(tap.reshape(-1, g.c), w_rs[0]).reshape(g.n, g.p, g.q, g.k)
    if g.cg == 1 and kg == 1:
        return tap * w_rs[:, 0, 0]
    t = tap.reshape(-1, g.group, g.cg).transpose(1, 0, 2)
    return cp.matmul(t, w_rs).transpose(1, 0, 2).reshape(g.n, g.p, g.q, g.k)
