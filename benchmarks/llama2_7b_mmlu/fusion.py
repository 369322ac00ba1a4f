"""fuse_projections: one GEMM for q/k/v and one for gate/up in the compiled model, without copying weights.

Each layer's q, k and v weights are moved into one [q+k+v, hidden] tensor and the three Linear layers keep
views of it (likewise gate and up; at precision fp8 the e4m3 weights and their per-row scales), so memory does
not grow (the old tensors are released layer by layer) and the eager model is unchanged. While torch.compile traces, the attention and MLP use the fused weights:
one GEMM with N = 12,288 instead of three with N = 4,096, one with N = 22,016 instead of two with
N = 11,008 (fewer launches, fewer partial waves of tiles). Each output element is still the same dot
product; only the GEMM kernels' rounding may differ. In a pack the fused attention also keeps q/k/v
token-major ([T, heads, head_dim]) from the GEMM through rotary into the variable-length kernel (no
[heads, T] transposes). In eager mode (the validation pass, a compile fallback) the original forwards run.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BenchmarkError
from . import packing

_SUBCLASSES: dict[type, type] = {}


class SharedLinear(nn.Module):
    """The fused projection of plain Linear layers: their weights concatenated, each layer keeping a view.
    Buffers (not parameters), so torch.compile lifts them like the parameters they alias and the model's
    parameter count does not change."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


def _share(module: nn.Module, names: tuple[str, ...]) -> nn.Module:
    """One projection module computing the named layers' outputs, their weights (and biases, and with fp8 the
    per-row scales) concatenated once; each named layer is re-pointed at its slice (no copy is kept)."""
    from .fp8 import Float8Linear, concat

    linears = [getattr(module, n) for n in names]
    if all(isinstance(lin, Float8Linear) for lin in linears):
        fused = concat(linears)
        tensors = ("weight", "weight_scale", "bias")
    else:
        weight = torch.cat([lin.weight.detach() for lin in linears])
        bias = torch.cat([lin.bias.detach() for lin in linears]) if linears[0].bias is not None else None
        fused = SharedLinear(weight, bias)
        tensors = ("weight", "bias")
    start = 0
    for lin in linears:
        rows = lin.weight.shape[0]
        for name in tensors:
            whole = getattr(fused, name)
            if whole is None:
                continue
            view = whole[start:start + rows]
            if isinstance(getattr(lin, name), nn.Parameter):
                setattr(lin, name, nn.Parameter(view, requires_grad=False))
            else:
                setattr(lin, name, view)
        start += rows
    return fused


def _attention_forward(self: nn.Module, hidden_states: torch.Tensor, position_embeddings: Any = None,
                       attention_mask: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
    if not torch.compiler.is_compiling():
        return super(type(self), self).forward(hidden_states, position_embeddings, attention_mask, *args, **kwargs)
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, eager_attention_forward

    qkv = self.qkv_proj(hidden_states)
    cu = kwargs.get("cu_seq_lens_q")
    if cu is not None and self.config._attn_implementation == packing.ATTN_NAME:
        # A pack: q/k/v stay token-major [T, heads, head_dim] from the GEMM through rotary into the
        # variable-length kernel, so no [heads, T] transposes are materialized around the attention.
        n = hidden_states.shape[1]
        q, k, v = qkv[0].view(n, -1, self.head_dim).split([s // self.head_dim for s in self.qkv_sizes], dim=1)
        cos, sin = (t[0, :, None, :] for t in position_embeddings)
        q, k = packing.apply_rotary(q, cos, sin), packing.apply_rotary(k, cos, sin)
        bound = kwargs["max_length_q"]
        out = kwargs["packed_attention"](q, k, v, cu, cu, bound, bound, True, self.scaling)
        return self.o_proj(out.reshape(1, n, -1)), None
    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, self.head_dim)
    q, k, v = qkv.split(self.qkv_sizes, dim=-1)
    q, k = apply_rotary_pos_emb(q.view(hidden_shape).transpose(1, 2), k.view(hidden_shape).transpose(1, 2),
                                *position_embeddings)
    impl = self.config._attn_implementation
    attention = eager_attention_forward if impl == "eager" else ALL_ATTENTION_FUNCTIONS[impl]
    for key in ("cache", "past_key_values", "past_key_value", "use_cache", "cache_position"):
        kwargs.pop(key, None)  # no KV cache here: one forward per prompt
    out, weights = attention(self, q, k, v.view(hidden_shape).transpose(1, 2), attention_mask, dropout=0.0,
                             scaling=self.scaling, **kwargs)
    return self.o_proj(out.reshape(*input_shape, -1).contiguous()), weights


def _mlp_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if not torch.compiler.is_compiling():
        return super(type(self), self).forward(x)
    gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
    return self.down_proj(self.act_fn(gate) * up)


def _fused_class(base: type, forward: Any) -> type:
    if base not in _SUBCLASSES:
        _SUBCLASSES[base] = type(f"Fused{base.__name__}", (base,), {"forward": forward})
    return _SUBCLASSES[base]


def fuse_projections(body: nn.Module) -> None:
    """Fuses every decoder layer of a transformers Llama body in place (idempotent); plain and fp8 layers
    (fp8.Float8Linear) alike."""
    from .fp8 import Float8Linear

    for layer in body.layers:
        attn, mlp = layer.self_attn, layer.mlp
        for module, names in ((attn, ("q_proj", "k_proj", "v_proj")), (mlp, ("gate_proj", "up_proj", "down_proj"))):
            missing = [n for n in names if not isinstance(getattr(module, n, None), (nn.Linear, Float8Linear))]
            if missing:
                raise BenchmarkError(f"config key 'fuse_projections': {type(module).__name__} has no Linear "
                                     f"{', '.join(missing)} (not a Llama layout); set fuse_projections: false")
        if type(attn) in _SUBCLASSES.values():  # fused already
            continue
        for module, prefix, names in ((attn, "qkv", ("q_proj", "k_proj", "v_proj")),
                                      (mlp, "gate_up", ("gate_proj", "up_proj"))):
            fused = _share(module, names)
            module.add_module(f"{prefix}_proj", fused)
            if fused.weight.is_cuda:
                # The separate weights just freed stay reserved by the caching allocator and count as memory
                # in use on the device (measured: +8.4 GiB over 32 layers); give them back layer by layer.
                torch.cuda.empty_cache()
        attn.qkv_sizes = [attn.q_proj.weight.shape[0], attn.k_proj.weight.shape[0], attn.v_proj.weight.shape[0]]
        attn.__class__ = _fused_class(type(attn), _attention_forward)
        mlp.__class__ = _fused_class(type(mlp), _mlp_forward)
