"""Run one layer on NumPy: the CPU backend's unit of work, also used for constant folding."""
from __future__ import annotations

import numpy as np

from ...dtypes import LOW_FLOATS, np_dtype
from ...errors import ExecutionError, UnsupportedError, WorkbenchError
from ...ir.ops import attributes, spec_for
from ...plugins import lookup
from .registry import kernel_for


def resolve(layer):
    """(kernel, full attributes) for a layer: a built-in kernel or a registered plugin's CPU code."""
    spec = spec_for(layer.op, layer.domain)
    if spec is not None:
        fn = kernel_for(layer.op, layer.domain)
        if fn is None:
            raise UnsupportedError(f"layer {layer.name!r}: op {layer.op} has no CPU kernel")
        return fn, attributes(spec, layer.attrs, f"layer {layer.name!r}")
    plugin = lookup(layer.op)
    if plugin is None:
        raise UnsupportedError(f"layer {layer.name!r}: plugin {layer.op!r} is not registered in this "
                               f"process; register it with @workbench.plugin({layer.op!r}, ...) before loading")
    return plugin.cpu, {**plugin.defaults, **layer.attrs}


def upcast(x):
    """float16/bfloat16 arrays become float32: how the executor hands reduced-precision storage of a
    float32 tensor to a kernel (kernels given a model's own fp16/bf16 tensors handle them themselves)."""
    if isinstance(x, np.ndarray) and x.dtype.name in LOW_FLOATS:
        return x.astype(np.float32)
    return x


def named_outputs(layer) -> int:
    """How many outputs a kernel must return for `layer`: up to its last named one."""
    return max((i + 1 for i, n in enumerate(layer.outputs) if n), default=0)


def call(fn, attrs: dict, layer, args: list, named: int | None = None) -> list:
    """Call a kernel; any non-workbench exception becomes an ExecutionError naming the layer.

    named: named_outputs(layer), when the caller has it at hand (the executor computes it once).
    """
    try:
        out = fn(*args, **attrs)
    except WorkbenchError as e:
        raise type(e)(f"layer {layer.name!r} ({layer.op}): {e}") from None
    except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError, MemoryError,
            np.linalg.LinAlgError, AttributeError) as e:
        raise ExecutionError(f"layer {layer.name!r} ({layer.op}) failed on inputs of shapes "
                             f"{[getattr(a, 'shape', None) for a in args]}: {type(e).__name__}: {e}; check the "
                             f"values this layer is given (inputs, shapes, attributes) against the ONNX "
                             f"definition of {layer.op}") from None
    if type(out) is np.ndarray:  # the common case: one array, nothing to convert
        outs = [out]
    else:
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if named is None:
        named = named_outputs(layer)
    if len(outs) < named:  # e.g. a Loop whose body returns fewer values than the node has outputs
        raise ExecutionError(f"layer {layer.name!r} ({layer.op}) produced {len(outs)} outputs but the model names "
                             f"{named}: {layer.outputs}; the model is malformed: check the op's outputs (and "
                             f"those of its subgraphs)")
    if len(outs) == 1 and type(outs[0]) is np.ndarray:
        return outs
    return [np.asarray(o) if o is not None else None for o in outs]


def evaluate_layer(layer, arrays: list, dtypes: list | None = None) -> list:
    """Outputs of `layer` on `arrays`; cast to `dtypes` (the inferred output dtypes) when given."""
    fn, attrs = resolve(layer)
    outs = call(fn, attrs, layer, list(arrays))
    if dtypes is not None:
        outs = [o.astype(np_dtype(d), copy=False) if o is not None and d and o.dtype != np_dtype(d) else o
                for o, d in zip(outs, dtypes)]
    return outs
