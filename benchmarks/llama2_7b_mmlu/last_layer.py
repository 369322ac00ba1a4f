"""prune_last_layer: in a pack, the last decoder layer computes only the rows that are scored.

Only each prompt's last position reaches lm_head, and after the last layer no row mixes with another. So that
layer needs keys and values of every row (the scored rows attend to them), but queries, attention output,
o_proj and the MLP only for the P scored rows: with ~7,700-token packs of ~10 prompts that is 1/32 of the
model's GEMM work left out (~3%). Each scored row is the same arithmetic as in the full layer: its query
attends to every key of its own prompt (the causal limit of a prompt's last token is the whole prompt).

The body's layers are called here as transformers' LlamaModel.forward calls them (embedding, rotary
table, layers, final norm), so the last one can be replaced; its weights and norms are the model's own.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import packing


def forward_scored_rows(body: nn.Module, input_ids: torch.Tensor, rows: torch.Tensor, position_ids: torch.Tensor,
                        cu_seq_lens_q: torch.Tensor, max_length_q: Any, packed_attention: Any,
                        **kwargs: Any) -> torch.Tensor:
    """Hidden states [1, P, hidden] after the final norm at positions `rows` [P] of a pack."""
    hidden = body.embed_tokens(input_ids)
    position_embeddings = body.rotary_emb(hidden, position_ids)
    layers = body.layers[: body.config.num_hidden_layers]
    for layer in layers[:-1]:
        out = layer(hidden, attention_mask=None, position_ids=position_ids, position_embeddings=position_embeddings,
                    cu_seq_lens_q=cu_seq_lens_q, max_length_q=max_length_q, packed_attention=packed_attention,
                    **kwargs)
        hidden = out[0] if isinstance(out, tuple) else out  # transformers 4.x returns a tuple
    hidden = _scored_rows_layer(layers[-1], hidden, position_embeddings, cu_seq_lens_q, max_length_q, rows,
                                packed_attention)
    return body.norm(hidden)


def _scored_rows_layer(layer: nn.Module, hidden: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor],
                       cu: torch.Tensor, max_len: Any, rows: torch.Tensor, attention: Any) -> torch.Tensor:
    attn = layer.self_attn
    head_dim, n = attn.head_dim, hidden.shape[1]
    x = layer.input_layernorm(hidden)
    scored = x[:, rows]
    q = attn.q_proj(scored).view(rows.shape[0], -1, head_dim)
    k = attn.k_proj(x).view(n, -1, head_dim)
    v = attn.v_proj(x).view(n, -1, head_dim)
    cos, sin = (t[0, :, None, :] for t in position_embeddings)  # [T, 1, head_dim]
    q = packing.apply_rotary(q, cos[rows], sin[rows])
    k = packing.apply_rotary(k, cos, sin)
    # One query per prompt, seeing all of its prompt's keys: no causal mask needed.
    cu_q = torch.arange(rows.shape[0] + 1, dtype=torch.int32, device=rows.device)
    out = attention(q, k, v, cu_q, cu, 1, max_len, False, attn.scaling)
    hidden = hidden[:, rows] + attn.o_proj(out.reshape(1, rows.shape[0], -1))
    return hidden + layer.mlp(layer.post_attention_layernorm(hidden))
