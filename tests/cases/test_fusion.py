"""fuse_projections: one GEMM for q/k/v and one for gate/up in compiled graphs, same weights, same logits."""
from __future__ import annotations

import pytest

import torch
import torch.nn.functional as F

from benchmarks.llama2_7b_mmlu import packing
from results_support import run_smoke
from test_packing import prompts, tiny_lm


def count_linears(model, *args) -> int:
    """F.linear calls in the graph torch.compile traces for model(*args)."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    with torch.inference_mode():
        torch.compile(model, backend=backend, dynamic=True)(*args)
    return sum(1 for gm in graphs for n in gm.graph.nodes if n.op == "call_function" and n.target is F.linear
               or getattr(n.target, "__name__", "") == "linear")


def test_fusion_shares_the_weights_and_leaves_the_eager_model_unchanged() -> None:
    model = tiny_lm()
    ids, last = torch.tensor([prompts([19])[0]]), torch.tensor([18])
    storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    numel = sum(p.numel() for p in model.parameters())
    with torch.inference_mode():
        before = model(ids, last)
        model.fuse_projections()
        model.fuse_projections()  # idempotent
        after = model(ids, last)
    torch.testing.assert_close(after, before, atol=0, rtol=0)  # eager: the original forwards
    attn, mlp = model.body.layers[0].self_attn, model.body.layers[0].mlp
    assert type(attn).__name__ == "FusedLlamaAttention" and type(mlp).__name__ == "FusedLlamaMLP"
    assert attn.qkv_proj.weight.shape == (64 + 2 * 32, 64) and mlp.gate_up_proj.weight.shape == (2 * 128, 64)
    # q/k/v and gate/up are views of the fused tensors: no extra memory
    assert attn.k_proj.weight.untyped_storage().data_ptr() == attn.qkv_proj.weight.untyped_storage().data_ptr()
    assert mlp.up_proj.weight.untyped_storage().data_ptr() == mlp.gate_up_proj.weight.untyped_storage().data_ptr()
    assert torch.equal(attn.qkv_proj.weight[64:96], attn.k_proj.weight)
    assert sum(p.numel() for p in model.parameters()) == numel
    assert len({p.untyped_storage().data_ptr() for p in model.parameters()}) == len(storages) - 2 * 3


@pytest.mark.slow
def test_compiled_graph_has_fused_gemms_and_the_same_logits() -> None:
    model = tiny_lm()
    ids, last = torch.tensor([prompts([23])[0]]), torch.tensor([22])
    # 2 layers x (q, k, v, o, gate, up, down) + lm_head
    assert count_linears(model, ids, last) == 2 * 7 + 1
    with torch.inference_mode():
        want = model(ids, last)
    model.fuse_projections()
    assert count_linears(model, ids, last) == 2 * 4 + 1  # qkv, o, gate_up, down per layer
    torch._dynamo.reset()
    with torch.inference_mode():
        got = torch.compile(model, backend="inductor", dynamic=True)(ids, last)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_fused_and_packed_compiled_model_scores_each_prompt_as_alone(monkeypatch) -> None:
    model = tiny_lm()
    ps = prompts([9, 30, 4, 17])
    with torch.inference_mode():
        alone = torch.cat([model(torch.tensor([p]), torch.tensor([len(p) - 1])) for p in ps])
    model.enable_packing(max_prompt_tokens=30)
    model.fuse_projections()
    rotated = []  # the fused packed path keeps q/k token-major: [T, heads, head_dim] into rotary
    original = packing.apply_rotary
    monkeypatch.setattr(packing, "apply_rotary", lambda x, c, s: rotated.append(tuple(x.shape)) or original(x, c, s))
    torch._dynamo.reset()
    with torch.inference_mode():
        packed = torch.compile(model, backend="inductor", dynamic=True)(
            torch.tensor([[t for p in ps for t in p]]), torch.tensor([len(p) for p in ps]).cumsum(0) - 1)
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)
    assert rotated[:2] == [(60, 4, 16), (60, 2, 16)] and len(rotated) == 2 * 2  # q and k, two layers


@pytest.mark.slow  # compiles the smoke model with inductor
def test_fused_smoke_run_reports_it_and_predicts_like_validation(smoke_cache, tmp_path) -> None:
    run = run_smoke(smoke_cache, tmp_path / "fused", "--set", "compiler=inductor", "--set", "fuse_projections=true",
                    "--set", "pack_tokens=300")
    assert run.code == 0, run.err
    r = run.result
    assert r["optimizations"] == ["pack_tokens=300", "fuse_projections"]
    assert r["toolkit_report"]["recompiles"] == 0
    assert r["packing"]["same_predictions_as_validation"] == 1.0


def test_fuse_projections_needs_a_compiler(smoke_cache, tmp_path) -> None:
    run = run_smoke(smoke_cache, tmp_path / "bad", "--set", "fuse_projections=true")
    assert run.code == 2
    assert run.err.strip().splitlines()[-1].endswith(
        "config key 'fuse_projections': got True; expected false with compiler 'none' (it changes compiled graphs "
        "only): add --set fuse_projections=false")
