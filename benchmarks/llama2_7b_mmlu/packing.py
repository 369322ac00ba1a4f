"""Packed prompts: several prompts back to back in one sequence, each attending only to itself.

Prompt k of a pack occupies tokens cu[k] .. cu[k+1]-1, has position ids 0 .. len-1 and attends causally to
its own tokens only (block-diagonal causal attention). Linear layers, norms and rotary embeddings work
row by row, so every prompt gets the same logits as when it runs alone, up to the rounding of kernels
that now see longer matrices. The win is GEMM shape: a 4,096-token pack keeps a GPU's tensor cores busy
where one 700-token prompt leaves most SMs idle in the 4096-wide projections.

Attention goes through transformers' AttentionInterface under its own name; calls without packing
arguments (one prompt) go to transformers' own SDPA function, unchanged.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import BenchmarkError

ATTN_NAME = "llama_bench_packed_sdpa"


def varlen_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor, cu_k: torch.Tensor,
                     max_q: Any, max_k: Any, causal: bool, scale: float | None, kernel: str = "flash") -> torch.Tensor:
    """Attention of packed q [Tq, H, D] over packed k/v [Tk, Hkv, D], query block i seeing only key block i
    (cu_q, cu_k: int32 [P+1] bounds). causal: q and k blocks are the same tokens, each sees itself and
    earlier ones. max_q / max_k bound the longest block: flash attention launches ceil(max_q / 128) tiles
    per block and head, so a tight bound saves empty tiles but a low one would leave rows unwritten.
    kernel: one of config.PACKED_ATTENTION_KERNELS (run key `packed_attention`), for fp16/bf16 on CUDA: flash
    attention 2's variable-length form or cuDNN's ragged SDPA; fp32 and other devices have one path each."""
    if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) and kernel == "cudnn":
        return torch.ops.aten._cudnn_attention_forward(
            q, k, v, None, cu_q, cu_k, max_q, max_k, False, 0.0, causal, False, scale=scale)[0]
    if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        # Flash attention's variable-length form: reads only each prompt's own block (GQA built in).
        return torch.ops.aten._flash_attention_forward(
            q, k, v, cu_q, cu_k, max_q, max_k, 0.0, causal, False, scale=scale)[0]
    if k.shape[1] != q.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    if q.is_cuda:
        # fp32 (flash has no fp32 kernels): memory-efficient attention's varlen form, causal from the top left.
        return torch.ops.aten._efficient_attention_forward(
            q[None], k[None], v[None], None, cu_q, cu_k, max_q, max_k, 0.0, 1 if causal else 0, False,
            scale=scale)[0][0]
    # Any other device: SDPA with the block-diagonal (causal) mask spelled out (Tq x Tk booleans).
    seg_q, seg_k = segment_ids(cu_q, q.shape[0]), segment_ids(cu_k, k.shape[0])
    mask = seg_q[:, None] == seg_k[None, :]
    if causal:
        tok = torch.arange(q.shape[0], device=q.device)
        mask &= tok[None, :] <= tok[:, None]
    out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1),
                                         attn_mask=mask, scale=scale)
    return out.transpose(0, 1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Llama's rotary embedding on one of q/k, x [..., head_dim] (transformers' apply_rotary_pos_emb rotates
    q and k with the same cos/sin; the pruned last layer needs other rows for q than for k)."""
    from transformers.models.llama.modeling_llama import rotate_half

    return x * cos + rotate_half(x) * sin


def _attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
               **kwargs: Any) -> tuple[torch.Tensor, None]:
    cu = kwargs.pop("cu_seq_lens_q", None)
    if cu is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    # transformers hands [1, heads, T, head_dim] and wants [1, T, heads, head_dim] back.
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))
    n = kwargs["max_length_q"]
    out = varlen_attention(q, k, v, cu, cu, n, n, True, scaling, kwargs["packed_kernel"])
    return out.unsqueeze(0), None


def register() -> None:
    """Makes ATTN_NAME a transformers attention implementation (idempotent)."""
    try:
        from transformers import AttentionInterface
    except ImportError:
        import transformers

        raise BenchmarkError(
            f"config key 'pack_tokens': packing needs transformers' AttentionInterface (transformers >= 4.48), "
            f"found transformers {transformers.__version__}; upgrade transformers or set pack_tokens: 0"
        ) from None
    AttentionInterface.register(ATTN_NAME, _attention)


def pack_layout(input_ids: torch.Tensor, last_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cu_seqlens (int32 [P+1]) and position ids ([1, T], restarting at 0 for every prompt) of a pack whose
    prompt k ends at last_pos[k]; the last prompt ends at T-1 (the harness packs and pads that way)."""
    bounds = F.pad(last_pos + 1, (1, 0))
    tok = torch.arange(input_ids.shape[1], device=input_ids.device)
    return bounds.to(torch.int32), (tok - bounds[segment_ids(bounds, tok.shape[0])]).unsqueeze(0)


def segment_ids(bounds: torch.Tensor, n: int) -> torch.Tensor:
    """Index of the prompt each of n tokens belongs to, from the prompt bounds [0, end_0, ..., end_last].
    A cumulative sum of start marks: inductor (torch 2.11, CUDA, dynamic shapes) fails to lower searchsorted
    on a slice of a computed tensor."""
    marks = torch.zeros(n + 1, dtype=torch.int64, device=bounds.device)
    marks.index_put_((bounds[1:-1].long(),), torch.ones_like(bounds[1:-1], dtype=torch.int64), accumulate=True)
    return marks[:n].cumsum(0)
