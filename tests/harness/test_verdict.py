"""The verdict rules of benchmarks.measure.verdict, on crafted evidence (no model needed)."""
from __future__ import annotations

import dataclasses

import pytest

from benchmarks.measure import metrics as M
from benchmarks.measure import verdict as V
from benchmarks.contracts import PeakFlops
from benchmarks.llama2_7b_mmlu import CASE
from benchmarks.measure.metrics import Metrics
from benchmarks.measure.records import PassRecord


def metrics(acc: float) -> Metrics:
    return Metrics(e2e_time=1.0, p_val_whole=1.0, p_val_core=1.0, p_infer_whole=1.0, p_infer_core=1.0, mfu=None,
                   mfu_reason="x", val_acc=acc, infer_acc=acc, mem_used_gib=1.0, mem_total_gib=2.0,
                   compile_time=0.0, val_warmup_time=0.0, agreement=1.0)


def evidence(acc: float = 0.458, synthetic: bool = False, limit=None, smoke=False, recompiles=0, fallback=None,
             peak=PeakFlops(312e12, "table"), **kw) -> V.Evidence:
    return V.Evidence(smoke=smoke, limit=limit, synthetic_weights=synthetic, recompiles=recompiles,
                      compile_fallback=fallback, passes=(), metrics=metrics(acc), peak=peak,
                      reference_accuracy=CASE.reference_accuracy, accuracy_tolerance=CASE.accuracy_tolerance, **kw)


@pytest.mark.parametrize("acc, valid", [(0.458, True), (0.4675, True), (0.47, False), (0.30, False)])
def test_real_weights_accuracy_must_match_the_reference(acc, valid):
    verdict = V.judge(evidence(acc))
    assert (verdict["status"] == "VALID") is valid
    assert verdict["accuracy_meaningful"] is True
    if not valid:
        assert any("outside the reference 0.458" in r for r in verdict["reasons"])


def test_a_case_without_reference_accuracy_has_no_accuracy_rule():
    verdict = V.judge(dataclasses.replace(evidence(0.1), reference_accuracy=None))
    assert verdict["status"] == "VALID"


def test_synthetic_weights_are_speed_only_never_valid_and_skip_the_accuracy_check():
    verdict = V.judge(evidence(0.0, synthetic=True, peak=PeakFlops(1.0, "t")))
    assert verdict["status"] == "SPEED-ONLY" and verdict["accuracy_meaningful"] is False
    assert any("not meaningful" in n for n in verdict["notes"])


def test_each_invalidating_condition_is_a_reason():
    nonfinite = PassRecord("inference", 1, 1, 1.0, 1.0, (1,), (1.0,), 1)
    verdict = V.judge(dataclasses.replace(
        evidence(0.0, synthetic=True, limit=3, smoke=True, recompiles=2, fallback="RuntimeError: boom",
                 peak=PeakFlops(None, "unknown device")), passes=(nonfinite,)))
    text = " | ".join(verdict["reasons"])
    assert verdict["status"] == "INVALID"
    for part in ("smoke", "--limit 3", "2 recompilation", "toolkit failed", "boom",
                 "1 question(s) with non-finite logits in the inference pass"):
        assert part in text
    assert any("unknown device" in n for n in verdict["notes"])


def test_repeat_runs_nonfinite_is_a_reason_and_differing_predictions_a_note():
    runs = [{"run": 2, "nonfinite_questions": {"inference": 3}, "predictions_differ": {"inference": 4}}]
    verdict = V.judge(evidence(repeat_runs=runs))
    assert verdict["reasons"] == ["3 question(s) with non-finite logits in the inference pass of repeat run 2"]
    assert "repeat run 2: 4 inference prediction(s) differ from run 1" in verdict["notes"]


def record(name, preds, forwards):
    n = len(preds)
    return PassRecord(name, n, 10 * n, 1.0, 1.0, tuple(preds), (1.0 / n,) * n, 0,
                      forwards=forwards, pack_tokens=4096 if forwards < n else 0)


@pytest.mark.parametrize("differ, valid", [(0, True), (2, True), (3, False)])  # 2 of 2000: exactly 99.9%
def test_packing_must_keep_batch_one_predictions_with_real_weights(differ, valid):
    val, infer = record("validation", [7] * 2000, 2000), record("inference", [8] * differ + [7] * (2000 - differ), 200)
    packing = M.packing(infer, val, V.PACKING_MIN_SAME)
    assert packing["same_predictions_as_validation"] == (2000 - differ) / 2000
    assert packing["forwards"] == 200 and packing["prompts_per_forward"] == 10 and packing["tokens_per_forward"] == 100
    e = evidence(packing=packing, optimizations=["pack_tokens=4096"])
    verdict = V.judge(dataclasses.replace(e, metrics=dataclasses.replace(e.metrics, agreement=(2000 - differ) / 2000)))
    assert (verdict["status"] == "VALID") is valid, verdict
    if not valid:
        assert verdict["reasons"] == ["pack_tokens=4096: 99.85% of inference predictions equal the validation "
                                      "pass's (batch 1, plain model); required 99.9%"]


def with_agreement(e: V.Evidence, same: float | None) -> V.Evidence:
    return dataclasses.replace(e, metrics=dataclasses.replace(e.metrics, agreement=same))


@pytest.mark.parametrize("same, status", [(0.985, "SPEED-ONLY"), (0.97, "SPEED-ONLY"), (0.969, "INVALID")])
def test_random_weights_have_their_own_agreement_floor(same, status):
    verdict = V.judge(with_agreement(evidence(0.0, synthetic=True, optimizations=["fuse_projections"]), same))
    assert verdict["status"] == status, verdict
    assert ("required 97.0% with random weights" in " ".join(verdict["reasons"] + verdict["notes"]))


def test_any_named_optimization_is_checked_not_only_packing():
    verdict = V.judge(with_agreement(evidence(optimizations=["fuse_projections"]), 0.99))
    assert verdict["status"] == "INVALID" and verdict["reasons"][0].startswith("fuse_projections: 99.00%")
    plain = V.judge(with_agreement(evidence(), 0.5))  # no optimization: the plain model twice, nothing to check
    assert plain["status"] == "VALID"


@pytest.mark.parametrize("key, value, valid", [("mfu", 1.2, False), ("mfu", 0.0, False), ("mfu", 0.62, True),
                                               ("mfu_executed", 35.7, False), ("mfu_executed", 0.58, True)])
def test_impossible_mfu_is_invalid(key, value, valid):
    e = evidence()
    verdict = V.judge(dataclasses.replace(e, metrics=dataclasses.replace(e.metrics, **{key: value})))
    assert (verdict["status"] == "VALID") is valid, verdict
    if not valid:
        assert f"{key} " in verdict["reasons"][0] and "impossible" in verdict["reasons"][0]


def test_an_overridden_peak_is_named_and_core_above_whole_is_invalid():
    verdict = V.judge(evidence(peak=PeakFlops(1e6, "vendor YAML peak_flops"), peak_source="--set"))
    assert any("peak FLOP/s overridden (1e+06 from --set)" in n for n in verdict["notes"])
    bad = PassRecord("inference", 1, 10, 2.0, 1.0, (1,), (2.0,), 0)
    assert V.judge(dataclasses.replace(evidence(), passes=(bad,)))["reasons"] == [
        "inference pass: core time 2.000 s exceeds its wall time 1.000 s"]


@pytest.mark.parametrize("scenario, status", [("optimized", "INVALID"), ("reference", "VALID")])
def test_graph_recordings_and_recompiles_in_the_timed_pass(scenario, status):
    verdict = V.judge(evidence(recompiles=1, graph_recordings=3, scenario=scenario))
    assert verdict["status"] == status
    text = " ".join(verdict["reasons"] + verdict["notes"])
    assert "1 recompilation(s)" in text and "3 CUDA graph recording(s)" in text


def test_the_case_deviations_make_the_run_invalid_and_accuracy_not_meaningful():
    verdict = V.judge(evidence(deviations=("the model is not Llama-2-7B: layers=2 (expected 32)",)))
    assert verdict["status"] == "INVALID" and verdict["accuracy_meaningful"] is False
    assert verdict["reasons"] == ["the model is not Llama-2-7B: layers=2 (expected 32)"]


def test_without_a_validation_pass_the_predictions_are_not_compared():
    infer = record("inference", [2] * 5 + [1] * 95, 10)
    packing = M.packing(infer, None, V.PACKING_MIN_SAME)
    verdict = V.judge(with_agreement(evidence(packing=packing, optimizations=["pack_tokens=4096"]), None))
    assert packing["same_predictions_as_validation"] is None
    assert any("not compared with the plain model (no validation pass)" in n for n in verdict["notes"])
    assert M.packing(record("inference", [1] * 10, 10), None, V.PACKING_MIN_SAME) is None  # no packs, no figures


# ------------------------------------------------------------------------------------------------- fp8


def lossy(val_acc: float, infer_acc: float, agreement: float, synthetic: bool = False, **kw) -> dict:
    m = dataclasses.replace(metrics(val_acc), infer_acc=infer_acc, agreement=agreement)
    return V.judge(dataclasses.replace(evidence(val_acc, synthetic=synthetic, **kw), metrics=m, precision="fp8",
                                       optimizations=("fp8_linears=e4m3 per-row",)))


@pytest.mark.parametrize("infer_acc, status", [(0.458, "VALID"), (0.4535, "VALID"), (0.4533, "INVALID"),
                                               (0.40, "INVALID")])
def test_fp8_with_real_weights_keeps_99_percent_of_its_own_fp16_accuracy(infer_acc, status):
    """MLPerf Inference's rule: >= 99% of the plain model's accuracy (0.99 x 45.8% = 45.342%); predictions may
    differ from the plain model's (here 93% agree), which the fp16 agreement rule would refuse."""
    verdict = lossy(0.458, infer_acc, 0.93)
    assert verdict["status"] == status, verdict
    findings = verdict["notes"] if status == "VALID" else verdict["reasons"]
    text = next(f for f in findings if f.startswith("precision fp8"))
    assert f"infer_acc {100 * infer_acc:.2f}%" in text and "fp16 validation pass's 45.80%" in text
    assert "MLPerf" in text and "93.00% of inference predictions equal" in text
    assert not any("outside the reference" in r and "infer_acc" in r for r in verdict["reasons"])


def test_fp8_validation_accuracy_still_has_to_be_the_reference_s():
    verdict = lossy(0.40, 0.40, 0.95)
    assert verdict["status"] == "INVALID" and any("val_acc 0.400" in r for r in verdict["reasons"])


@pytest.mark.parametrize("same, status", [(0.96, "SPEED-ONLY"), (V.LOSSY_RANDOM_WEIGHTS_MIN_SAME, "SPEED-ONLY"),
                                          (V.LOSSY_RANDOM_WEIGHTS_MIN_SAME - 0.01, "INVALID")])
def test_fp8_with_random_weights_is_held_to_its_measured_agreement_floor(same, status):
    verdict = lossy(0.0, 0.0, same, synthetic=True)
    assert verdict["status"] == status
    text = " ".join(verdict["notes"] + verdict["reasons"])
    assert f"{100 * same:.2f}% of inference predictions equal the fp16 validation pass's" in text
    assert f"required {100 * V.LOSSY_RANDOM_WEIGHTS_MIN_SAME:.0f}% with random weights" in text


def test_the_agreement_floors_by_precision():
    assert V.agreement_floor(False) == V.PACKING_MIN_SAME and V.agreement_floor(True) == V.RANDOM_WEIGHTS_MIN_SAME
    assert V.agreement_floor(False, "fp8") is None  # the accuracy rule instead
    assert V.agreement_floor(True, "fp8") == V.LOSSY_RANDOM_WEIGHTS_MIN_SAME
    assert V.agreement_floor(True, "bf16") == V.RANDOM_WEIGHTS_MIN_SAME


@pytest.mark.parametrize("state, noted", [("warm", True), ("partial", True), ("cold", False), ("none", False),
                                          (None, False)])
def test_a_warm_compile_cache_is_never_hidden(state, noted):
    verdict = V.judge(evidence(compile_cache=state))
    assert any(f"compile cache {state}" in n for n in verdict["notes"]) is noted
    assert verdict["status"] == "VALID"  # reported, not judged: the reference's own runs reuse caches too
