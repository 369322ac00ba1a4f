"""Precision fp8 on the CPU build of torch (torch._scaled_mm runs there): the float8 linear layer, the decoder's
conversion, what stays high-precision, its fusion, and its agreement with fp32 on a tiny Llama."""
from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from benchmarks.llama2_7b_mmlu import fp8
from benchmarks.llama2_7b_mmlu.fp8 import E4M3, Float8Linear, quantize_rows
from benchmarks.llama2_7b_mmlu.model import LastTokenLM
from vendors.cpu import host_scaled_mm

pytestmark = pytest.mark.skipif(not host_scaled_mm(), reason="this torch has no torch._scaled_mm on the host")

# Measured on the tiny Llama below (random weights, 200 random prompts of 20-200 tokens, seeds 0-5): fp8 predictions
# equal fp32's on 95.0-98.5% of prompts (mean 96.4%). 90% is 4 binomial standard deviations under the lowest.
TINY_AGREEMENT_FLOOR = 0.90


def tiny_llama(seed: int, dtype: torch.dtype) -> LastTokenLM:
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=1057, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512)
    lm = transformers.LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa", dtype=torch.float32)
    if dtype != torch.float32:  # the same weights, built in `dtype` as the case's direct load does
        low = transformers.LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa", dtype=dtype)
        low.load_state_dict(lm.state_dict())
        lm = low
    return LastTokenLM(lm).eval()


def test_rows_quantize_to_e4m3_with_one_scale_each_within_its_rounding():
    x = torch.randn(8, 64) * torch.logspace(-3, 3, 8)[:, None]  # rows six orders of magnitude apart
    q, scale = quantize_rows(x)
    assert q.dtype == E4M3 and scale.shape == (8, 1) and scale.dtype == torch.float32
    assert torch.equal(q.float().abs().amax(dim=1), torch.full((8,), 448.0))  # each row's amax maps to e4m3's max
    back = q.float() * scale
    # e4m3 keeps 3 mantissa bits: relative rounding at most 2**-4 for normal numbers
    big = x.abs() > 2 ** -6 * scale * 448 / 448 * 64
    assert ((back - x).abs() <= x.abs() * 2 ** -4 + scale * 2 ** -9)[big].all()


def test_an_all_zero_row_quantizes_to_zeros_not_nan():
    q, scale = quantize_rows(torch.zeros(2, 32))
    assert torch.isfinite(scale).all() and torch.equal(q.float(), torch.zeros(2, 32))


def test_float8_linear_stores_e4m3_weights_and_matches_the_linear_within_fp8_error():
    torch.manual_seed(0)
    lin = nn.Linear(64, 48, bias=True, dtype=torch.float16)
    f8 = Float8Linear.from_linear(lin, fast_accum=True)
    assert f8.weight.dtype == E4M3 and f8.weight.shape == (48, 64) and f8.weight.element_size() == 1
    assert f8.weight_scale.dtype == torch.float32 and f8.weight_scale.shape == (48,)
    x = torch.randn(3, 5, 64, dtype=torch.float16)
    want, got = lin(x).float(), f8(x)
    assert got.dtype == torch.float16 and got.shape == (3, 5, 48)
    rel = ((got.float() - want).norm() / want.norm()).item()
    assert 0 < rel < 0.06, rel  # e4m3 on both operands: a few percent, never exact


def test_each_row_is_scaled_alone_so_padding_rows_change_nothing():
    torch.manual_seed(1)
    f8 = Float8Linear.from_linear(nn.Linear(32, 16, bias=False, dtype=torch.float16), fast_accum=False)
    x = torch.randn(4, 32, dtype=torch.float16)
    padded = torch.cat([x, 1000 * torch.randn(3, 32, dtype=torch.float16)])  # huge rows after the real ones
    torch.testing.assert_close(f8(padded)[:4], f8(x), atol=0, rtol=0)


def test_the_decoder_projections_become_fp8_and_the_rest_stays_fp16():
    model = tiny_llama(0, torch.float16)
    before = {n: p.dtype for n, p in model.named_parameters()}
    assert model.quantize_fp8() == 2 * 7
    assert model.quantize_fp8() == 0  # idempotent
    for layer in model.body.layers:
        for part, names in fp8.PROJECTIONS.items():
            for name in names:
                lin = getattr(getattr(layer, part), name)
                assert isinstance(lin, Float8Linear) and lin.weight.dtype == E4M3, name
        assert layer.input_layernorm.weight.dtype == torch.float16
        assert layer.post_attention_layernorm.weight.dtype == torch.float16
    assert model.body.embed_tokens.weight.dtype == torch.float16 and model.lm_head.weight.dtype == torch.float16
    assert model.body.norm.weight.dtype == torch.float16
    assert model.body.rotary_emb.inv_freq.dtype == torch.float32  # the direct load keeps it in fp32
    # bytes: every projection weight is one byte per element now (plus one fp32 scale per row)
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    proj = [(n, t) for n, t in tensors if n.endswith("proj.weight")]
    assert len(proj) == 14 and all(t.element_size() == 1 for _, t in proj)
    c = model.body.config
    per_layer = 4 * 64 * 64 + 3 * 64 * 128
    assert sum(t.numel() * t.element_size() for _, t in proj) == c.num_hidden_layers * per_layer
    left = {n for n, _ in model.named_parameters()}
    assert all(not n.endswith("proj.weight") for n in left)  # the fp16 projection weights were dropped
    assert {n: d for n, d in before.items() if n in left} == {n: torch.float16 for n in left}


def test_fp8_predictions_agree_with_fp32_above_the_measured_floor():
    ref, low = tiny_llama(0, torch.float32), tiny_llama(0, torch.float16)
    low.quantize_fp8()
    gen = torch.Generator().manual_seed(100)
    same, n = 0, 200
    with torch.inference_mode():
        for _ in range(n):
            length = int(torch.randint(20, 200, (1,), generator=gen))
            ids, last = torch.randint(0, 1057, (1, length), generator=gen), torch.tensor([length - 1])
            same += int(ref(ids, last).argmax() == low(ids, last).argmax())
    assert TINY_AGREEMENT_FLOOR <= same / n < 1.0, same / n  # fp8 flips some near-ties, never all


def test_fusing_fp8_projections_shares_the_e4m3_weights_and_scales():
    model = tiny_llama(2, torch.float16)
    model.quantize_fp8()
    ids, last = torch.randint(0, 1057, (1, 40)), torch.tensor([39])
    with torch.inference_mode():
        before = model(ids, last)
        model.fuse_projections()
        after = model(ids, last)  # eager: the original (now view-backed) layers
    torch.testing.assert_close(after, before, atol=0, rtol=0)
    attn, mlp = model.body.layers[0].self_attn, model.body.layers[0].mlp
    assert isinstance(attn.qkv_proj, Float8Linear) and attn.qkv_proj.weight.shape == (3 * 64, 64)
    assert attn.k_proj.weight.untyped_storage().data_ptr() == attn.qkv_proj.weight.untyped_storage().data_ptr()
    assert torch.equal(attn.qkv_proj.weight_scale[64:128], attn.k_proj.weight_scale)
    assert isinstance(mlp.gate_up_proj, Float8Linear) and mlp.gate_up_proj.weight.shape == (2 * 128, 64)
    x = torch.randn(1, 7, 64, dtype=torch.float16)
    with torch.inference_mode():
        fused = mlp.gate_up_proj(x)
        torch.testing.assert_close(fused, torch.cat([mlp.gate_proj(x), mlp.up_proj(x)], dim=-1), atol=0, rtol=0)


@pytest.mark.slow
def test_compiled_fp8_model_packs_prompts_like_its_eager_self():
    """The inference pass's path at fp8: packing, the pruned last layer and fused fp8 projections, compiled."""
    from benchmarks.llama2_7b_mmlu import packing

    model = tiny_llama(3, torch.float16)
    gen = torch.Generator().manual_seed(3)
    prompts = [torch.randint(0, 1057, (1, n), generator=gen) for n in (16, 48, 32)]
    model.quantize_fp8()
    with torch.inference_mode():
        alone = torch.cat([model(p, torch.tensor([p.shape[1] - 1])) for p in prompts])
    model.enable_packing(48, packing.masked_attention)
    model.prune_last_layer()
    model.fuse_projections()
    torch._dynamo.reset()
    compiled = torch.compile(model, dynamic=True)
    ids = torch.cat(prompts, dim=1)
    last = torch.tensor([16, 64, 96]) - 1
    with torch.inference_mode():
        packed = compiled(ids, last)
    assert packed.shape == alone.shape
    torch.testing.assert_close(packed.float(), alone.float(), atol=0.05, rtol=0.05)
    assert (packed.argmax(-1) == alone.argmax(-1)).float().mean() >= 2 / 3
