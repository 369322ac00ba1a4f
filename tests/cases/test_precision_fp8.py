"""precision fp8 and packed_attention fa4 as the config, the vendors and the harness see them (on the CPU), and
the compile cache's state as the inductor toolkit records it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from benchmarks.config import load_config
from benchmarks.errors import BenchmarkError
from benchmarks.contracts import PRECISIONS, is_lossy, torch_dtype, validation_precision
from benchmarks.llama2_7b_mmlu import CASE
from benchmarks.harness.optimizations import active
from benchmarks.registry import get_case, get_vendor
from benchmarks.harness.toolkits import cache_state
from vendors.nvidia import NvidiaVendor, ragged

REPO = Path(__file__).resolve().parents[2]


def config(vendor: str = "cpu", *overrides: str, scenario: str = "optimized", case=CASE):
    return load_config(REPO / "configs", case, vendor, get_vendor(vendor).Options, list(overrides), scenario=scenario)


def test_fp8_is_a_precision_validated_at_fp16():
    assert "fp8" in PRECISIONS and is_lossy("fp8") and validation_precision("fp8") == "fp16"
    assert torch_dtype("fp8") == torch.float16  # the plain model's dtype: the validation pass runs it
    assert [p for p in PRECISIONS if is_lossy(p)] == ["fp8"]


def test_set_precision_fp8_switches_the_case_s_fp8_optimization_on_and_nothing_else_does():
    fp8 = config("nvidia", "precision=fp8")
    names = [a.opt.name for a in active(CASE.optimizations, fp8)]
    assert fp8.run.effective_precision == "fp8" and "fp8_linears" in names
    assert names.index("fp8_linears") < names.index("fuse_projections")  # fusion fuses the fp8 weights
    assert "fp8_linears" not in [a.opt.name for a in active(CASE.optimizations, config("nvidia"))]
    assert fp8.sources["precision"] == "--set"


def test_the_reference_scenario_refuses_fp8_naming_the_key_and_the_fix():
    with pytest.raises(BenchmarkError, match=r"--set: config key 'precision': fp8 is not a precision of the "
                                             r"reference.*--scenario optimized"):
        config("nvidia", "precision=fp8", scenario="reference")


def test_a_case_that_does_not_implement_fp8_refuses_it():
    parity = get_case("parity")
    with pytest.raises(BenchmarkError, match="'precision': got 'fp8', which this case does not implement"):
        load_config(REPO / "tests" / "cases" / "parity" / "configs", parity, "cpu", get_vendor("cpu").Options,
                    ["precision=fp8"])


def test_no_validation_with_fp8_is_refused_as_for_any_optimization():
    with pytest.raises(BenchmarkError, match="no_validation.*fp8_linears"):
        config("cpu", "precision=fp8", "no_validation=true")


def test_which_vendors_run_fp8(monkeypatch):
    assert get_vendor("cpu").supports("fp8") is True  # torch._scaled_mm on the host (CPU build of torch 2.13)
    nvidia = NvidiaVendor()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for capability, runs in (((8, 0), False), ((8, 6), False), ((8, 9), True), ((9, 0), True), ((10, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert nvidia.supports("fp8") is runs, capability
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert nvidia.supports("fp8") is False


def test_the_template_vendor_does_not_claim_fp8():
    import importlib.util

    import sys

    spec = importlib.util.spec_from_file_location("template_vendor", REPO / "vendors" / "template" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["template_vendor"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["template_vendor"]
    assert module.VENDOR.supports("fp16") and not module.VENDOR.supports("fp8")


# ------------------------------------------------------------------------------------------------- fa4


def test_fa4_is_refused_at_fp32_naming_the_key_and_the_fix():
    with pytest.raises(BenchmarkError, match=r"config key 'packed_attention': got 'fa4'; expected flash at fp32"):
        ragged.select("fa4", "fp32")


def test_fa4_without_the_package_or_a_hopper_card_is_refused_in_one_line(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_fa4(name, *args, **kwargs):
        if name.startswith("flash_attn"):
            raise ModuleNotFoundError(f"No module named '{name}'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fa4)
    with pytest.raises(BenchmarkError) as err:
        ragged.select("fa4", "fp16")
    line = str(err.value)
    assert "\n" not in line and "config key 'packed_attention': got 'fa4'" in line
    assert "requirements-fa4.txt" in line and "--set packed_attention=flash" in line


def test_fa4_on_a_card_older_than_hopper_says_so(monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))
    monkeypatch.setitem(sys.modules, "flash_attn.cute", types.ModuleType("flash_attn.cute"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert "compute capability 8.0" in ragged.fa4_problem()
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert ragged.fa4_problem() is None


def test_the_nvidia_key_accepts_fa4_and_the_config_check_refuses_it_where_it_cannot_run():
    cfg = config("nvidia", "packed_attention=fa4")
    assert cfg.vendor.packed_attention == "fa4"
    if ragged.fa4_problem() is None:
        pytest.skip("FlashAttention-4 runs here")
    vendor = NvidiaVendor()
    vendor.configure(cfg.vendor)
    from benchmarks.config import check_optimizations

    with pytest.raises(BenchmarkError, match="packed_attention"):
        check_optimizations(CASE.optimizations, cfg, vendor)


@pytest.mark.skipif(ragged.fa4_problem() is not None, reason=f"FlashAttention-4 cannot run here: {ragged.fa4_problem()}")
def test_fa4_matches_plain_attention_per_block_eager_and_compiled():
    gen = torch.Generator().manual_seed(0)
    lens, heads, dim = [5, 130, 77], 4, 128
    q, k, v = (torch.randn(sum(lens), heads, dim, generator=gen) for _ in range(3))
    cu = torch.tensor([0, *lens]).cumsum(0).to(torch.int32)
    args = [t.to("cuda", torch.float16) for t in (q, k, v)] + [cu.cuda(), cu.cuda(), max(lens), max(lens), True,
                                                               dim ** -0.5]
    with torch.inference_mode():
        eager = ragged.fa4(*args).float().cpu()
        compiled = torch.compile(lambda *a: ragged.fa4(*a) + 0.0)(*args).float().cpu()
    for b, n in enumerate(lens):
        lo = int(cu[b])
        qq, kk, vv = (t[lo:lo + n].transpose(0, 1) for t in (q, k, v))
        scores = qq @ kk.transpose(1, 2) * dim ** -0.5 + torch.full((n, n), float("-inf")).triu(1)
        want = (torch.softmax(scores, -1) @ vv).transpose(0, 1)
        torch.testing.assert_close(eager[lo:lo + n], want, atol=2e-2, rtol=2e-2)
        torch.testing.assert_close(compiled[lo:lo + n], want, atol=2e-2, rtol=2e-2)


# ------------------------------------------------------------------------------------------- compile cache


@pytest.mark.parametrize("delta, earlier, state", [
    ({"fxgraph_cache_miss": 2, "autograd_cache_miss": 2}, 0, "cold"),
    ({"fxgraph_cache_miss": 2}, 7, "cold"),  # other models' entries only
    ({"fxgraph_cache_hit": 1, "fxgraph_cache_miss": 10}, 0, "cold"),  # a hit on its own graph: still cold
    ({"fxgraph_cache_hit": 2, "autograd_cache_hit": 1}, 3, "warm"),
    ({"fxgraph_cache_hit": 1, "fxgraph_cache_miss": 1}, 3, "partial"),
    ({"fxgraph_cache_hit": 2, "autograd_cache_hit": 1, "autograd_cache_miss": 1}, 3, "warm"),  # autograd: not decisive
    ({}, 3, "none"),
])
def test_cache_state_from_the_counters(delta, earlier, state):
    keys = ("fxgraph_cache_hit", "fxgraph_cache_miss", "autograd_cache_hit", "autograd_cache_miss")
    before = {**dict.fromkeys(keys, 5), "entries": earlier}
    after = {**{k: 5 + delta.get(k, 0) for k in keys}, "entries": earlier + delta.get("fxgraph_cache_miss", 0)}
    got = cache_state(before, after)
    assert got["state"] == state and all(got[k] == delta.get(k, 0) for k in keys) and got["dir"]
    assert got["entries_before"] == earlier


@pytest.mark.slow
def test_the_inductor_toolkit_records_a_cold_then_a_warm_compile_cache(tmp_path, monkeypatch):
    """compile_cache_dir: an empty folder compiles cold; the same folder again (a new dynamo state, as a new
    process has) is found warm, and the report says so."""
    import dataclasses

    from benchmarks.harness.toolkits import Inductor, InductorOptions

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    vendor = get_vendor("cpu")
    options = dataclasses.replace(InductorOptions(), compile_cache_dir=str(tmp_path / "cache"))

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(50, 16)
            self.out = torch.nn.Linear(16, 50)

        def forward(self, ids, last):
            return self.out(torch.relu(self.emb(ids))[0, last])

    states = []
    for _ in range(2):
        torch._dynamo.reset()
        toolkit = Inductor(options, vendor)
        toolkit.prepare(Tiny(), [(7,), (12,)])
        report = toolkit.report()
        states.append(report.compile_cache["state"])
        assert report.compile_cache["dir"] == str((tmp_path / "cache").resolve())
        assert report.details["compiling_calls_s"] > 0 and len(report.details["warmup_calls"]) == 2
    assert states == ["cold", "warm"]
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str((tmp_path / "cache").resolve())


@pytest.mark.slow
def test_the_fa4_op_compiles_into_one_graph_with_the_packed_model(monkeypatch):
    """The op is registered at import with a fake (shape) kernel: torch.compile keeps the packed model in one graph
    (the GPU run of 2026-12-05 showed 11 graphs when the op was defined lazily inside the first traced call).
    Here a CPU kernel stands in for FlashAttention-4's (the case's masked attention), so the test runs anywhere."""
    import transformers

    from benchmarks.llama2_7b_mmlu import packing
    from benchmarks.llama2_7b_mmlu.model import LastTokenLM

    def on_cpu(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale):
        return packing.masked_attention(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale).contiguous()

    lib = torch.library.Library("llama_bench", "IMPL")  # dropped at the end of the test, with its kernel
    lib.impl("fa4_varlen_fwd", on_cpu, "CPU")
    try:
        torch.manual_seed(0)
        cfg = transformers.LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=4)
        model = LastTokenLM(transformers.LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa")).eval()
        ids, last = torch.randint(0, 300, (1, 50)), torch.tensor([9, 29, 49])
        with torch.inference_mode():
            alone = torch.cat([model(ids[:, a:b + 1], torch.tensor([b - a])) for a, b in ((0, 9), (10, 29), (30, 49))])
        model.enable_packing(20, ragged.fa4)
        model.prune_last_layer()
        model.fuse_projections()
        torch._dynamo.reset()
        with torch.inference_mode():
            explained = torch._dynamo.explain(model)(ids, last)
            assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
            torch._dynamo.reset()
            packed = torch.compile(model, dynamic=True)(ids, last)
        torch.testing.assert_close(packed, alone, atol=1e-4, rtol=1e-4)
    finally:
        lib._destroy()
