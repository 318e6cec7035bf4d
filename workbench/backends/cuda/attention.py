"""FusedAttention (domain "workbench", made by passes/fuse_attention.py): multi-head attention in one step.

Q, K and V arrive as the projections' (B, S, H*D) outputs. Seen as (B, H, S, D) with strides
(S*H*D, D, H*D, 1) ("BSHD" memory) they are the per-head matrices without any transpose, and the
output written with the same strides is already the (B, S, H*D) tensor the next projection reads.
Packed (passes/pack_qkv.py), they are column ranges of one (B, S, W) QKV tensor: the same view with
row stride W, starting at each range's first column.

    sdpa      cuDNN frontend SDPA (flash attention), fp16; each plan x mask layout is a candidate
    attn-bmm  two strided-batched cuBLASLt products (nvmath) around a generated scale+mask+softmax;
              the head split and merge are copies here; fp32 / tf32 / fp16
"""
from __future__ import annotations

import numpy as np

from ...ir.opdefs.fused import attention_columns
from .cudnn_plans import CudnnPlans, cudnn_missing
from .device import cp, library
from .gemm import _operand, _Plan, compute_dtype
from .pointwise import run as run_pointwise
from .rows import kernel_for as row_kernel, threads_for
from .site import store
from .tactics import PLANS_PER_LEVEL, Kernel, ops, tactic

ATTENTION_OPS = ops("FusedAttention", domain="workbench")
MAX_HEAD_DIM = 128


class Geometry:
    """Sizes of one attention site: batch, heads, query/key lengths, head dims, scale, mask shape."""

    def __init__(self, site):
        a = site.attrs
        self.h = int(a["num_heads"])
        self.b, self.sq = site.shape(0)[:2]
        self.skv = site.shape(1)[1]
        self.rows = [site.shape(i)[2] for i in range(3)]   # each input's row length (its stride along S)
        self.columns = attention_columns(a.get("packed"), self.rows)
        self.d, self.dv = self.columns[0][1] // self.h, self.columns[2][1] // self.h
        scale = a.get("scale")
        self.mult = 1.0 if scale is None else (float(scale) if a.get("scale_op", "Mul") == "Mul" else 1.0 / float(scale))
        mask = site.shape(3) if site.present(3) else None
        self.mask = None if mask is None else (1,) * (4 - len(mask)) + tuple(mask)

    @property
    def scores(self) -> tuple:
        return self.b, self.h, self.sq, self.skv

    def bshd(self, s: int, d: int, row: int | None = None) -> tuple:
        """(dims, strides) of a (B, S, H*d) tensor (rows of `row` elements, H*d when None) as (B, H, S, d)."""
        row = self.h * d if row is None else row
        return [self.b, self.h, s, d], [s * row, d, row, 1]

    def part(self, x, i: int):
        """Q, K or V (i = 0, 1, 2) of input x: x itself, or its column range when packed (a view)."""
        first, width = self.columns[i]
        return x if width == x.shape[-1] else x[..., first:first + width]


def _check(site) -> str | None:
    if not all(site.present(i) for i in range(3)):
        return "needs Q, K and V"
    if any(i and i[2] != "device" for i in site.inputs):
        return "an input lives on the host"
    if not site.all_float() or any(site.dtype(i) == "float64" for i in range(len(site.inputs)) if site.present(i)):
        return "float16/float32 only"
    shapes = [site.shape(i) for i in range(3)]
    if any(len(s) != 3 for s in shapes) or len({s[0] for s in shapes}) != 1 or shapes[1][1] != shapes[2][1]:
        return "Q, K, V must be (B, S, H*D) with one batch and K, V of one length"
    g = Geometry(site)
    if g.mask is not None:
        if len(site.shape(3)) > 4 or any(m not in (1, full) for m, full in zip(g.mask, g.scores)):
            return f"mask {site.shape(3)} does not broadcast to the scores {g.scores}"
    return None


def _mask4(mask, g: Geometry, dtype):
    """The mask as a rank-4 array of `dtype` (a view when it already is one)."""
    m = mask.reshape(g.mask)
    return m if m.dtype == dtype else m.astype(dtype)


# ------------------------------------------------------------------------------- cuDNN SDPA
def bias_dims(g: Geometry) -> list:
    """The SDPA bias's dims: (1|B, 1|H, Sq, Skv), the broadcast forms every engine documents."""
    return [g.b if g.mask[0] != 1 else 1, g.h if g.mask[1] != 1 else 1, g.sq, g.skv]


def bias_layout(g: Geometry, mode: str) -> tuple:
    """(dims, strides) of the bias cuDNN reads: the expanded copy ("full") or the mask itself with
    stride 0 along its broadcast dims ("stride0")."""
    dims, m = bias_dims(g), g.mask
    if mode == "full":
        return dims, [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1]
    strides = [m[1] * m[2] * m[3], m[2] * m[3], m[3], 1]  # of the contiguous rank-4 mask
    return dims, [0 if m[i] == 1 and dims[i] != 1 else strides[i] for i in range(4)]


class CudnnSdpa(CudnnPlans):
    """One cuDNN frontend SDPA graph on BSHD-strided Q/K/V/O, with the mask as its additive bias.

    bias "stride0": the mask's broadcast dims are read with stride 0 (no copy); "full": the mask is
    expanded to (1|B, 1|H, Sq, Skv) first, the form every SDPA engine documents.
    """

    def __init__(self, site, dev, bias_mode: str | None):
        self.cudnn = cudnn = library("cudnn")
        g = self.geo = Geometry(site)
        self.bias_mode = bias_mode
        io, f32 = cudnn.data_type.HALF, cudnn.data_type.FLOAT
        kwargs = dict(io_data_type=io, intermediate_data_type=f32, compute_data_type=f32, handle=dev.cudnn_handle())
        try:
            graph = cudnn.pygraph(**kwargs, is_cuda_graph_replay_expected=True)
        except TypeError:
            graph = cudnn.pygraph(**kwargs)
        t = {}
        for i, (name, s, d) in enumerate((("Q", g.sq, g.d), ("K", g.skv, g.d), ("V", g.skv, g.dv))):
            dim, stride = g.bshd(s, d, g.rows[i])
            t[name] = graph.tensor(name=name, dim=dim, stride=stride, data_type=io)
        op = dict(name="sdpa", q=t["Q"], k=t["K"], v=t["V"], attn_scale=g.mult)
        if g.mask is not None:
            dim, stride = bias_layout(g, bias_mode)
            t["Bias"] = graph.tensor(name="Bias", dim=dim, stride=stride, data_type=io)
            op["bias"] = t["Bias"]
        try:
            out = graph.sdpa(**op, generate_stats=False)
        except TypeError:  # frontends before generate_stats
            out = graph.sdpa(**op, is_inference=True)
        o = out[0] if isinstance(out, (tuple, list)) else out  # (O, Stats); Stats is None for inference
        dim, stride = g.bshd(g.sq, g.dv)
        o.set_output(True).set_dim(dim).set_stride(stride).set_data_type(io)
        t["O"] = o
        graph.validate()
        graph.build_operation_graph()
        self.finish(graph, t, [cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])

    def bias(self, mask, dtype):
        m = _mask4(mask, self.geo, dtype)
        if self.bias_mode == "full":
            return cp.ascontiguousarray(cp.broadcast_to(m, tuple(bias_dims(self.geo))))
        return cp.ascontiguousarray(m)


@tactic("sdpa", ops=ATTENTION_OPS, precisions=("fp16",), rank=10)
class Sdpa:
    """cuDNN's fused attention, reading Q/K/V straight from the projections (no head transposes)."""

    @staticmethod
    def check(site):
        why = cudnn_missing() or _check(site)
        if why:
            return why
        g = Geometry(site)
        if g.d % 8 or g.dv % 8 or g.d > MAX_HEAD_DIM or g.dv > MAX_HEAD_DIM:
            return f"head dims {g.d}/{g.dv} must be multiples of 8 up to {MAX_HEAD_DIM}"
        return None

    @staticmethod
    def candidates(site, level):
        modes = ["stride0", "full"] if site.present(3) else [None]
        plans = range(min(PLANS_PER_LEVEL.get(level, 3), 2))
        return [{"plan": p, "bias": m} for p in plans for m in modes]

    @staticmethod
    def prepare(site, params, dev):
        mode = params.get("bias")
        sdpa = dev.cached(("cudnn-sdpa", site.key(), mode), lambda: CudnnSdpa(site, dev, mode))
        index = int(params.get("plan", 0))
        ws, name = sdpa.build(index)
        if dev.workspace_limit is not None and ws > dev.workspace_limit:
            raise RuntimeError(f"needs {ws} workspace bytes, over the limit of {dev.workspace_limit}")
        g, half = sdpa.geo, np.dtype(np.float16)
        const = site.const

        def run(args):
            bufs = {t: g.part(cp.ascontiguousarray(_operand(x, half, site.precision)), i)
                    for i, (t, x) in enumerate(zip("QKV", args))}
            if g.mask is not None:
                bufs["Bias"] = dev.derive(args[3], ("sdpa-bias", mode), lambda m: sdpa.bias(m, half), const[3])
            y = cp.empty((g.b, g.sq, g.h * g.dv), half)
            bufs["O"] = y
            sdpa.execute(index, bufs, dev.workspace(ws), dev.cudnn_handle())
            return [store(y, site.outputs[0])]

        return Kernel(run, workspace=ws, label=f"sdpa:{name}{'+' + mode if mode else ''}")


# ------------------------------------------------------------------------------- batched GEMMs
@tactic("attn-bmm", ops=ATTENTION_OPS, precisions=("fp32", "tf32", "fp16"), rank=30)
class BatchedAttention:
    """Q Kᵀ and P V as strided-batched cuBLASLt products; scale + mask in one generated kernel, then
    the row softmax kernel. Capturable (nvmath), so it stays inside CUDA graphs."""

    @staticmethod
    def check(site):
        if library("nvmath") is None:
            return "nvmath-python is not installed"
        return _check(site)

    @staticmethod
    def prepare(site, params, dev):
        g, dtype = Geometry(site), compute_dtype(site)
        scores_plan, values_plan = _Plan(site, {}, dev, None), _Plan(site, {}, dev, None)
        names = [dtype.name, dtype.name] if g.mask is not None else [dtype.name]
        node = ["bin", "Mul", ["in", 0], ["const", g.mult]] if g.mult != 1.0 else ["in", 0]
        if g.mask is not None:
            node = ["bin", "Add", node, ["in", 1]]
        logits = {"expr": node, "inputs": names, "output": dtype.name, "round": None}
        softmax = row_kernel({"op": "softmax", "in": dtype.name, "out": dtype.name, "round": None})
        rows, threads = g.b * g.h * g.sq, threads_for(g.skv)

        def heads(x, i, s, d):  # (B, S, H*d) -> (B*H, S, d), contiguous: one copy, packed or not
            x = g.part(_operand(x, dtype, site.precision), i).reshape(g.b, s, g.h, d).transpose(0, 2, 1, 3)
            return cp.ascontiguousarray(x).reshape(g.b * g.h, s, d)

        def run(args):
            q, k, v = heads(args[0], 0, g.sq, g.d), heads(args[1], 1, g.skv, g.d), heads(args[2], 2, g.skv, g.dv)
            s = scores_plan(q, k.transpose(0, 2, 1)).reshape(g.scores)
            extras = [_mask4(args[3], g, dtype)] if g.mask is not None else []
            t = cp.ascontiguousarray(run_pointwise(logits, [s, *extras])) if (extras or g.mult != 1.0) else s
            p = cp.empty((g.b * g.h, g.sq, g.skv), dtype)
            softmax((rows,), (threads,), (cp.ascontiguousarray(t), p, np.int64(rows), np.int32(g.skv)))
            o = values_plan(p, v).reshape(g.b, g.h, g.sq, g.dv).transpose(0, 2, 1, 3)
            return [store(cp.ascontiguousarray(o).reshape(g.b, g.sq, g.h * g.dv), site.outputs[0])]

        return Kernel(run, label="attn-bmm")
