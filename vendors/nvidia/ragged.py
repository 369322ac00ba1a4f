"""Ragged (packed) attention on CUDA: the kernels the nvidia vendor offers for prompts packed back to back.

The vendor YAML key `packed_attention` picks the fp16/bf16 kernel: 'flash' (flash attention 2's
variable-length form, which reads only each prompt's own block, grouped-query attention built in) or
'cudnn' (cuDNN's ragged SDPA; measured ~180x slower on this workload, docs/results/README.md). fp32 has
one kernel: memory-efficient attention's variable-length form (flash has no fp32 kernels). Each follows
`benchmarks.interfaces.RaggedAttention`.
"""
from __future__ import annotations

from typing import Any

import torch

from benchmarks.errors import BenchmarkError
from benchmarks.interfaces import RaggedAttention

KERNELS = ("flash", "cudnn")


def flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor, cu_k: torch.Tensor, max_q: Any,
          max_k: Any, causal: bool, scale: float | None) -> torch.Tensor:
    return torch.ops.aten._flash_attention_forward(q, k, v, cu_q, cu_k, max_q, max_k, 0.0, causal, False,
                                                   scale=scale)[0]


def cudnn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor, cu_k: torch.Tensor, max_q: Any,
          max_k: Any, causal: bool, scale: float | None) -> torch.Tensor:
    return torch.ops.aten._cudnn_attention_forward(q, k, v, None, cu_q, cu_k, max_q, max_k, False, 0.0, causal,
                                                   False, scale=scale)[0]


def efficient_fp32(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor, cu_k: torch.Tensor,
                   max_q: Any, max_k: Any, causal: bool, scale: float | None) -> torch.Tensor:
    if k.shape[1] != q.shape[1]:  # this kernel has no grouped-query attention
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    # causal from the top left (1), as the blocks' queries and keys are the same tokens
    return torch.ops.aten._efficient_attention_forward(q[None], k[None], v[None], None, cu_q, cu_k, max_q, max_k,
                                                       0.0, 1 if causal else 0, False, scale=scale)[0][0]


def select(kernel: str, precision: str) -> RaggedAttention:
    """The kernel for `precision`; a kernel without that precision is refused naming the key."""
    if kernel not in KERNELS:
        raise BenchmarkError(f"config key 'packed_attention': got {kernel!r}; expected one of {', '.join(KERNELS)}")
    if precision == "fp32":
        if kernel == "cudnn":
            raise BenchmarkError("config key 'packed_attention': got 'cudnn'; expected flash at fp32 (cuDNN's ragged "
                                 "attention has fp16/bf16 kernels only): --set packed_attention=flash")
        return efficient_fp32
    return cudnn if kernel == "cudnn" else flash
