"""Packed prompts: several prompts back to back in one sequence, each attending only to itself.

Prompt k of a pack occupies tokens cu[k] .. cu[k+1]-1, has position ids 0 .. len-1 and attends causally to
its own tokens only (block-diagonal causal attention). Linear layers, norms and rotary embeddings work
row by row, so every prompt gets the same logits as when it runs alone, up to the rounding of kernels
that now see longer matrices. The win is GEMM shape: a 4,096-token pack keeps a GPU's tensor cores busy
where one 700-token prompt leaves most SMs idle in the 4096-wide projections.

Attention goes through transformers' AttentionInterface under its own name; calls without packing
arguments (one prompt) go to transformers' own SDPA function, unchanged. The packed attention kernel is the
vendor's (`Vendor.ragged_attention`, e.g. flash attention's variable-length form on NVIDIA), or
`masked_attention` here when the vendor has none; the model passes it to every layer in the forward's
kwargs (`packed_attention`).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import BenchmarkError

ATTN_NAME = "llama_bench_packed_sdpa"


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor, cu_k: torch.Tensor,
                     max_q: Any, max_k: Any, causal: bool, scale: float | None) -> torch.Tensor:
    """The case's own ragged attention (benchmarks.interfaces.RaggedAttention), for vendors that offer none:
    SDPA with the block-diagonal (causal) mask spelled out, Tq x Tk booleans. Correct on any device, but
    O(T^2) memory and work per pack, so packing pays off only with a vendor's kernel."""
    if k.shape[1] != q.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
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
    out = kwargs["packed_attention"](q, k, v, cu, cu, n, n, True, scaling)
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
