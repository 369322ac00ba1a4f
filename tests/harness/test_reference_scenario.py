"""The reference scenario's parts (benchmarks/config/scenarios.py): its config on the shipped YAML files, the case's
reference load path and plain call, the reference toolkit's warm-up rule through the real timed pass, and the
reference's final record (`reference_record`, the `Finish Info` line)."""
from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
import torch

from benchmarks.measure import metrics
from benchmarks.config import scenarios
from benchmarks.config import NoOptions, load_config
from benchmarks.errors import BenchmarkError
from benchmarks.harness.passes import HostBatch, run_pass
from benchmarks.measure.records import PassRecord
from benchmarks.registry import REPO_ROOT, get_case, get_vendor
from benchmarks.harness.toolkits import Eager, Inductor, ReferenceInductor, ReferenceWarmup, reference_toolkit

CONFIGS = REPO_ROOT / "configs"
CASE = get_case("llama2_7b_mmlu")


# -------------------------------------------------------------------------------------------------- config


def _config(vendor: str, scenario: str, *overrides: str, options: type | None = None):
    return load_config(CONFIGS, CASE, vendor, options or get_vendor(vendor).Options, list(overrides),
                       scenario=scenario)


def test_reference_config_on_the_shipped_nvidia_yaml_is_the_reference_s() -> None:
    optimized, reference = _config("nvidia", "optimized"), _config("nvidia", "reference")
    assert optimized.scenario == "optimized" and reference.scenario == "reference"
    # The optimized scenario reads the nvidia YAML: optimizations on, its toolkit keys.
    assert any(o.switched_on(optimized.optimizations[o.name], 'fp16') for o in CASE.optimizations)
    assert optimized.vendor.pad_multiple == 128 and optimized.vendor.sdpa_cudnn is False
    # The reference scenario: every optimization at its default (off) ...
    for opt in CASE.optimizations:
        assert not opt.switched_on(reference.optimizations[opt.name], reference.run.effective_precision), opt.name
        assert reference.optimizations[opt.name] == opt.Options()
    # ... the vendor's Options at their dataclass defaults but for the reference vendor YAML's toolkit keys ...
    defaults = get_vendor("nvidia").Options()
    v = reference.vendor
    assert (v.dynamo_mode, v.dynamo_dynamic, v.pad_multiple) == ("reduce-overhead", True, 0)
    assert v.sdpa_cudnn == defaults.sdpa_cudnn is True  # default SDPA backends
    assert v.expandable_segments == defaults.expandable_segments is False
    assert v.inductor_options == {} and v.compiled_sdpa_cudnn is None
    # ... the harness keys of configurations.yaml, no warm-up of the validation pass.
    r = reference.run
    assert (r.compiler, r.effective_precision, r.batch_size, r.warmup_longest) == ("inductor", "fp16", 1, False)
    assert reference.sources["dynamo_mode"] == reference.sources["warmup_longest"] == scenarios.SOURCE
    assert not any("nvidia_configurations" in src for src in reference.sources.values())


def test_set_applies_on_top_of_the_reference_scenario() -> None:
    c = _config("nvidia", "reference", "dynamo_mode=default", "warmup_longest=true", "pack_tokens=512")
    assert c.vendor.dynamo_mode == "default" and c.run.warmup_longest is True
    assert c.sources["dynamo_mode"] == "--set"
    assert c.optimizations["pack_tokens"].pack_tokens == 512


def test_reference_scenario_ignores_the_cpu_vendor_yaml_and_sets_only_keys_the_vendor_has() -> None:
    cpu = _config("cpu", "reference")
    assert cpu.run.compiler == "inductor" and cpu.run.effective_precision == "fp16"  # cpu YAML: none, fp32
    assert cpu.vendor.dynamo_mode == "reduce-overhead"
    plain = _config("cpu", "reference", options=NoOptions)  # a vendor without inductor keys gets none of them
    assert "dynamo_mode" not in plain.sources and plain.sources["warmup_longest"] == scenarios.SOURCE


def test_unknown_scenario_is_a_usage_error() -> None:
    with pytest.raises(BenchmarkError, match="--scenario 'fast': expected one of optimized, reference"):
        _config("cpu", "fast")


# ---------------------------------------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def ids_last(smoke_data_dir: Path):
    workload = CASE.load_workload(CASE.Params(weight_dir="llama2_7b_hf", mmlu_dir="mmlu_dataset/data",
                                              few_shots=1), smoke_data_dir, 1)
    s = workload.samples[0]
    return torch.tensor([s.input_ids]), torch.tensor([len(s.input_ids) - 1])


def _build(data_dir: Path, precision: str, load_path: str):
    params = CASE.Params(weight_dir="llama2_7b_hf", mmlu_dir="mmlu_dataset/data", few_shots=1)
    return CASE.build_model(params, data_dir, precision=precision, device=torch.device("cpu"), synthetic=False,
                            seed=0, load_path=load_path)


@pytest.mark.parametrize("precision, dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_reference_load_path_casts_after_loading_in_fp32(smoke_data_dir: Path, precision: str, dtype) -> None:
    direct, reference = _build(smoke_data_dir, precision, "direct"), _build(smoke_data_dir, precision, "reference")
    fp32 = _build(smoke_data_dir, "fp32", "reference")
    # The same weights (an fp32 checkpoint cast once either way) ...
    for (name, a), (_, b) in zip(direct.named_parameters(), reference.named_parameters()):
        assert a.dtype == b.dtype == dtype and torch.equal(a, b), name
    # ... but the cast also takes the rotary inv_freq buffer, which the direct load keeps in fp32.
    inv_direct = direct.body.rotary_emb.inv_freq
    inv_reference = reference.body.rotary_emb.inv_freq
    assert inv_direct.dtype == torch.float32 and inv_reference.dtype == dtype
    assert torch.equal(inv_reference, fp32.body.rotary_emb.inv_freq.to(dtype))
    assert torch.equal(inv_direct, fp32.body.rotary_emb.inv_freq)
    assert reference.full_logits and not direct.full_logits


def test_full_logits_is_the_plain_call_s_last_position(smoke_data_dir: Path, ids_last) -> None:
    ids, last = ids_last
    reference, direct = _build(smoke_data_dir, "fp32", "reference"), _build(smoke_data_dir, "fp32", "direct")
    with torch.inference_mode():
        plain = reference.lm(ids).logits[:, -1]  # the reference: model(input_ids).logits, last position
        got = reference(ids, last)
        assert torch.equal(got, plain)
        torch.testing.assert_close(direct(ids, last), plain, atol=1e-5, rtol=1e-5)  # lm_head on one row only
        padded = torch.cat([ids, ids[:, :5]], dim=1)  # causal: right padding does not change the scored row
        torch.testing.assert_close(reference(padded, last), got, atol=1e-5, rtol=1e-5)


def test_unknown_load_path_is_refused(smoke_data_dir: Path) -> None:
    with pytest.raises(BenchmarkError, match="load_path 'fp32': expected one of direct, reference"):
        _build(smoke_data_dir, "fp32", "fp32")


# ------------------------------------------------------------------------------------ the warm-up rule


class _Slow:
    """A model callable that takes `seconds` per forward and counts its calls."""

    def __init__(self, seconds: float):
        self.seconds, self.calls = seconds, 0

    def __call__(self, ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        time.sleep(self.seconds)
        out = torch.zeros(1, 8)
        out[0, int(ids[0, 0]) % 8] = 1.0
        return out


def test_reference_warmup_rule_through_the_timed_pass() -> None:
    n, step = 14, 0.004
    slow = _Slow(step)
    fn = ReferenceWarmup(slow, lambda: None, calls=scenarios.REFERENCE_WARMUP_CALLS,
                         forwards=scenarios.REFERENCE_WARMUP_FORWARDS)
    batch = HostBatch([[k] * (3 + k) for k in range(n)], torch.device("cpu"))
    rec = run_pass("inference", fn, batch, lambda: None, log_freq=100)
    # The first 10 calls each ran 10 extra forwards first, the later ones none: 14 + 100 forwards.
    assert slow.calls == n + 100 and fn.warmup_calls == 10 and fn.warmup_forwards == 100
    assert rec.predictions == tuple(k % 8 for k in range(n))
    # The extra forwards' time is out of core (one forward per prompt remains) but inside whole.
    assert fn.untimed_total_s >= 100 * step
    assert n * step <= rec.core_s < n * step + 0.5 * 100 * step
    assert rec.whole_s >= rec.core_s + fn.untimed_total_s
    assert all(t >= step for t in rec.core_s_each)
    assert fn.take_untimed_s() == 0.0  # handed to the pass call by call


@pytest.mark.slow  # imports inductor's compile machinery: ~1 s
def test_reference_inductor_compiles_nothing_in_prepare() -> None:
    cpu = get_vendor("cpu")
    slow = _Slow(0.0)
    model = torch.nn.Linear(4, 4)  # never called: prepare only wraps (torch.compile is lazy)
    toolkit = reference_toolkit(Inductor)(cpu.Options(dynamo_mode="reduce-overhead"), cpu)
    start = time.perf_counter()
    fn = toolkit.prepare(model, [(5,), (7,)])
    assert time.perf_counter() - start < 5.0 and isinstance(fn, ReferenceWarmup) and slow.calls == 0
    report = toolkit.report()
    assert report.name == "inductor" and report.recompiles == 0
    assert report.details["lazy_compile"] is True and report.details["warmed_shapes"] == 0
    assert report.details["compile_kwargs"] == {"backend": "inductor", "dynamic": True, "mode": "reduce-overhead"}
    assert report.details["reference_warmup"] == {"calls": 0, "forwards": 0, "forwards_per_call": 10,
                                                  "untimed_s": 0.0}


def test_reference_toolkit_keeps_the_vendor_class_hooks() -> None:
    from vendors.nvidia.inductor import CudaInductor, _MarkStep

    assert reference_toolkit(Eager) is Eager
    cuda = reference_toolkit(CudaInductor)
    assert issubclass(cuda, ReferenceInductor) and issubclass(cuda, CudaInductor) and cuda.name == "inductor"
    assert cuda.prepare is ReferenceInductor.prepare  # the reference's lazy compile ...
    toolkit = cuda(get_vendor("nvidia").Options(), get_vendor("nvidia"))
    assert isinstance(toolkit.wrap_compiled(lambda i, l: i), _MarkStep)  # ... with the CUDA graph step marks
    assert reference_toolkit(cuda) is cuda

    class Engine:
        name = "engine"

    with pytest.raises(BenchmarkError, match="toolkit 'engine' has no reference semantics"):
        reference_toolkit(Engine)


def test_reference_scenario_compiles_with_the_vendors_compiling_toolkit_whatever_its_name() -> None:
    from benchmarks.harness.toolkits import reference_compiler

    class AcmeCompile(Inductor):
        name = "acme_compile"

    class AcmeFused(Inductor):
        name = "acme_fused"
        reference_compiler = True

    class Engine:
        name = "engine"

    assert reference_compiler({"none": Eager, "inductor": Inductor}, "inductor") == "inductor"
    assert reference_compiler({"none": Eager, "acme_compile": AcmeCompile, "engine": Engine}, "inductor") == \
        "acme_compile"  # the one subclass of Inductor
    assert reference_compiler({"none": Eager, "acme_compile": AcmeCompile, "acme_fused": AcmeFused},
                              "inductor") == "acme_fused"  # among several, the declared one
    assert reference_compiler({"none": Eager, "engine": Engine}, "none") == "none"
    with pytest.raises(BenchmarkError, match="offers no toolkit of that name and no toolkit whose class subclasses "
                                             "benchmarks.toolkits.Inductor; or choose one with --set compiler=NAME "
                                             r"\(known: engine, none\)"):
        reference_compiler({"none": Eager, "engine": Engine}, "inductor")
    with pytest.raises(BenchmarkError, match="several compiling toolkits \\(acme_compile, inductor\\); set "
                                             "reference_compiler = True"):
        reference_compiler({"inductor2": Eager, "acme_compile": AcmeCompile, "inductor": AcmeCompile}, "x")


def test_reference_config_takes_the_vendors_compiling_toolkit_and_says_so() -> None:
    from benchmarks.session import _reference_compiler

    class AcmeCompile(Inductor):
        name = "acme_compile"

    class Acme:
        def toolkits(self):
            return {"none": Eager, "acme_compile": AcmeCompile}

    config = _config("cpu", "reference")
    assert config.run.compiler == "inductor"
    renamed = _reference_compiler(config, Acme(), "acme")
    assert renamed.run.compiler == "acme_compile" and renamed.vendor is config.vendor
    assert renamed.sources["compiler"] == ("scenario reference (vendor acme's compiling toolkit for the "
                                           "reference's 'inductor')")
    assert _reference_compiler(config, get_vendor("cpu"), "cpu") is config  # it has one named inductor


def test_reference_scenario_without_a_compiler_skips_the_inference_pass_and_counts_no_prepare_in_whole() -> None:
    assert scenarios.skips_inference("reference", "none") and not scenarios.skips_inference("optimized", "none")
    assert not scenarios.skips_inference("reference", "inductor")
    assert scenarios.prepare_in_whole("optimized") and not scenarios.prepare_in_whole("reference")
    infer = _record("inference", 1000, 0.5, 1.0, (1,))
    kw = dict(e2e_s=3.0, val=None, infer=infer, labels=[1], flops_per_token=2.0, peak=metrics.PeakFlops(None, "x"),
              memory=None, compile_s=1.0, val_warmup_s=None)
    assert metrics.compute(**kw).p_infer_whole == 500.0  # the pass and the 1 s of prepare
    assert metrics.compute(**kw, prepare_in_whole=False).p_infer_whole == 1000.0  # the pass alone


# ------------------------------------------------------------------------------------ reference_record


def _record(name: str, tokens: int, core: float, whole: float, preds: tuple[int, ...]) -> PassRecord:
    return PassRecord(name=name, n_questions=len(preds), tokens=tokens, core_s=core, whole_s=whole,
                      predictions=preds, core_s_each=(core / len(preds),) * len(preds), nonfinite_questions=0)


def test_reference_record_has_the_reference_s_keys_units_and_rounding() -> None:
    val = _record("validation", 3000, 0.7, 0.9, (1, 2, 3))
    infer = _record("inference", 3000, 0.3, 0.6, (1, 2, 0))
    rec = metrics.reference_record(vendor="nvidia", compiler="inductor", precision="fp16", batch_size=1,
                                   flops_per_token=14e9, e2e_s=12.34567, val=val, infer=infer, labels=[1, 2, 3])
    assert list(rec) == ["vendor", "compiler", "precision", "batchsize", "flops", "e2e_time(second)",
                         "p_validation_whole(qps)", "p_validation_core(qps)", "p_inference_whole(qps)",
                         "*p_inference_core(qps)", "val_average_acc", "infer_average_acc"]
    assert rec["e2e_time(second)"] == 12.346
    assert rec["p_validation_whole(qps)"] == 3333.333 and rec["p_validation_core(qps)"] == 4285.714
    assert rec["p_inference_whole(qps)"] == 5000.0 and rec["*p_inference_core(qps)"] == 10000.0
    assert rec["flops"] == 14e9 * 10000.0  # achieved FLOP/s, as FlagPerf's collector expects
    assert rec["val_average_acc"] == 1.0 and rec["infer_average_acc"] == 0.667
    line = f"2026-12-01 14:52:53,421 INFO Finish Info: {rec!r}"
    assert ast.literal_eval("{" + line.split("{")[1]) == rec  # how FlagPerf's collector reads the log


def test_reference_record_without_an_inference_or_validation_pass() -> None:
    val = _record("validation", 1000, 0.5, 1.0, (1,))
    rec = metrics.reference_record(vendor="cpu", compiler="none", precision="fp32", batch_size=1, flops_per_token=2.0,
                                   e2e_s=1.0, val=val, infer=None, labels=[1])
    assert rec["*p_inference_core(qps)"] is None and rec["infer_average_acc"] is None
    assert rec["flops"] == 2.0 * 2000.0  # the validation pass's core throughput then
    rec = metrics.reference_record(vendor="cpu", compiler="none", precision="fp32", batch_size=1, flops_per_token=2.0,
                                   e2e_s=1.0, val=None, infer=None, labels=[1])
    assert rec["flops"] is None and rec["p_validation_whole(qps)"] is None
