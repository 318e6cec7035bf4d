"""Framework baselines: the runners an engine is measured against, sharing the engine's runner interface.

    >>> import workbench as wb
    >>> ort = wb.baselines.OnnxRuntime("model.onnx")        # CUDA provider when installed, else CPU
    >>> ref = wb.baselines.Reference("model.onnx")          # onnx.reference: slow, the ONNX semantics
    >>> pt = wb.baselines.Torch(module, compile=False)     # on the GPU when torch sees one
    >>> wb.baselines.default_baseline(module_or_model)     # PyTorch for a torch module, else onnxruntime
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np

from .errors import ConfigError, UnsupportedError, WorkbenchError
from .runtime.engine import TensorSpec
from .tools.runners import Runner, is_torch_object

__all__ = ["OnnxRuntime", "Torch", "Reference", "default_baseline"]

_ORT_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "bfloat16": "bfloat16",
               "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64", "uint8": "uint8",
               "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "bool": "bool"}


# ---------------------------------------------------------------------------------- ONNX models
def onnx_model(model):
    """A ModelProto from a path, bytes or ModelProto (external data loaded from the model's folder)."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        if not Path(model).is_file():
            raise WorkbenchError(f"{model}: no such file; give the path of an .onnx model")
        return onnx.load(str(model))
    raise WorkbenchError(f"expected an ONNX model (path, bytes or onnx.ModelProto), got {type(model).__name__}")


def _graph_specs(model) -> list:
    import onnx

    weights = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in weights:
            continue
        tt = vi.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).name if tt.elem_type else None
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim) \
            if tt.HasField("shape") else None
        specs.append(TensorSpec(vi.name, dtype, shape))
    return specs


def _node_outputs(model) -> set:
    return {o for node in model.graph.node for o in node.output if o}


def _forget_negative_dims(model) -> None:
    """Make negative declared dims unknown: onnx's C++ shape inference aborts the whole process on them
    (an assertion in its Slice rule, onnx 1.23), and files from elsewhere do declare them."""
    graph = model.graph
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value < 0:
                d.Clear()


def _with_outputs(model, names: list):
    """A copy of `model` whose graph outputs are `names` (typed where shape inference knows them)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    _forget_negative_dims(m)
    try:
        typed = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(m).graph.value_info}
    except Exception:  # noqa: BLE001 - inference is a nicety here; untyped outputs still run
        typed = {}
    typed.update({vi.name: vi for vi in m.graph.output})
    del m.graph.output[:]
    m.graph.output.extend(typed.get(n) or onnx.helper.make_empty_tensor_value_info(n) for n in names)
    return m


class _OnnxRunner(Runner):
    """What the ONNX-model baselines share: specs, output names and which tensors exist."""

    def __init__(self, model):
        self.model = onnx_model(model)
        self._specs = _graph_specs(self.model)
        self._outputs = [o.name for o in self.model.graph.output]

    def input_specs(self) -> list:
        return self._specs

    def output_names(self) -> list:
        return list(self._outputs)

    def memory_info(self) -> dict:
        from onnx import numpy_helper

        weights = sum(numpy_helper.to_array(t).nbytes for t in self.model.graph.initializer)
        return {"weights_bytes": int(weights), "source": "model initializers"}

    def known(self, names) -> list:
        have = _node_outputs(self.model)
        return [n for n in names if n in have]


class OnnxRuntime(_OnnxRunner):
    """onnxruntime on the CUDA execution provider when installed, else the CPU provider.

    >>> OnnxRuntime("model.onnx").infer({"input": x})
    """

    def __init__(self, model, providers=None, session_options=None):
        super().__init__(model)
        self.ort = _import("onnxruntime", "the onnxruntime baseline", "pip install onnxruntime(-gpu)")
        available = self.ort.get_available_providers()
        self.providers = list(providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                                            if p in available])
        self.session_options = session_options
        self.session = self._session(self.model)
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.name = "onnxruntime-" + self.device
        self._probes: dict = {}

    def _session(self, model):
        try:
            return self.ort.InferenceSession(model.SerializeToString(), sess_options=self.session_options,
                                             providers=self.providers)
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
            raise WorkbenchError(f"onnxruntime cannot load the model: {e}") from None

    def input_specs(self) -> list:
        return [TensorSpec(i.name, _ORT_DTYPES.get(i.type[7:-1], None),
                           tuple(d if isinstance(d, int) else (d or "?") for d in i.shape))
                for i in self.session.get_inputs()]

    def _infer_impl(self, feeds: dict) -> dict:
        return dict(zip(self._outputs, self.session.run(self._outputs, feeds)))

    def intermediates(self, feeds: dict, names: list) -> dict:
        names = tuple(self.known(names))
        if names not in self._probes:  # one session per set of probed tensors, built once
            self._probes[names] = self._session(_with_outputs(self.model, list(names)))
        return dict(zip(names, self._probes[names].run(list(names), self.check_feeds(feeds))))


class Reference(_OnnxRunner):
    """onnx.reference.ReferenceEvaluator: slow, but the ONNX specification's own semantics."""

    name = "onnx-reference"
    traced_memory = True

    def __init__(self, model):
        super().__init__(model)
        from onnx.reference import ReferenceEvaluator

        try:
            self.session = ReferenceEvaluator(self.model)
        except Exception as e:  # noqa: BLE001
            raise WorkbenchError(f"onnx.reference cannot load the model: {e}") from None

    def _infer_impl(self, feeds: dict) -> dict:
        return dict(zip(self._outputs, self.session.run(self._outputs, feeds)))

    def intermediates(self, feeds: dict, names: list) -> dict:
        names = self.known(names)
        return dict(zip(names, self.session.run(names, self.check_feeds(feeds))))


# ---------------------------------------------------------------------------------- PyTorch
class Torch(Runner):
    """A torch.nn.Module or torch.export ExportedProgram, on the GPU when torch sees one.

    input_names default to forward()'s parameters (or the exported program's inputs); output_names
    name what it returns (a tensor, a tuple or a dict) so compare() can match the engine's outputs.
    example_inputs ({name: array}) tell bench() the input shapes when the module cannot.

    >>> Torch(model, compile=False, input_names=["input"], output_names=["logits"])
    """

    def __init__(self, module, compile: bool = False, device: str = "auto", input_names=None,
                 output_names=None, example_inputs=None):
        self.torch = torch = _import("torch", "the PyTorch baseline", "pip install torch")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"Torch baseline: device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        self.device, self.gpu_lib = device, ("torch" if device == "cuda" else None)
        self.module, names, specs = _torch_callable(torch, module, device)
        self.fn = self.module
        self.input_names = list(input_names or names)
        self._specs = specs if specs and not input_names else _specs_from(self.input_names, example_inputs)
        self._opt = {s.name: (1, *s.shape[1:]) for s in self._specs if s.shape}
        self._output_names = list(output_names or [])
        if compile:
            self.fn = torch.compile(self.fn)
        self.name = f"torch-{device}" + ("-compiled" if compile else "")

    def input_specs(self) -> list:
        return self._specs

    def opt_shapes(self) -> dict:
        return dict(self._opt)

    def output_names(self) -> list:
        return list(self._output_names)

    def to_device(self, feeds: dict) -> dict:
        torch = self.torch
        return {k: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v)).to(self.device)
                for k, v in feeds.items()}

    def _infer_impl(self, feeds: dict) -> dict:
        with self.torch.inference_mode():
            out = self.fn(*[feeds[n] for n in self.input_names])
        return self._named(out)

    def _named(self, out) -> dict:
        if isinstance(out, dict):
            return dict(out)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        names = self._output_names or (["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))])
        if len(names) != len(outs):
            raise WorkbenchError(f"{self.name}: output_names has {len(names)} names but the module returned "
                                 f"{len(outs)} outputs")
        return dict(zip(names, outs))

    def memory_info(self) -> dict:
        weights = sum(t.numel() * t.element_size() for t in self.module.state_dict().values())
        return {"weights_bytes": int(weights), "source": "module parameters and buffers"}


def _torch_callable(torch, module, device: str):
    """(nn.Module on `device`, input names, specs or None) for a Module or an ExportedProgram."""
    if isinstance(module, torch.export.ExportedProgram):
        specs = []
        for node in module.graph.nodes:
            if node.op == "placeholder" and node.name in module.graph_signature.user_inputs:
                val = node.meta.get("val")
                shape = tuple(int(d) if str(d).isdigit() else str(d) for d in val.shape) if val is not None else None
                dtype = str(val.dtype).replace("torch.", "") if val is not None else None
                specs.append(TensorSpec(node.name, dtype, shape))
        return module.module().to(device), [s.name for s in specs], specs
    if not isinstance(module, torch.nn.Module):
        raise WorkbenchError(f"Torch baseline takes a torch.nn.Module or torch.export.ExportedProgram, "
                             f"not {type(module).__name__}")
    module = module.to(device).eval()
    params = [p.name for p in inspect.signature(module.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return module, params, None


def _specs_from(names: list, example_inputs) -> list:
    if example_inputs is None:
        return [TensorSpec(n, None, None) for n in names]
    if not isinstance(example_inputs, dict):
        example_inputs = dict(zip(names, example_inputs if isinstance(example_inputs, (list, tuple))
                                  else [example_inputs]))
    specs = []
    for n in names:
        x = np.asarray(example_inputs[n]) if n in example_inputs else None
        specs.append(TensorSpec(n, x.dtype.name if x is not None else None,
                                ("batch", *x.shape[1:]) if x is not None and x.ndim else None))
    return specs


# ---------------------------------------------------------------------------------- choosing
def _import(module: str, what: str, fix: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UnsupportedError(f"{what} needs {module}, which is not installed: {fix}") from None


def default_baseline(model_or_module) -> Runner:
    """The framework baseline: PyTorch for a torch module or exported program, else onnxruntime
    (onnx.reference when onnxruntime is not installed).

    >>> default_baseline("model.onnx")   # OnnxRuntime
    """
    if is_torch_object(model_or_module):
        return Torch(model_or_module)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return Reference(model_or_module)
    return OnnxRuntime(model_or_module)
