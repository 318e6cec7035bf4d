"""Engine: the built, immutable result of a build; saved as a plan file, run through contexts.

    >>> engine = workbench.build(net, cfg)
    >>> engine.save("model.plan")
    >>> out = engine.create_execution_context().execute({"input": x})
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import WorkbenchError


@dataclass(frozen=True)
class TensorSpec:
    """An input or output of an engine: name, dtype, shape with symbolic dims where dynamic."""

    name: str
    dtype: str
    shape: tuple

    def __repr__(self) -> str:
        return f"TensorSpec({self.name!r}, {self.dtype}, {self.shape})"


@dataclass
class Engine:
    network: object                 # the optimized Network the engine runs (layers, tensors, weights)
    backend: str                    # "cpu" or "cuda"
    precisions: dict                # layer name -> precision
    tactics: dict                   # layer name -> tactic name
    profiles: list                  # [{input: (min, opt, max)}]
    memory: object                  # MemoryPlan at the largest profile shapes
    config: dict = field(default_factory=dict)
    device: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)   # build log: passes, timings, exclusions, build time
    tactic_params: dict = field(default_factory=dict)  # layer name -> tactic recipe (data, never code)
    storage_dtypes: dict = field(default_factory=dict)  # tensor -> dtype it is stored in
    _runner_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def inputs(self) -> list:
        return [self._spec(n) for n in self.network.inputs]

    @property
    def outputs(self) -> list:
        return [self._spec(n) for n in self.network.outputs]

    def _spec(self, name: str) -> TensorSpec:
        t = self.network.tensors[name]
        return TensorSpec(name, t.dtype, tuple(t.shape) if t.shape is not None else None)

    @property
    def layers(self) -> list:
        return self.network.layers

    def layer_table(self) -> list:
        """One dict per layer: name, type, fused source layers, precision, tactic, input/output shapes."""
        net = self.network
        shape = lambda n: net.tensors[n].shape if n in net.tensors else None  # noqa: E731
        return [{"name": l.name, "type": l.op, "fused": list(l.fused) or [l.name],
                 "precision": self.precisions.get(l.name, "fp32"), "tactic": self.tactics.get(l.name, ""),
                 "inputs": [(n, shape(n)) for n in l.inputs if n and n not in net.weights],
                 "outputs": [(n, shape(n)) for n in l.outputs if n]}
                for l in net.layers]

    def create_execution_context(self):
        """A new context (its own activation memory and shapes); contexts of one engine share weights."""
        from .context import ExecutionContext

        return ExecutionContext(self)

    def save(self, path) -> None:
        """Write the plan file (atomically: an interrupted save leaves any earlier file intact)."""
        from .plan import save_plan

        save_plan(self, path)

    def serialize(self) -> bytes:
        from .plan import serialize

        return serialize(self)

    def inspect(self):
        """Per-layer analysis (see workbench.tools.inspect)."""
        try:
            from ..tools.inspect import inspect_engine
        except ImportError as e:
            raise WorkbenchError(f"engine inspection is unavailable: {e}") from None
        return inspect_engine(self)

    def __repr__(self) -> str:
        return (f"Engine({self.network.name!r}, backend={self.backend}, layers={len(self.network.layers)}, "
                f"inputs={self.inputs}, outputs={self.outputs})")
