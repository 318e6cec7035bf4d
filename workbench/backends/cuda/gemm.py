"""Matrix-product tactics: cuBLAS through CuPy with a generated epilogue, and cuBLASLt epilogues via nvmath.

Gemm:        Y = act(alpha * A' B' + beta * C)      (A' = A or Aᵀ, B' = B or Bᵀ)
MatMul:      Y = A @ B                              (NumPy semantics, batched and broadcast)
FusedGemm / FusedMatMul (domain "workbench"): the same plus `activation` (+ alpha/beta), and for
FusedMatMul an optional third input added as a bias.
"""
from __future__ import annotations

import numpy as np

from .device import cp, library
from .pointwise import act_node, activation_supported, run as run_pointwise
from .site import lower, store
from .tactics import PLANS_PER_LEVEL, Kernel, ops, tactic

GEMM_OPS = ops("Gemm", "MatMul") | ops("FusedGemm", "FusedMatMul", domain="workbench")
_FUSED_MATMUL_ATTRS = {"activation", "activation_alpha", "activation_beta"}


def _act(site):
    if site.op not in ("FusedGemm", "FusedMatMul"):
        return None, None, None
    a = site.attrs
    act = a.get("activation")
    act = act.decode() if isinstance(act, bytes) else act
    return act or None, a.get("activation_alpha"), a.get("activation_beta")


def _gemm_attrs(site) -> tuple:
    """(transA, transB, alpha, beta) for Gemm-like ops; (0, 0, 1, 1) for MatMul-like ones."""
    if site.op in ("Gemm", "FusedGemm"):
        a = site.attrs
        return (int(a.get("transA") or 0), int(a.get("transB") or 0),
                float(a.get("alpha", 1.0) if a.get("alpha") is not None else 1.0),
                float(a.get("beta", 1.0) if a.get("beta") is not None else 1.0))
    return 0, 0, 1.0, 1.0


def _bias_index(site):
    return 2 if site.present(2) else None


def compute_dtype(site):
    return np.dtype(np.float16) if site.precision == "fp16" else np.dtype(np.float32)


def _operand(x, dtype, precision):
    x = lower(x, precision) if precision in ("fp16", "bf16") else x
    return x if x.dtype == dtype else x.astype(dtype)


def _check_gemm(site) -> str | None:
    if not site.present(0) or not site.present(1):
        return "needs two operands"
    if not site.all_float() or "float64" in (site.dtype(0), site.dtype(1)):
        return "float16/float32 only"
    if any(i and i[2] != "device" for i in site.inputs):
        return "an input lives on the host"
    if site.op == "FusedMatMul" and any(site.attrs.get(k) not in (None, 0, 0.0, 1.0, "")
                                        for k in site.attrs if k not in _FUSED_MATMUL_ATTRS and k != "alpha"):
        return "FusedMatMul attributes beyond the activation are not handled"
    if site.op == "FusedMatMul" and site.attrs.get("alpha") not in (None, 1.0, 1):
        return "FusedMatMul alpha is not handled"
    if not activation_supported(_act(site)[0]):
        return f"activation {_act(site)[0]!r} not supported"
    if site.op in ("Gemm", "FusedGemm") and (len(site.shape(0)) != 2 or len(site.shape(1)) != 2):
        return "Gemm operands must be matrices"
    return None


def _epilogue(site, acc_dtype: str, bias_dtype: str | None):
    """The recipe applying alpha, beta·C (or bias) and the activation to the product, or None."""
    _, _, alpha, beta = _gemm_attrs(site)
    act, a_alpha, a_beta = _act(site)
    node, dtypes = ["in", 0], [acc_dtype]
    if alpha != 1.0:
        node = ["bin", "Mul", node, ["const", alpha]]
    if bias_dtype is not None:
        c = ["in", 1]
        if beta != 1.0:
            c = ["bin", "Mul", c, ["const", beta]]
        node = ["bin", "Add", node, c]
        dtypes.append(bias_dtype)
    node = act_node(act, a_alpha, a_beta, node)
    if node == ["in", 0] and acc_dtype == site.outputs[0]:
        return None
    return {"expr": node, "inputs": dtypes, "output": site.outputs[0], "round": None}


def _matmul(a, b):
    """a @ b with a 2-D weight folded into one GEMM over all leading dims of a."""
    if b.ndim == 2 and a.ndim > 2 and a.flags.c_contiguous:
        return cp.matmul(a.reshape(-1, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[-1])
    return cp.matmul(a, b)


@tactic("cublas", ops=GEMM_OPS, rank=30)
class Cublas:
    """cupy.matmul (cuBLAS) on operands in the layer's precision, then one generated epilogue kernel.

    CuPy refuses cuBLAS calls inside a stream capture, so this tactic splits the CUDA graph where
    it runs. Below level 4 it is tried only when nvmath (capturable) cannot run the layer, or first,
    as the reference of a layer too large for a CPU reference; then it is timed like any candidate
    (eagerly) and wins where it is faster even with its launch overhead (BERT's ff1 at batch 64).
    """

    @staticmethod
    def check(site):
        return _check_gemm(site)

    @staticmethod
    def candidates(site, level):
        return [{"fallback": True}]

    @staticmethod
    def prepare(site, params, dev):
        dtype = compute_dtype(site)
        ta, tb, _, _ = _gemm_attrs(site)
        bias = _bias_index(site)
        recipe = _epilogue(site, dtype.name, dtype.name if bias is not None else None)

        def operand(i, x):
            return dev.derive(x, ("gemm-op", dtype.str, site.precision),
                              lambda v: _operand(v, dtype, site.precision), site.const[i])

        def run(args):
            a, b = operand(0, args[0]), operand(1, args[1])
            acc = _matmul(a.T if ta else a, b.T if tb else b)
            extras = [operand(bias, args[bias])] if bias is not None else []
            return [run_pointwise(recipe, [acc, *extras]) if recipe else store(acc, site.outputs[0])]

        return Kernel(run, label="cublas")


# ------------------------------------------------------------------------------- nvmath (cuBLASLt)
_EPILOGS = {(False, None): None, (True, None): "BIAS", (False, "Relu"): "RELU", (True, "Relu"): "RELU_BIAS",
            (False, "GeluTanh"): "GELU", (True, "GeluTanh"): "GELU_BIAS"}


def _nvmath_plan(site) -> tuple:
    """(cuBLASLt epilog name or None, activation left for a generated kernel or None)."""
    act, alpha, beta = _act(site)
    act = {"FastGelu": "GeluTanh"}.get(act, act)
    bias = _bias_index(site) is not None
    if (bias, act) in _EPILOGS:
        return _EPILOGS[(bias, act)], None
    return _EPILOGS[(bias, None)], act


def _batched(site) -> bool:
    """A (..., M, K) @ B (..., K, N) with the same batch dims: one strided-batched product."""
    a, b = site.shape(0), site.shape(1)
    return len(a) == len(b) >= 3 and a[:-2] == b[:-2]


@tactic("nvmath", ops=GEMM_OPS, precisions=("fp32", "tf32", "fp16"), rank=20)
class Nvmath:
    """cuBLASLt through nvmath-python, capturable into CUDA graphs (CuPy's own cuBLAS calls are not).

    With a 2-D weight, Y (M, N) = X (M, K) W (K, N) + bias is computed as Yᵀ = Wᵀ Xᵀ so that bias,
    ReLU and GELU(tanh) run as cuBLASLt epilogues; other activations follow in one generated kernel.
    Products of two activations with equal batch dims run as one strided-batched matmul.
    """

    @staticmethod
    def check(site):
        why = _check_gemm(site)
        if why:
            return why
        if library("nvmath") is None:
            return "nvmath-python is not installed"
        ta, tb, alpha, beta = _gemm_attrs(site)
        if ta or alpha != 1.0 or beta != 1.0:
            return "transA / alpha / beta are not handled"
        if _batched(site):
            return None
        if len(site.shape(1)) != 2 or len(site.shape(0)) < 2:
            return "needs X (..., K) with a 2-D W, or equal batch dims"
        n = site.shape(1)[0 if tb else 1]
        bias = _bias_index(site)
        if bias is not None and int(np.prod(site.shape(bias))) != n:
            return "the bias is not a vector of the output width"
        return None

    @staticmethod
    def candidates(site, level):
        algos = [{"algo": i} for i in range(min(PLANS_PER_LEVEL.get(level, 3), 4))]
        if _batched(site) or _nvmath_plan(site)[1] is None:
            return algos
        # an activation cuBLASLt has no epilogue for (erf GELU, ...): also the bare product followed
        # by one generated kernel doing bias + activation, instead of the BIAS epilogue + a kernel
        return algos + [dict(a, epilogue="kernel") for a in algos[:2]]

    @staticmethod
    def prepare(site, params, dev):
        return (_prepare_batched if _batched(site) else _prepare_weight)(site, params, dev)


def _options(site):
    nvmath = library("nvmath")
    if site.precision == "tf32":
        return {"compute_type": nvmath.linalg.ComputeType.COMPUTE_32F_FAST_TF32}
    return None


class _Plan:
    """An nvmath Matmul made on first use (operands bound), re-pointed at new operands afterwards."""

    def __init__(self, site, params, dev, epilog: str | None):
        self.site, self.params, self.dev, self.epilog, self.mm = site, params, dev, epilog, None

    def __call__(self, a, b, bias=None):
        adv = library("nvmath").linalg.advanced
        inputs = {"bias": bias} if bias is not None else None
        stream = self.dev.stream
        if self.mm is None:
            mm = adv.Matmul(a, b, options=_options(self.site), stream=stream)
            epilog = getattr(adv.MatmulEpilog, self.epilog) if self.epilog else None
            algos = mm.plan(epilog=epilog, epilog_inputs=inputs, stream=stream)
            index = int(self.params.get("algo", 0))
            if index >= len(algos):
                raise RuntimeError(f"cuBLASLt offers {len(algos)} algorithm(s), no algorithm {index}")
            self.mm, self.algo = mm, algos[index]
        else:
            self.mm.reset_operands(a=a, b=b, epilog_inputs=inputs, stream=stream)
        return self.mm.execute(algorithm=self.algo, stream=stream)


def _post(site, act, dtype):
    """The generated kernel applying what cuBLASLt did not (activation, storage cast), or None."""
    a = _act(site)
    node = act_node(act, a[1], a[2], ["in", 0])
    if node == ["in", 0] and dtype.name == site.outputs[0]:
        return None
    return {"expr": node, "inputs": [dtype.name], "output": site.outputs[0], "round": None}


def _prepare_weight(site, params, dev):
    dtype = compute_dtype(site)
    _, tb, _, _ = _gemm_attrs(site)
    xs = site.shape(0)
    k, m = xs[-1], int(np.prod(xs[:-1]))
    epilog, act = _nvmath_plan(site)
    if params.get("epilogue") == "kernel":  # bias and activation in the generated kernel
        return _prepare_weight_kernel_epilogue(site, params, dev, dtype, tb, k, m)
    bias = _bias_index(site)
    post = _post(site, act, dtype)
    plan = _Plan(site, params, dev, epilog)
    weight_t, vector = _weight_nk(site, dtype, tb), _vector(site, dtype)

    def run(args):
        wt = dev.derive(args[1], ("nvmath-w", dtype.str, site.precision, tb), weight_t, site.const[1])
        xt = cp.ascontiguousarray(_operand(args[0], dtype, site.precision)).reshape(m, k).T
        bvec = dev.derive(args[bias], ("nvmath-b", dtype.str, site.precision), vector, site.const[bias]) \
            if bias is not None else None
        y = plan(wt, xt, bvec).T.reshape(*xs[:-1], wt.shape[0])
        return [run_pointwise(post, [y]) if post else y]

    return Kernel(run, label=f"nvmath:{epilog or 'none'}{'+' + act if act else ''}")


def _weight_nk(site, dtype, tb):
    def weight_t(w):  # W' transposed: (N, K) row-major
        w = _operand(w, dtype, site.precision)
        return cp.ascontiguousarray(w if tb else w.T)

    return weight_t


def _vector(site, dtype):
    def vector(b):
        return cp.ascontiguousarray(_operand(b, dtype, site.precision).reshape(-1))

    return vector


def _prepare_weight_kernel_epilogue(site, params, dev, dtype, tb, k, m):
    """Yᵀ = Wᵀ Xᵀ with no cuBLASLt epilogue, then bias + activation in one generated kernel."""
    bias = _bias_index(site)
    recipe = _epilogue(site, dtype.name, dtype.name if bias is not None else None)
    plan = _Plan(site, params, dev, None)
    weight_t, vector = _weight_nk(site, dtype, tb), _vector(site, dtype)
    xs = site.shape(0)

    def run(args):
        wt = dev.derive(args[1], ("nvmath-w", dtype.str, site.precision, tb), weight_t, site.const[1])
        xt = cp.ascontiguousarray(_operand(args[0], dtype, site.precision)).reshape(m, k).T
        y = plan(wt, xt).T.reshape(*xs[:-1], wt.shape[0])
        extras = [dev.derive(args[bias], ("nvmath-b", dtype.str, site.precision), vector, site.const[bias])] \
            if bias is not None else []
        return [run_pointwise(recipe, [y, *extras]) if recipe else y]

    return Kernel(run, label=f"nvmath:none+kernel({_act(site)[0]})")


def _prepare_batched(site, params, dev):
    dtype = compute_dtype(site)
    a_shape, b_shape = site.shape(0), site.shape(1)
    m, k, n = a_shape[-2], a_shape[-1], b_shape[-1]
    bias = _bias_index(site)
    act = _act(site)[0]
    recipe = _epilogue(site, dtype.name, dtype.name if bias is not None else None)
    plan = _Plan(site, params, dev, None)

    def run(args):
        a = cp.ascontiguousarray(_operand(args[0], dtype, site.precision)).reshape(-1, m, k)
        b = cp.ascontiguousarray(_operand(args[1], dtype, site.precision)).reshape(-1, k, n)
        y = plan(a, b).reshape(*a_shape[:-2], m, n)
        extras = [_operand(args[bias], dtype, site.precision)] if bias is not None else []
        return [run_pointwise(recipe, [y, *extras]) if recipe else y]

    return Kernel(run, label=f"nvmath:batched{'+' + act if act else ''}")
