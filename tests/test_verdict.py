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
    verdict = make_run(tmp_path)._verdict(metrics(acc), 0, None, PeakFlops(312e12, "table"))
    assert (verdict["status"] == "VALID") is valid
    assert verdict["accuracy_meaningful"] is True
    if not valid:
        assert any("outside the reference 0.458" in r for r in verdict["reasons"])


def test_synthetic_weights_skip_the_accuracy_check_and_say_so(tmp_path):
    verdict = make_run(tmp_path, ["synthetic_weights=true"])._verdict(metrics(0.0), 0, None, PeakFlops(1.0, "t"))
    assert verdict["status"] == "VALID" and verdict["accuracy_meaningful"] is False
    assert any("not meaningful" in n for n in verdict["notes"])


def test_each_invalidating_condition_is_a_reason(tmp_path):
    run = make_run(tmp_path, ["synthetic_weights=true"], limit=3, smoke=True)
    verdict = run._verdict(metrics(0.0), 2, "RuntimeError: boom", PeakFlops(None, "unknown device"))
    text = " | ".join(verdict["reasons"])
    assert verdict["status"] == "INVALID"
    for part in ("smoke", "--limit 3", "2 recompilation", "toolkit failed", "boom"):
        assert part in text
    assert any("unknown device" in n for n in verdict["notes"])
