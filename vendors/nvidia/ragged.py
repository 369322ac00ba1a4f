"""Ragged (packed) attention on CUDA: the kernels the nvidia vendor offers for prompts packed back to back.

The vendor YAML key `packed_attention` picks the fp16/bf16 kernel (precision fp8 runs attention in fp16):
'flash' (flash attention 2's variable-length form in torch, which reads only each prompt's own block,
grouped-query attention built in), 'fa4' (FlashAttention-4, the `flash-attn-4` package's CuTe DSL kernels,
whose Hopper forward uses wgmma and TMA; an optional dependency: requirements-fa4.txt) or 'cudnn' (cuDNN's
ragged SDPA; measured ~180x slower on this workload, docs/results/README.md). fp32 has one kernel:
memory-efficient attention's variable-length form (flash has no fp32 kernels). Each follows
`benchmarks.interfaces.RaggedAttention`.
"""
from __future__ import annotations

from typing import Any

import torch

from benchmarks.errors import BenchmarkError
from benchmarks.interfaces import RaggedAttention

KERNELS = ("flash", "cudnn", "fa4")
FA4_PACKAGE = "flash-attn-4"  # pip name; imported as flash_attn.cute


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


def fa4_problem(device: torch.device | None = None) -> str | None:
    """Why FlashAttention-4 cannot run here (None: it can): the package, or a card older than Hopper."""
    try:
        import flash_attn.cute  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a broken install (missing CUDA libraries) raises anything
        return (f"the {FA4_PACKAGE} package cannot be imported ({type(exc).__name__}: {str(exc)[:160]}); install it "
                f"with pip install -r requirements-fa4.txt")
    if not torch.cuda.is_available():
        return "no CUDA device"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 9:
        return f"the card is compute capability {major}.{minor}; FlashAttention-4 runs on Hopper (9.0) or newer"
    return None


@torch.library.custom_op("llama_bench::fa4_varlen_fwd", mutates_args=())
def fa4_varlen_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor, cu_k: torch.Tensor,
                   max_q: int, max_k: int, causal: bool, scale: float) -> torch.Tensor:
    """FlashAttention-4's variable-length forward as a torch custom op (registered at import, so torch.compile
    traces one opaque call and no graph break: its CuTe DSL kernels are compiled and launched from Python, which
    dynamo cannot trace)."""
    from flash_attn.cute import flash_attn_varlen_func

    out = flash_attn_varlen_func(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, max_seqlen_q=max_q,
                                 max_seqlen_k=max_k, softmax_scale=scale, causal=causal)
    return (out[0] if isinstance(out, tuple) else out).contiguous()


@fa4_varlen_fwd.register_fake
def _fa4_shape(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor, cu_k: torch.Tensor,
               max_q: int, max_k: int, causal: bool, scale: float) -> torch.Tensor:
    return torch.empty_like(q)


def fa4(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor, cu_k: torch.Tensor, max_q: Any,
        max_k: Any, causal: bool, scale: float | None) -> torch.Tensor:
    return fa4_varlen_fwd(q, k, v, cu_q, cu_k, max_q, max_k, causal, q.shape[-1] ** -0.5 if scale is None else scale)


def select(kernel: str, precision: str) -> RaggedAttention:
    """The kernel for `precision`; a kernel without that precision is refused naming the key."""
    if kernel not in KERNELS:
        raise BenchmarkError(f"config key 'packed_attention': got {kernel!r}; expected one of {', '.join(KERNELS)}")
    if precision == "fp32":
        if kernel == "cudnn":
            raise BenchmarkError("config key 'packed_attention': got 'cudnn'; expected flash at fp32 (cuDNN's ragged "
                                 "attention has fp16/bf16 kernels only): --set packed_attention=flash")
        if kernel == "fa4":
            raise BenchmarkError("config key 'packed_attention': got 'fa4'; expected flash at fp32 (FlashAttention-4 "
                                 "has fp16/bf16 kernels only): --set packed_attention=flash")
        return efficient_fp32
    if kernel == "fa4":
        problem = fa4_problem()
        if problem:
            raise BenchmarkError(f"config key 'packed_attention': got 'fa4', but {problem}; or use "
                                 "--set packed_attention=flash")
        return fa4
    return cudnn if kernel == "cudnn" else flash
