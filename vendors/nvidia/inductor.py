"""The NVIDIA inductor adapter: torch.compile on CUDA (options from the nvidia vendor YAML).

The generic adapter (benchmarks.toolkits.Inductor) compiles, pads and warms up. On CUDA, modes that
use CUDA graphs (reduce-overhead, max-autotune) must be told where one inference step ends; otherwise
cudagraph trees treat each prompt as continuing the previous step and keep its outputs alive.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch

from benchmarks.interfaces import ModelFn, ToolkitReport
from benchmarks.toolkits import Inductor


def cudagraph_ids(device_index: int) -> int | None:
    """How many CUDA graphs inductor's cudagraph trees have recorded on this device: each recording takes a graph
    id. A shape's first call runs as a warm-up node (no graph; its ids come from a separate, negative counter),
    its second call records, later ones replay, so a length seen once is never recorded (H200: 42 recordings
    for 285 prompts of 241 lengths in the reference scenario). None where torch has no such tree manager (a
    private API: it may move)."""
    try:
        from torch._inductor import cudagraph_trees

        manager = cudagraph_trees.get_manager(device_index, create_if_none_exists=False)
        if manager is None:
            return 0
        return int(repr(manager.graph_counter).removeprefix("count(").removesuffix(")"))
    except Exception:  # noqa: BLE001 - a counter we read for the verdict must never fail the run
        return None


class _MarkStep(torch.nn.Module):
    def __init__(self, fn: ModelFn):
        super().__init__()
        self.fn = fn

    def forward(self, input_ids: torch.Tensor, last_pos: torch.Tensor) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()
        return self.fn(input_ids, last_pos)


class CudaInductor(Inductor):
    def wrap_compiled(self, compiled: ModelFn) -> ModelFn:
        return _MarkStep(compiled)

    def prepare(self, model_fn: ModelFn, warmup_calls: Sequence[Sequence[int]]) -> ModelFn:
        # The attention backend is chosen when the graph is traced and stays baked into it, so the compiled
        # model can use cuDNN attention (its per-length plans are built during the warm-up over the padded
        # shapes) while the eager passes keep the vendor-wide setting.
        wanted = getattr(self.options, "compiled_sdpa_cudnn", None)
        before = torch.backends.cuda.cudnn_sdp_enabled()
        if wanted is not None:
            torch.backends.cuda.enable_cudnn_sdp(wanted)
        try:
            fn = super().prepare(model_fn, warmup_calls)
        finally:
            torch.backends.cuda.enable_cudnn_sdp(before)
        self.mark_graph_baseline()
        return fn

    def mark_graph_baseline(self) -> None:
        """From now on, CUDA graph recordings count (after the warm-up; the reference scenario: its whole pass)."""
        if self.uses_cudagraphs():
            self._graph_ids_after_warmup = cudagraph_ids(self.vendor.device().index or 0)

    def report(self) -> ToolkitReport:
        """Also counts CUDA graphs recorded after the warm-up (a new shape in the timed pass records one)."""
        report = super().report()
        before = getattr(self, "_graph_ids_after_warmup", None)
        now = cudagraph_ids(self.vendor.device().index or 0) if before is not None else None
        if now is None:
            return report
        return dataclasses.replace(report, graph_recordings=now - before)
