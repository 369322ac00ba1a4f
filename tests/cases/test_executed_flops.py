"""mfu_executed's numerator: the llama case model's forward_flops against torch's own FLOP counter on a tiny
model (its matmuls exactly; attention by hand, causal), plain, packed and with the pruned last layer."""
from __future__ import annotations

import pytest
import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.llama2_7b_mmlu import CASE
from benchmarks.llama2_7b_mmlu.model import LastTokenLM
from benchmarks.harness.toolkits import padded_call

H, INTER, VOCAB, LAYERS, HEADS, KV_HEADS = 64, 96, 97, 3, 4, 2


def tiny() -> LastTokenLM:
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=H, intermediate_size=INTER, num_hidden_layers=LAYERS,
                                   num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=256)
    torch.manual_seed(0)
    return LastTokenLM(transformers.LlamaForCausalLM._from_config(cfg, attn_implementation="eager")).eval()


def counted(model: LastTokenLM, lengths: list[int]) -> dict[str, int]:
    ids = torch.randint(3, VOCAB, (1, sum(lengths)))
    last = torch.tensor(lengths).cumsum(0) - 1
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model(ids, last)
    return {str(k): v for k, v in fc.get_flop_counts()["Global"].items()}


def causal_attention(n: int) -> float:
    """Scores and values of one prompt, every head, only the n(n+1)/2 causal query-key pairs: 2 matmuls x 2 FLOPs."""
    return 2 * 2 * H * n * (n + 1) / 2


def test_one_prompt_matches_torchs_matmul_count_and_a_hand_count() -> None:
    model, n = tiny(), 20
    mm = counted(model, [n])["aten.mm"]  # eager attention is bmm; every projection, MLP and lm_head is mm
    kv = KV_HEADS * H // HEADS
    hand_mm = LAYERS * 2 * n * (2 * H * H + 2 * H * kv + 3 * H * INTER) + 2 * H * VOCAB  # lm_head: the scored row only
    assert mm == hand_mm
    assert model.forward_flops([n]) == hand_mm + LAYERS * causal_attention(n)


def test_packs_and_the_pruned_last_layer() -> None:
    model, lengths = tiny(), [9, 30, 4]
    model.enable_packing(max(lengths))  # the case's masked attention: SDPA, not counted as mm
    mm = counted(model, lengths)["aten.mm"]
    assert model.forward_flops(lengths) == mm + LAYERS * sum(causal_attention(n) for n in lengths)
    model.prune_last_layer()
    pruned_mm = counted(model, lengths)["aten.mm"]
    kv = KV_HEADS * H // HEADS
    # the last layer: k/v for every row, q/o/MLP for the 3 scored rows, one query per prompt over its keys
    last_attention = sum(2 * 2 * H * n for n in lengths)
    assert model.forward_flops(lengths) == pruned_mm + (LAYERS - 1) * sum(causal_attention(n) for n in lengths) \
        + last_attention
    assert pruned_mm < mm and pruned_mm == mm - 2 * (sum(lengths) - 3) * (2 * H * H + 3 * H * INTER)
    assert kv > 0


def test_llama2_7b_executes_fewer_flops_per_token_than_the_reference_assumes() -> None:
    """The reference's 2*7e9 per token; one 772-token prompt (the mean MMLU length) of the real shape."""
    cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=32)
    with torch.device("meta"):
        model = LastTokenLM(transformers.LlamaForCausalLM(cfg))
    per_token = model.forward_flops([772]) / 772
    assert model.architecture() == {**CASE.architecture, "parameters": CASE.parameters}
    assert 12.5e9 < per_token < 13.5e9, per_token  # no lm_head over all positions, causal attention


def test_padding_is_counted_apart() -> None:
    assert padded_call((100,), 128, 200) == (128,)
    assert padded_call((100, 50), 128, 60) == (100, 50, 60, 46)  # a pack's padding as prompts <= the longest
    assert padded_call((128,), 128, 200) == (128,)
    model = tiny()
    assert model.forward_flops(padded_call((100,), 128, 200)) > model.forward_flops((100,))


@pytest.mark.parametrize("n", [1, 7])
def test_the_count_grows_with_every_token(n) -> None:
    model = tiny()
    assert model.forward_flops([n + 1]) > model.forward_flops([n]) > 0
