"""precision fp8 end to end on the CPU through the real CLI: the fp16 validation pass, the fp8 inference pass, an
honest verdict, the precision in every file, and a gate that never compares fp8 with an fp16 baseline unasked."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fault_helpers import run_cli
from vendors.cpu import host_scaled_mm

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not host_scaled_mm(), reason="this torch has no torch._scaled_mm on the host")]


def test_an_fp8_run_records_its_precision_and_is_judged_against_its_own_fp16_validation(smoke_data_dir: Path,
                                                                                       tmp_path: Path) -> None:
    base = run_cli(smoke_data_dir, tmp_path / "fp16", "--set", "precision=fp16", limit=2)
    assert base.code == 0, base.err
    run = run_cli(smoke_data_dir, tmp_path / "fp8", "--set", "precision=fp8", "--history", str(tmp_path / "h.csv"),
                  limit=2)
    assert run.code == 0, run.err
    r = run.result
    assert r["precision"] == "fp8" and r["config"]["precision"] == "fp8"
    assert "fp8_linears=e4m3 per-row, fast accumulation" in r["optimizations"]
    notes = " ".join(r["verdict"]["notes"])
    same = r["metrics"]["agreement"]
    # a data_dir's weights count as real: MLPerf's rule (the tiny model answers 0% in both passes, so it holds)
    assert (f"precision fp8: infer_acc 0.00% is n/a of the fp16 validation pass's 0.00%; required >= 99% (MLPerf "
            f"Inference's rule); {100 * same:.2f}% of inference predictions equal the fp16 validation pass's") in notes
    assert r["verdict"]["status"] == "INVALID"  # a tiny model on --limit data: never the case
    # the validation pass is the plain model at fp16: its predictions are the fp16 run's own
    assert [p["pred_val"] for p in run.predictions] == [p["pred_val"] for p in base.predictions]
    assert 0.5 <= same <= 1.0
    with open(tmp_path / "fp8" / "result.csv", newline="") as f:
        assert next(csv.DictReader(f))["precision"] == "fp8"
    with open(tmp_path / "h.csv", newline="") as f:
        assert [row["precision"] for row in csv.DictReader(f)] == ["fp8"]
    assert "| fp8 |" in (tmp_path / "fp8" / "result.md").read_text()

    refused = run_cli(smoke_data_dir, tmp_path / "gate", "--set", "precision=fp8", "--baseline",
                      str(tmp_path / "fp16" / "result.json"), limit=2)
    assert refused.code == 2 and "precision" in refused.line and "fp16" in refused.line and "fp8" in refused.line


def test_repeating_an_fp8_run_repeats_only_its_inference_pass(smoke_data_dir: Path, tmp_path: Path) -> None:
    run = run_cli(smoke_data_dir, tmp_path / "out", "--set", "precision=fp8", "--repeat", "2", limit=1)
    assert run.code == 0, run.err
    runs = run.result["repeat"]["runs"]
    assert runs[1]["p_val_pass"] is None and runs[1]["p_infer_pass"] > 0
    assert "only the inference pass is repeated" in run.result["repeat"]["design"]
