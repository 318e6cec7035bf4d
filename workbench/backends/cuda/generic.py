"""Tactics for every op: the CPU kernel run on CuPy arrays, and the host round trip.

`generic` calls the NumPy kernel with CuPy arrays: NumPy's __array_function__ / __array_ufunc__
protocols hand most np.* calls to CuPy, so the kernel runs on the device unchanged. Whether it
really does (and gives the CPU's answer) is checked at build time on the layer's shapes.
`host` copies the inputs to the host, runs the CPU kernel and copies the outputs back: slow, but
nothing is ever unsupported. Both follow the CPU backend's precision emulation exactly.
"""
from __future__ import annotations

import numpy as np

from ..cpu.evaluate import resolve
from .device import is_device, to_device, to_host
from .site import lower, round_tf32, store
from .tactics import ALL_PRECISIONS, Kernel, tactic

SMALL_HOST_OUTPUT = 1024  # integer results up to this size stay on the host (shape arithmetic)


def cpu_kernel(site):
    """(NumPy kernel, full attributes) for the site's op: built-in kernel or plugin CPU code."""
    from ...ir.network import Layer

    fn, _ = resolve(Layer(site.name or site.op, site.op, [], [], {}, site.domain))
    return fn, site.attrs


def prepare_args(args: list, site, to=None) -> list:
    """Arguments as the CPU backend hands them to kernels: rounded to the layer's precision, then fp32."""
    out = []
    for a in args:
        if a is not None and to is not None:
            a = to(a)
        if a is not None and site.lowp:
            a = lower(a, site.precision)
        if a is not None and a.dtype == np.float16:
            a = a.astype(np.float32)
        if a is not None and site.tf32:
            a = round_tf32(a)
        out.append(a)
    return out


def finish(result, site, placement) -> list:
    """Kernel results as a list in the site's storage dtypes, placed by `placement(array)`."""
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    done = []
    for o, dtype in zip(outs, site.outputs):
        if o is None:
            done.append(None)
            continue
        o = o if is_device(o) else np.asarray(o)
        done.append(placement(store(o, dtype) if dtype else o))
    return done


def _as_is(x):
    return x


def _home(x):
    """Host results go back to the device unless they are small integer (shape-like) tensors."""
    if is_device(x) or (x.dtype.kind in "iub" and x.size <= SMALL_HOST_OUTPUT):
        return x
    return to_device(x)


@tactic("generic", ops=None, precisions=ALL_PRECISIONS, rank=90)
class Generic:
    """The CPU kernel on CuPy arrays ("upload": host inputs are moved to the device first)."""

    @staticmethod
    def candidates(site, level):
        variants = [{}]
        if any(site.on_host(i) for i in range(len(site.inputs))) and \
                any(i and i[2] == "device" for i in site.inputs):
            variants.append({"upload": True})
        return variants

    @staticmethod
    def prepare(site, params, dev):
        fn, attrs = cpu_kernel(site)
        upload = to_device if params.get("upload") else None

        def run(args):
            return finish(fn(*prepare_args(args, site, upload), **attrs), site, _as_is)

        return Kernel(run, graph_safe=params.get("graph_safe", True), label="generic")


@tactic("host", ops=None, precisions=ALL_PRECISIONS, rank=100)
class Host:
    """Copy to the host, run the CPU kernel, copy back: the tactic that always works."""

    @staticmethod
    def prepare(site, params, dev):
        fn, attrs = cpu_kernel(site)

        def run(args):
            host = prepare_args(args, site, to_host)
            return finish(fn(*host, **attrs), site, _home)

        return Kernel(run, graph_safe=False, label="host")


def reference(site, args: list) -> list:
    """The CPU backend's answer for these arguments, on the host (what every candidate is checked against)."""
    fn, attrs = cpu_kernel(site)
    outs = fn(*prepare_args(args, site, to_host), **attrs)
    return finish(outs, site, np.asarray)


def cost(site) -> float:
    """A rough count of the work of a layer (elements touched, or 2·MACs for matrix ops)."""
    elems = sum(int(np.prod(i[0])) for i in site.inputs if i)
    if site.op in ("Conv", "FusedConv", "QLinearConvFused") and site.present(1):
        w = site.shape(1)
        return 2.0 * elems * (np.prod(w) / max(w[1], 1))
    if site.op in ("MatMul", "Gemm", "FusedGemm", "FusedMatMul", "QGemm") and site.present(1):
        a, b = site.shape(0), site.shape(1)
        if a and b and len(a) >= 1 and len(b) >= 1:
            return 2.0 * float(np.prod(a)) * (b[0] if site.op == "QGemm" else b[-1])  # QGemm's W is (N, K)
    if site.op == "FusedAttention" and site.present(1):
        (b, sq, e), skv = site.shape(0), site.shape(1)[1]
        return 4.0 * b * sq * skv * (site.attrs.get("packed") or [e])[0]
    return float(elems)
