"""A validated cuDNN frontend graph whose execution plans are built on demand, one per candidate."""
from __future__ import annotations

from .device import library


def cudnn_missing() -> str | None:
    """Why a cuDNN tactic cannot run here (the frontend is not installed), or None."""
    return "cudnn frontend (nvidia-cudnn-frontend) is not installed" if library("cudnn") is None else None


class CudnnPlans:
    """Subclasses build and validate `self.graph` (with its `self.tensors` by name), then call finish()."""

    def finish(self, graph, tensors: dict, heuristics) -> None:
        graph.create_execution_plans(heuristics)
        graph.check_support()
        self.graph, self.tensors = graph, tensors
        self.built: set = set()

    def plan_count(self) -> int:
        return int(self.graph.get_execution_plan_count())

    def build(self, index: int) -> tuple:
        """(workspace bytes, plan name) after building plan `index`."""
        if index >= self.plan_count():
            raise RuntimeError(f"cuDNN offers {self.plan_count()} plan(s), no plan {index}")
        if index not in self.built:
            self.graph.build_plan_at_index(index)
            self.built.add(index)
        return int(self.graph.get_workspace_size_plan_at_index(index)), str(self.graph.get_plan_name_at_index(index))

    def execute(self, index: int, buffers: dict, workspace, handle) -> None:
        pack = {self.tensors[k]: int(v.data.ptr) for k, v in buffers.items()}
        self.graph.execute_plan_at_index(pack, workspace, index=index, handle=handle)
