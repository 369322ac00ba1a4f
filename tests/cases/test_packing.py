"""pack_tokens: several prompts per forward, each scored exactly as alone (CPU, tiny Llama, fp32)."""
from __future__ import annotations

import json

import pytest
import torch
import transformers

from benchmarks.errors import BenchmarkError
from benchmarks.llama2_7b_mmlu import packing
from benchmarks.llama2_7b_mmlu.model import LastTokenLM
from benchmarks.llama2_7b_mmlu.packing import masked_attention, pack_layout
from benchmarks.harness.passes import HostBatch, plan_packs, run_pass
from benchmarks.harness.toolkits import PadRight, warmup_shapes
from results_support import packed_run, run_smoke, shared_runs


def tiny_lm(seed: int = 0) -> LastTokenLM:
    torch.manual_seed(seed)
    # GQA (4 query heads, 2 key/value heads) so the packed attention's head sharing is exercised too.
    cfg = transformers.LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    lm = transformers.LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa")
    return LastTokenLM(lm.float().eval()).eval()


def prompts(lengths, seed: int = 1) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [[1] + torch.randint(3, 97, (n - 1,), generator=gen).tolist() for n in lengths]


def test_plan_packs_fills_in_order_and_a_long_prompt_goes_alone() -> None:
    assert plan_packs([5, 5, 5], 0) == [(0, 1), (1, 2), (2, 3)]
    assert plan_packs([5, 5, 5], 10) == [(0, 2), (2, 3)]
    assert plan_packs([5, 5, 5], 15) == [(0, 3)]
    assert plan_packs([3, 20, 4, 4, 30], 10) == [(0, 1), (1, 2), (2, 4), (4, 5)]
    assert plan_packs([], 10) == []
    lengths = [7, 1, 30, 12, 12, 12, 3, 9]
    plan = plan_packs(lengths, 24)
    assert [k for i, j in plan for k in range(i, j)] == list(range(len(lengths)))  # every prompt once, in order
    assert all(sum(lengths[i:j]) <= 24 or j - i == 1 for i, j in plan)


def test_pack_layout_restarts_positions_per_prompt() -> None:
    ids = torch.zeros(1, 9, dtype=torch.int64)
    cu, pos = pack_layout(ids, torch.tensor([2, 3, 8]))
    assert cu.dtype == torch.int32 and cu.tolist() == [0, 3, 4, 9]
    assert pos.tolist() == [[0, 1, 2, 0, 0, 1, 2, 3, 4]]


def test_packed_forward_gives_each_prompt_its_logits_alone() -> None:
    model = tiny_lm()
    ps = prompts([5, 17, 3, 40, 11])
    with torch.inference_mode():
        alone = torch.cat([model(torch.tensor([p]), torch.tensor([len(p) - 1])) for p in ps])
        model.enable_packing()
        ids = torch.tensor([[t for p in ps for t in p]])
        last = torch.tensor([len(p) for p in ps]).cumsum(0) - 1
        packed = model(ids, last)
        one_after = model(torch.tensor([ps[1]]), torch.tensor([len(ps[1]) - 1]))
    assert packed.shape == (5, 97)
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one_after[0], alone[1], atol=0, rtol=0)  # one prompt: transformers' SDPA, as before
    # The test can fail: the same tokens as one causal sequence give other logits for all but the first prompt.
    with torch.inference_mode():
        model.packing = False
        unpacked = model(ids.expand(5, -1), last)
    assert (unpacked[1:] - alone[1:]).abs().max() > 1e-2


def test_pad_right_adds_the_padding_as_prompts_no_longer_than_the_longest() -> None:
    model = tiny_lm()
    model.enable_packing(max_prompt_tokens=9)
    ps = prompts([6, 7])
    ids = torch.tensor([ps[0] + ps[1]])
    last = torch.tensor([5, 12])
    seen = []

    def spy(i, p):
        seen.append((i.shape[1], p.tolist()))
        return model(i, p)

    with torch.inference_mode():
        want = model(ids, last)
        got = PadRight(spy, 8)(ids, last)  # max_prompt defaults to the multiple: one padding prompt
        split = PadRight(spy, 32, max_prompt=9)(ids, last)  # 19 padding tokens: prompts of 9, 9 and 1
        single = PadRight(spy, 8)(torch.tensor([ps[0]]), torch.tensor([5]))
    assert seen == [(16, [5, 12, 15]), (32, [5, 12, 21, 30, 31]), (8, [5])]
    assert got.shape == split.shape == (2, 97)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(split, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(single[0], want[0], atol=1e-5, rtol=1e-5)


def test_masked_attention_one_query_per_block_sees_its_whole_block() -> None:
    torch.manual_seed(0)
    cu_k = torch.tensor([0, 3, 7, 12], dtype=torch.int32)
    q, k, v = torch.randn(3, 4, 8), torch.randn(12, 2, 8), torch.randn(12, 2, 8)
    cu_q = torch.arange(4, dtype=torch.int32)
    got = masked_attention(q, k, v, cu_q, cu_k, 1, 5, False, 0.3)
    for b in range(3):
        lo, hi = int(cu_k[b]), int(cu_k[b + 1])
        kk, vv = (t[lo:hi].repeat_interleave(2, dim=1).transpose(0, 1) for t in (k, v))
        want = torch.softmax(q[b, :, None] @ kk.transpose(1, 2) * 0.3, -1) @ vv  # [H, 1, D]
        torch.testing.assert_close(got[b], want[:, 0], atol=1e-6, rtol=1e-6)
    # causal, the same blocks for q and k: row 4 (block 1 = rows 3..6) sees keys 3 and 4 only
    causal = masked_attention(k, k, v, cu_k, cu_k, 5, 5, True, 0.3)
    kk, vv = (t[3:5].transpose(0, 1) for t in (k, v))
    want = torch.softmax(k[4, :, None] @ kk.transpose(1, 2) * 0.3, -1) @ vv
    torch.testing.assert_close(causal[4], want[:, 0], atol=1e-6, rtol=1e-6)


def test_warmup_shapes_one_call_per_distinct_input() -> None:
    calls = [(5,), (6,), (17,), (3, 4), (4, 4), (2, 2, 4), (16,)]
    # pad 8: (5,) (6,) -> [1, 8]; (3,4) -> 8 tokens, 3 rows with the pad prompt; (4,4) -> 2 rows; (2,2,4) -> 3 rows
    assert warmup_shapes(calls, 8, dynamic=True) == [(17,), (16,), (3, 4), (5,)]
    assert warmup_shapes(calls, 8, dynamic=False) == [(17,), (16,), (3, 4), (4, 4), (5,)]
    assert warmup_shapes(calls, 0, dynamic=True) == [(17,), (16,), (4, 4), (3, 4), (6,), (5,)]
    # pad 32, longest prompt 4: (1, 2) -> 29 padding tokens as 8 prompts of <= 4 -> 10 rows; (3, 4) -> 9 rows
    assert warmup_shapes([(1, 2), (3, 4), (2, 2)], 32, dynamic=False) == [(1, 2), (3, 4)]


def test_packed_pass_predicts_like_batch_one_and_its_times_add_up() -> None:
    model = tiny_lm()
    lengths = [12, 3, 25, 7, 7, 40, 2, 19, 33, 5, 8]
    batch = HostBatch(prompts(lengths), torch.device("cpu"))
    single = run_pass("validation", model, batch, lambda: None, choice_ids=[10, 11, 12, 13])
    model.enable_packing()
    streamed = []
    packed = run_pass("inference", model, batch, lambda: None, log_freq=4, choice_ids=[10, 11, 12, 13],
                      stream=lambda first, preds: streamed.append((first, preds)), pack_tokens=48)
    assert packed.predictions == single.predictions
    assert packed.choice_predictions == single.choice_predictions
    assert packed.forwards == len(plan_packs(lengths, 48)) == 4 and single.forwards == len(lengths)
    assert packed.pack_tokens == 48 and packed.tokens == single.tokens == sum(lengths)
    assert packed.core_s == pytest.approx(sum(packed.core_s_each)) and 0 < packed.core_s <= packed.whole_s
    # Within a pack the time is shared by token count.
    (i, j) = plan_packs(lengths, 48)[1]
    share = [packed.core_s_each[k] / lengths[k] for k in range(i, j)]
    assert max(share) == pytest.approx(min(share))
    assert [k for first, preds in streamed for k in range(first, first + len(preds))] == list(range(len(lengths)))
    assert [p for _, preds in streamed for p in preds] == list(packed.predictions)


def test_packed_smoke_run_reports_the_optimization(smoke_cache) -> None:
    run = packed_run(smoke_cache)
    assert run.code == 0, run.err
    r = run.result
    p = r["packing"]
    assert r["config"]["pack_tokens"] == 200 and "pack_tokens=200" in r["optimizations"]
    assert p["pack_tokens"] == 200 and 1 < p["forwards"] < r["counts"]["questions"]
    assert p["prompts_per_forward"] == pytest.approx(r["counts"]["questions"] / p["forwards"])
    assert p["tokens_per_forward"] * p["forwards"] == pytest.approx(r["counts"]["tokens"])
    assert p["same_predictions_as_validation"] == 1.0 and p["required_same_predictions"] == 0.97  # random weights
    assert any(n.startswith("pack_tokens=200: 100.00%") for n in r["verdict"]["notes"])
    rows = [json.loads(line) for line in (run.output_dir / "predictions.jsonl").read_text().splitlines()]
    assert [x["pred_infer"] for x in rows] == [x["pred_val"] for x in rows]
    # The same run without packing predicts the same (fp32 tiny model), in more forwards.
    plain = shared_runs(smoke_cache).a.result
    assert r["metrics"]["infer_acc"] == plain["metrics"]["infer_acc"] and plain["packing"] is None


@pytest.mark.slow
def test_packed_smoke_run_with_inductor(smoke_cache) -> None:
    run = packed_run(smoke_cache, "--set", "compiler=inductor", "--set", "pad_multiple=16")
    assert run.code == 0, run.err
    r = run.result
    assert r["toolkit_report"]["recompiles"] == 0 and r["verdict"]["status"] == "INVALID"  # --limit: partial
    assert r["packing"]["same_predictions_as_validation"] == 1.0
    assert set(r["optimizations"]) == {"pad_multiple=16", "pack_tokens=200"}


def test_pack_tokens_must_not_be_negative(smoke_cache, tmp_path) -> None:
    run = run_smoke(smoke_cache, tmp_path / "neg", "--set", "pack_tokens=-5")
    assert run.code == 2
    assert run.err.strip().splitlines()[-1].endswith(
        "config key 'pack_tokens': got -5; expected 0 (one prompt per forward) or a positive token budget, e.g. 4096")


@pytest.mark.slow
def test_pruned_last_layer_scores_like_the_full_model_on_its_scored_rows_only() -> None:
    model = tiny_lm()
    ps = prompts([9, 30, 4, 17, 2])
    ids = torch.tensor([[t for p in ps for t in p]])
    last = torch.tensor([len(p) for p in ps]).cumsum(0) - 1
    mlp_rows = []
    model.body.layers[-1].mlp.register_forward_hook(lambda m, inp, out: mlp_rows.append(inp[0].shape[1]))
    with torch.inference_mode():
        alone = torch.cat([model(torch.tensor([p]), torch.tensor([len(p) - 1])) for p in ps])
        model.enable_packing(max_prompt_tokens=30)
        full = model(ids, last)
        model.prune_last_layer()
        pruned = model(ids, last)
        one = model(torch.tensor([ps[1]]), torch.tensor([29]))  # one prompt: the plain path, whole last layer
    assert mlp_rows == [9, 30, 4, 17, 2, ids.shape[1], 5, 30]  # pruned: the last MLP saw only the 5 scored rows
    torch.testing.assert_close(pruned, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pruned, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one[0], alone[1], atol=0, rtol=0)
    # compiled, with fused projections, through PadRight's padding prompts (split at 30 tokens)
    model.fuse_projections()
    torch._dynamo.reset()
    with torch.inference_mode():
        compiled = PadRight(torch.compile(model, backend="inductor", dynamic=True), 64, max_prompt=30)(ids, last)
    torch.testing.assert_close(compiled, alone, atol=1e-5, rtol=1e-5)


def test_prune_last_layer_has_no_effect_without_packing(smoke_cache, tmp_path) -> None:
    run = run_smoke(smoke_cache, tmp_path / "prune", "--set", "prune_last_layer=true")
    assert run.code == 0, run.err
    assert run.result["config"]["prune_last_layer"] is True and run.result["config"]["pack_tokens"] == 0
    assert "prune_last_layer" not in run.result["optimizations"]  # one prompt per forward: nothing pruned
    plain = shared_runs(smoke_cache).a.result
    assert run.result["metrics"]["infer_acc"] == plain["metrics"]["infer_acc"]


def test_pruned_packed_smoke_run_reports_it_and_predicts_like_validation(smoke_cache) -> None:
    run = packed_run(smoke_cache, "--set", "prune_last_layer=true")
    assert run.code == 0, run.err
    r = run.result
    assert {"pack_tokens=200", "prune_last_layer"} <= set(r["optimizations"])
    assert r["packing"]["same_predictions_as_validation"] == 1.0


def test_the_vendors_ragged_attention_reaches_every_packed_attention_call() -> None:
    """The attention kernel given to enable_packing (the vendor's, Vendor.ragged_attention) travels with the
    forward's kwargs through transformers' layers (4.x and 5.x) and the pruned last layer."""
    seen = []

    def spy(*args):
        seen.append(len(args))
        return masked_attention(*args)

    model = tiny_lm()
    ps = prompts([9, 30, 4])
    ids = torch.tensor([[t for p in ps for t in p]])
    last = torch.tensor([len(p) for p in ps]).cumsum(0) - 1
    with torch.inference_mode():
        alone = torch.cat([model(torch.tensor([p]), torch.tensor([len(p) - 1])) for p in ps])
        model.enable_packing(max_prompt_tokens=30, attention=spy)
        layers = model.body.config.num_hidden_layers
        plain = model(ids, last)
        assert seen == [9] * layers
        model.prune_last_layer()
        pruned = model(ids, last)
        assert seen == [9] * (2 * layers)
    torch.testing.assert_close(plain, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pruned, alone, atol=1e-5, rtol=1e-5)


def test_without_a_vendor_kernel_the_case_falls_back_to_masked_attention() -> None:
    from vendors.cpu import VENDOR

    assert getattr(VENDOR, "ragged_attention", None) is None  # the cpu vendor offers none
    model = tiny_lm()
    model.enable_packing(9, None)
    assert model.packed_attention is masked_attention
