"""`--scenario reference` end to end on the smoke model, and the reference's final record (`reference_record`, the
`Finish Info` line of run.log) of both scenarios."""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from results_support import run_smoke, shared_runs

KEYS = ["vendor", "compiler", "precision", "batchsize", "flops", "e2e_time(second)", "p_validation_whole(qps)",
        "p_validation_core(qps)", "p_inference_whole(qps)", "*p_inference_core(qps)", "val_average_acc",
        "infer_average_acc"]


def finish_info(run_log: Path) -> dict[str, Any]:
    """The record as FlagPerf's collector reads it: the first line holding "Finish Info", from its first '{'."""
    lines = [line for line in run_log.read_text(encoding="utf-8").splitlines() if "Finish Info" in line]
    assert len(lines) == 1, lines
    return ast.literal_eval("{" + lines[0].split("{")[1])


def check_record(result: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    rec = result["reference_record"]
    assert list(rec) == KEYS
    assert finish_info(output_dir / "run.log") == rec
    m = result["metrics"]
    assert rec["vendor"] == result["vendor"] and rec["compiler"] == result["toolkit"]
    assert rec["precision"] == result["precision"] and rec["batchsize"] == 1
    for key, name in (("p_validation_whole(qps)", "p_val_whole"), ("p_validation_core(qps)", "p_val_core"),
                      ("p_inference_whole(qps)", "p_infer_whole"), ("*p_inference_core(qps)", "p_infer_core"),
                      ("e2e_time(second)", "e2e_time")):
        assert rec[key] == round(m[name], 3), key
    assert rec["val_average_acc"] == round(m["val_acc"], 3) and rec["infer_average_acc"] == round(m["infer_acc"], 3)
    assert rec["flops"] == pytest.approx(2 * 7e9 * rec["*p_inference_core(qps)"])
    return rec


def test_optimized_run_writes_the_reference_record(smoke_cache: Path) -> None:
    run = shared_runs(smoke_cache).a
    assert run.result["scenario"] == "optimized" and run.result["load_path"] == "direct"
    rec = check_record(run.result, run.output_dir)
    # FlagPerf's collector reads the container's stdout: the line is there although the run was --quiet, and
    # only there (not twice on the terminal: stderr has none)
    stdout = [line for line in run.out.splitlines() if line.startswith("Finish Info: ")]
    assert len(stdout) == 1 and ast.literal_eval("{" + stdout[0].split("{", 1)[1]) == rec
    assert "Finish Info" not in run.err


def test_reference_scenario_without_a_compiler_runs_no_inference_pass(smoke_cache: Path, tmp_path: Path) -> None:
    """As the reference with `compiler: null`: the validation pass only; p_inference_* and infer_average_acc None."""
    run = run_smoke(smoke_cache, tmp_path / "ref", "--scenario", "reference", "--set", "compiler=none")
    assert run.code == 0, run.err
    r, m = run.result, run.result["metrics"]
    assert r["toolkit"] == "none" and "inference" not in r["phases_done"] and "inference" not in r["phases_s"]
    assert m["p_val_core"] > 0 and m["val_acc"] is not None
    assert all(m[k] is None for k in ("p_infer_whole", "p_infer_core", "p_infer_pass", "infer_acc", "mfu"))
    rec = r["reference_record"]
    assert finish_info(run.output_dir / "run.log") == rec
    assert rec["p_inference_whole(qps)"] is None and rec["*p_inference_core(qps)"] is None
    assert rec["infer_average_acc"] is None and rec["p_validation_core(qps)"] == round(m["p_val_core"], 3)
    assert any(reason.startswith("no inference pass") for reason in r["verdict"]["reasons"])
    preds = [json.loads(line) for line in (run.output_dir / "predictions.jsonl").read_text().splitlines()]
    assert preds and all(p["pred_infer"] is None and p["pred_val"] is not None for p in preds)


def test_nominal_mfu_of_a_model_that_is_not_the_case_s_is_not_reported(smoke_cache: Path, tmp_path: Path) -> None:
    """The configured flops (2*7e9 per token) are the 7B model's: with a peak known, the smoke model's nominal MFU
    was reported as 47,576%; it is n/a with the reason, and mfu_executed counts the model's own FLOPs."""
    run = run_smoke(smoke_cache, tmp_path / "peak", "--set", "peak_flops=1e11")
    assert run.code == 0, run.err
    m = run.result["metrics"]
    assert m["mfu"] is None and "describe the case's model, not this one (layers=2 (case: 32)" in m["mfu_reason"]
    assert 0 < m["mfu_executed"] < 1
    assert any(n.startswith("MFU not reported: the configured flops") for n in run.result["verdict"]["notes"])
    assert not any("mfu" in reason for reason in run.result["verdict"]["reasons"])


@pytest.mark.slow
def test_reference_scenario_smoke_end_to_end(smoke_cache: Path, tmp_path: Path) -> None:
    run = run_smoke(smoke_cache, tmp_path / "ref", "--scenario", "reference")
    assert run.code == 0, run.err
    r = run.result
    assert (r["scenario"], r["load_path"], r["toolkit"], r["precision"]) == ("reference", "reference", "inductor", "fp16")
    assert r["optimizations"] == [] and r["packing"] is None
    assert r["config"]["warmup_longest"] is False and r["config"]["dynamo_mode"] == "reduce-overhead"
    assert r["config_sources"]["dynamo_mode"] == "scenario reference"
    assert "val_warmup" not in r["phases_s"]  # the reference's validation pass has no warm-up
    details = r["toolkit_report"]["details"]
    assert details["lazy_compile"] is True and details["graphs"] >= 1 and r["toolkit_report"]["recompiles"] == 0
    assert details["reference_warmup"]["calls"] == 10 and details["reference_warmup"]["forwards"] == 100
    untimed = details["reference_warmup"]["untimed_s"]
    assert untimed > 0
    # Compile and the warm-up forwards are inside the inference pass's whole time, out of its core time.
    m, tokens = r["metrics"], r["counts"]["tokens"]
    whole, core = tokens / m["p_infer_whole"], tokens / m["p_infer_core"]
    assert whole > core + untimed
    assert r["phases_s"]["inference"] >= whole * 0.99
    # The wrapper's prepare step (the torch.compile call) is outside p_infer_whole, as the reference's
    assert m["p_infer_whole"] == m["p_infer_pass"] and m["compile_time"] > 0
    assert "model load path: reference" in (run.output_dir / "run.log").read_text(encoding="utf-8")
    check_record(r, run.output_dir)
