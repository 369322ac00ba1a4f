"""The verdict rules of runner.Run._verdict, on crafted metrics (no model needed)."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.config import load_config
from benchmarks.interfaces import PeakFlops
from benchmarks.llama2_7b_mmlu import CASE
from benchmarks.metrics import Metrics
from benchmarks.runner import Run, RunRequest
from vendors.cpu import VENDOR

REPO = Path(__file__).resolve().parents[1]


def make_run(tmp_path: Path, overrides=(), limit=None, smoke=False) -> Run:
    config = load_config(REPO / "configs", CASE.name, "cpu", CASE.Params, VENDOR.Options, list(overrides))
    return Run(RunRequest(case=CASE, vendor=VENDOR, config=config, data_dir=tmp_path, output_dir=tmp_path,
                          limit=limit, smoke=smoke))


def metrics(acc: float) -> Metrics:
    return Metrics(e2e_time=1.0, p_val_whole=1.0, p_val_core=1.0, p_infer_whole=1.0, p_infer_core=1.0, mfu=None,
                   mfu_reason="x", val_acc=acc, infer_acc=acc, mem_used_gib=1.0, mem_total_gib=2.0,
                   compile_time=0.0, val_warmup_time=0.0, agreement=1.0)


@pytest.mark.parametrize("acc, valid", [(0.458, True), (0.4675, True), (0.47, False), (0.30, False)])
def test_real_weights_accuracy_must_match_the_reference(tmp_path, acc, valid):
    verdict = make_run(tmp_path)._verdict(metrics(acc), 0, None, PeakFlops(312e12, "table"), None)
    assert (verdict["status"] == "VALID") is valid
    assert verdict["accuracy_meaningful"] is True
    if not valid:
        assert any("outside the reference 0.458" in r for r in verdict["reasons"])


def test_synthetic_weights_skip_the_accuracy_check_and_say_so(tmp_path):
    verdict = make_run(tmp_path, ["synthetic_weights=true"])._verdict(metrics(0.0), 0, None, PeakFlops(1.0, "t"), None)
    assert verdict["status"] == "VALID" and verdict["accuracy_meaningful"] is False
    assert any("not meaningful" in n for n in verdict["notes"])


def test_each_invalidating_condition_is_a_reason(tmp_path):
    run = make_run(tmp_path, ["synthetic_weights=true"], limit=3, smoke=True)
    verdict = run._verdict(metrics(0.0), 2, "RuntimeError: boom", PeakFlops(None, "unknown device"), None)
    text = " | ".join(verdict["reasons"])
    assert verdict["status"] == "INVALID"
    for part in ("smoke", "--limit 3", "2 recompilation", "toolkit failed", "boom"):
        assert part in text
    assert any("unknown device" in n for n in verdict["notes"])


def packed_run(tmp_path: Path, overrides, val_preds, infer_preds) -> Run:
    from benchmarks.passes import PassRecord

    run = make_run(tmp_path, ["pack_tokens=4096", *overrides])
    n = len(infer_preds)

    def record(name, preds, forwards):
        return PassRecord(name, n, 10 * n, 1.0, 1.0, tuple(preds), (1.0 / n,) * n, 0,
                          forwards=forwards, pack_tokens=4096 if forwards < n else 0)

    run.val = record("validation", val_preds, n) if val_preds is not None else None
    run.infer = record("inference", infer_preds, n // 10)
    return run


@pytest.mark.parametrize("differ, valid", [(0, True), (2, True), (3, False)])  # 2 of 2000: exactly 99.9%
def test_packing_must_keep_batch_one_predictions_with_real_weights(tmp_path, differ, valid):
    val = [7] * 2000
    infer = [8] * differ + [7] * (2000 - differ)
    run = packed_run(tmp_path, [], val, infer)
    packing = run._packing()
    assert packing["same_predictions_as_validation"] == (2000 - differ) / 2000
    assert packing["forwards"] == 200 and packing["prompts_per_forward"] == 10 and packing["tokens_per_forward"] == 100
    verdict = run._verdict(metrics(0.458), 0, None, PeakFlops(312e12, "table"), packing)
    assert (verdict["status"] == "VALID") is valid, verdict
    if not valid:
        assert verdict["reasons"] == ["pack_tokens=4096: 99.85% of inference predictions equal the validation "
                                      "pass's (batch 1, plain model); required 99.9%"]


def test_packing_bar_is_a_note_with_random_weights_or_without_validation(tmp_path):
    run = packed_run(tmp_path, ["synthetic_weights=true"], [1] * 100, [2] * 5 + [1] * 95)
    verdict = run._verdict(metrics(0.0), 0, None, PeakFlops(1.0, "t"), run._packing())
    assert verdict["status"] == "VALID"
    assert any(n.startswith("pack_tokens=4096: 95.00%") and "not enforced" in n for n in verdict["notes"])
    run = packed_run(tmp_path, ["no_validation=true"], None, [1] * 100)
    packing = run._packing()
    verdict = run._verdict(metrics(0.458), 0, None, PeakFlops(1.0, "t"), packing)
    assert packing["same_predictions_as_validation"] is None
    assert any("not compared with batch 1 (no validation pass)" in n for n in verdict["notes"])
