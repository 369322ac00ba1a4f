"""The NVIDIA inductor adapter: torch.compile on CUDA (options from the nvidia vendor YAML).

The generic adapter (benchmarks.toolkits.Inductor) compiles, pads and warms up. On CUDA, modes that
use CUDA graphs (reduce-overhead, max-autotune) must be told where one inference step ends; otherwise
cudagraph trees treat each prompt as continuing the previous step and keep its outputs alive.
"""
from __future__ import annotations

import torch

from benchmarks.interfaces import ModelFn
from benchmarks.toolkits import Inductor


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
