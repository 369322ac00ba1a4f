"""The NVIDIA inductor adapter: torch.compile on CUDA (options from the nvidia vendor YAML).

The generic adapter (benchmarks.toolkits.Inductor) compiles, pads and warms up. On CUDA, modes that
use CUDA graphs (reduce-overhead, max-autotune) must be told where one inference step ends; otherwise
cudagraph trees treat each prompt as continuing the previous step and keep its outputs alive.
"""
from __future__ import annotations

from typing import Sequence

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

    def prepare(self, model_fn: ModelFn, warmup_calls: Sequence[Sequence[int]]) -> ModelFn:
        # The attention backend is chosen when the graph is traced and stays baked into it, so the compiled
        # model can use cuDNN attention (its per-length plans are built during the warm-up over the padded
        # shapes) while the eager passes keep the vendor-wide setting.
        wanted = getattr(self.options, "compiled_sdpa_cudnn", None)
        before = torch.backends.cuda.cudnn_sdp_enabled()
        if wanted is not None:
            torch.backends.cuda.enable_cudnn_sdp(wanted)
        try:
            return super().prepare(model_fn, warmup_calls)
        finally:
            torch.backends.cuda.enable_cudnn_sdp(before)
