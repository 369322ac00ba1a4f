"""precision fp8: the decoder's linear layers in float8 e4m3 with per-row scales, through torch._scaled_mm.

Each of the seven projections of every decoder layer (q, k, v, o, gate, up, down: ~97% of the model's FLOPs
on this workload) keeps its weight in e4m3 with one float32 scale per output row (amax of the row / 448), and
quantizes its input at run time with one scale per token row the same way ("dynamic activation, per-row
weight", torchao's Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())). The product runs on the
fp8 tensor cores with fp32 accumulation, then both scales are applied and the result comes back in the model's
fp16. What stays in fp16, and why:
- the token embedding: a table lookup, no GEMM to speed up;
- RMSNorm, rotary embedding, SiLU, residual adds: element-wise, and the norms' reductions and the positions'
  angles lose meaning in 3 mantissa bits;
- attention (QK^T, softmax, PV): the flash kernels run in fp16; fp8 attention would quantize the softmax's
  inputs, the most error-sensitive step, for ~3% of the FLOPs here;
- lm_head: it produces the scored logits themselves, whose argmax is the prediction (near-ties flip with
  its rounding), and it runs on one row per prompt only (~0.1% of the FLOPs).

Why not torchao: its float8 quantization (0.14 to 0.18, every version on the index) asserts a CUDA device of
compute capability >= 8.9 (or MI300, XPU) before it converts anything, so the path the GPU runs could not run in
the CPU tests; torch._scaled_mm itself runs on the CPU build of torch (per-tensor and per-row scales), so this
module's arithmetic is tested where CI runs. The layer is the same recipe torchao applies.
"""
from __future__ import annotations

import torch
from torch import nn

E4M3 = torch.float8_e4m3fn
E4M3_MAX = float(torch.finfo(E4M3).max)  # 448
_TINY = 1e-12  # the smallest amax a scale is taken from: an all-zero row quantizes to zeros, not NaN

PROJECTIONS = {"self_attn": ("q_proj", "k_proj", "v_proj", "o_proj"), "mlp": ("gate_proj", "up_proj", "down_proj")}


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] -> (e4m3 [M, K], float32 scales [M, 1]) with x ~= q * scale, one scale per row."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=_TINY) / E4M3_MAX
    return (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), scale


class Float8Linear(nn.Module):
    """y = x W^T + b with W in e4m3 (one scale per output row) and x quantized per row at each call.

    `weight` is the e4m3 tensor [out, in] (row-major, so `weight.t()` is the column-major operand _scaled_mm
    wants) and `weight_scale` its float32 scales [out]; both are buffers, so torch.compile lifts them as inputs.
    fast_accum: Hopper's fast fp8 accumulation (no periodic promotion to fp32 inside the tensor-core loop), as
    torchao's inference recipe uses; ignored where the device has no such mode.
    """

    def __init__(self, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
                 fast_accum: bool):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("weight_scale", weight_scale)
        self.register_buffer("bias", bias)
        self.fast_accum = fast_accum
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]

    @classmethod
    def from_linear(cls, linear: nn.Linear, fast_accum: bool) -> "Float8Linear":
        weight, scale = quantize_rows(linear.weight.detach())
        bias = linear.bias.detach() if linear.bias is not None else None
        return cls(weight, scale[:, 0].contiguous(), bias, fast_accum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        q, scale = quantize_rows(rows)
        y = torch._scaled_mm(q, self.weight.t(), scale_a=scale, scale_b=self.weight_scale[None, :],
                             out_dtype=x.dtype, use_fast_accum=self.fast_accum)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, e4m3 per-row"


def concat(linears: list["Float8Linear"]) -> "Float8Linear":
    """One Float8Linear computing the outputs of several with the same input (fused q/k/v, gate/up): rows and
    their scales concatenated, so every output element is the same arithmetic as in its own layer."""
    weight = torch.cat([lin.weight for lin in linears])
    scale = torch.cat([lin.weight_scale for lin in linears])
    biases = [lin.bias for lin in linears]
    bias = None if any(b is None for b in biases) else torch.cat(biases)
    return Float8Linear(weight, scale, bias, linears[0].fast_accum)


def quantize_decoder(body: nn.Module, fast_accum: bool) -> int:
    """Replace the projections of every decoder layer of a transformers Llama body with Float8Linear, in place,
    releasing the fp16 weights layer by layer. Returns the number of layers replaced (idempotent: 0 the second
    time)."""
    replaced = 0
    for layer in body.layers:
        for part, names in PROJECTIONS.items():
            module = getattr(layer, part)
            for name in names:
                lin = getattr(module, name)
                if isinstance(lin, nn.Linear):
                    setattr(module, name, Float8Linear.from_linear(lin, fast_accum))
                    replaced += 1
        if replaced and layer.self_attn.q_proj.weight.is_cuda:
            # the fp16 weights just dropped stay reserved by the caching allocator and would count as memory in
            # use on the device for the rest of the run; give them back layer by layer
            torch.cuda.empty_cache()
    return replaced
