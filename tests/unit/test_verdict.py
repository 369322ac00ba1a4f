"""The verdict rules of benchmarks.verdict, on crafted evidence (no model needed)."""
from __future__ import annotations

import dataclasses

import pytest

from benchmarks import metrics as M
from benchmarks import verdict as V
from benchmarks.interfaces import PeakFlops
from benchmarks.llama2_7b_mmlu import CASE
from benchmarks.metrics import Metrics
from benchmarks.passes import PassRecord


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


def test_synthetic_weights_skip_the_accuracy_check_and_say_so():
    verdict = V.judge(evidence(0.0, synthetic=True, peak=PeakFlops(1.0, "t")))
    assert verdict["status"] == "VALID" and verdict["accuracy_meaningful"] is False
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
    verdict = V.judge(evidence(packing=packing))
    assert (verdict["status"] == "VALID") is valid, verdict
    if not valid:
        assert verdict["reasons"] == ["packs of <= 4096 tokens: 99.85% of inference predictions equal the validation "
                                      "pass's (batch 1, plain model); required 99.9%"]


def test_packing_bar_is_a_note_with_random_weights_or_without_validation():
    infer = record("inference", [2] * 5 + [1] * 95, 10)
    packing = M.packing(infer, record("validation", [1] * 100, 100), V.PACKING_MIN_SAME)
    verdict = V.judge(evidence(0.0, synthetic=True, packing=packing))
    assert verdict["status"] == "VALID"
    assert any(n.startswith("packs of <= 4096 tokens: 95.00%") and "not enforced" in n for n in verdict["notes"])
    packing = M.packing(infer, None, V.PACKING_MIN_SAME)
    verdict = V.judge(evidence(packing=packing))
    assert packing["same_predictions_as_validation"] is None
    assert any("not compared with batch 1 (no validation pass)" in n for n in verdict["notes"])
    assert M.packing(record("inference", [1] * 10, 10), None, V.PACKING_MIN_SAME) is None  # no packs, no figures
