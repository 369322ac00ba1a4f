"""The gate compares only runs of one workload (or says how they differ with --allow-mismatch), lists missing
metrics without failing, compares --repeat medians, and warns on CPU baselines."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reporting import comparable, gate
from benchmarks.errors import BenchmarkError
from fault_helpers import cli
from results_support import run_smoke, shared_runs

REPO_ROOT = Path(__file__).resolve().parents[2]
A100_FP16 = REPO_ROOT / "baselines" / "llama2_7b_mmlu" / "a100_reference_fp16.yaml"


def _result(**top: Any) -> dict[str, Any]:
    r = {"schema_version": 3, "status": "completed", "case": "llama2_7b_mmlu", "precision": "fp16", "tf32": True,
         "toolkit": "inductor", "vendor": "nvidia", "smoke": False, "limit": None,
         "environment": {"device_name": "NVIDIA H200"},
         "metrics": {"p_infer_core": 100.0, "p_val_core": 90.0, "mfu": 0.5, "infer_acc": 0.5, "val_acc": 0.5,
                     "mem_used_gib": 10.0, "p_val_whole": 80.0, "p_infer_whole": 95.0},
         "verdict": {"accuracy_meaningful": True}}
    for key, value in top.items():
        if key == "device_name":
            r["environment"] = {"device_name": value}
        elif key == "metrics":
            r["metrics"] = {**r["metrics"], **value}
        else:
            r[key] = value
    return r


def _baseline(tmp_path: Path, result: dict[str, Any], name: str = "base.json") -> gate.Baseline:
    path = tmp_path / name
    path.write_text(json.dumps(result), encoding="utf-8")
    return gate.load_baseline(path)


@pytest.mark.parametrize("run_changes, phrase", [
    ({"smoke": True}, "key 'smoke' is false but this run is a smoke run"),
    ({"limit": 2}, "key 'limit' is null (the full workload) but this run has --limit 2"),
    ({"device_name": "NVIDIA H100 80GB HBM3"}, "key 'device' is 'NVIDIA H200' but this run has 'NVIDIA H100 80GB HBM3'"),
    ({"precision": "bf16"}, "key 'precision' is 'fp16' but this run has 'bf16'"),
    ({"scenario": "plain"}, "key 'scenario' is 'optimized' but this run has 'plain'"),
    ({"world_size": 8}, "key 'world_size' is 1 but this run has 8"),
    ({"case": "other_case"}, "key 'case' is 'llama2_7b_mmlu' but this run has 'other_case'"),
])
def test_other_workloads_are_refused_unless_allowed(tmp_path: Path, run_changes: dict[str, Any], phrase: str) -> None:
    base = _baseline(tmp_path, _result())
    with pytest.raises(BenchmarkError) as info:
        gate.compare(_result(**run_changes), base)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"--baseline {base.path}: not comparable with this run: ")
    assert phrase in msg and msg.endswith("or add --allow-mismatch to compare anyway")
    g = gate.compare(_result(**run_changes), gate.allowing_mismatch(base))
    assert f"not comparable (compared anyway, --allow-mismatch): {phrase}" in g["notes"]
    assert g["status"] == "PASS"


def test_absent_scenario_and_world_size_are_the_old_defaults(tmp_path: Path) -> None:
    old = _result()  # results before these fields existed have neither
    assert "scenario" not in old and "world_size" not in old
    g = gate.compare(_result(scenario="optimized", world_size=1), _baseline(tmp_path, old))
    assert g["status"] == "PASS" and not any("not comparable" in n for n in g["notes"])
    assert comparable.workload_of_result(old)["scenario"] == "optimized"
    assert comparable.workload_of_result(old)["world_size"] == 1


def test_yaml_device_names_match_torchs_names(tmp_path: Path) -> None:
    b = gate.load_baseline(A100_FP16)
    assert b.workload == {"case": "llama2_7b_mmlu", "device": "A100-SXM4-40GB", "precision": "fp16",
                          "smoke": False, "limit": None}
    g = gate.compare(_result(device_name="NVIDIA A100-SXM4-40GB", metrics={"p_infer_core": 10052.2}), b)
    assert not any("not comparable" in n for n in g["notes"])
    with pytest.raises(BenchmarkError, match=r"key 'device' is 'A100-SXM4-40GB' but this run has 'NVIDIA H200'"):
        gate.compare(_result(), b)


def test_missing_on_either_side_is_listed_not_a_regression(tmp_path: Path) -> None:
    base = _baseline(tmp_path, _result(metrics={"mfu": None}))
    g = gate.compare(_result(metrics={"p_val_core": None, "p_infer_core": 50.0}), base)
    verdicts = {r["metric"]: r["verdict"] for r in g["rows"]}
    assert verdicts["mfu"] == "missing" and verdicts["p_val_core"] == "missing"
    assert verdicts["p_infer_core"] == "REGRESSION" and g["failed"] == ["p_infer_core"]
    assert g["missing"] == ["p_val_core (not in the run)", "mfu (not in the baseline)"]
    assert "missing (not gated): p_val_core (not in the run), mfu (not in the baseline)" in gate.table(g)
    g = gate.compare(_result(metrics={"p_val_core": None}), base)
    assert g["status"] == "PASS"


def _with_repeat(result: dict[str, Any], medians: dict[str, float]) -> dict[str, Any]:
    result["repeat"] = {"spread": {m: {"min": v, "median": v, "max": v, "mean": v, "cv": 0.0}
                                   for m, v in medians.items()}}
    return result


def test_repeat_medians_are_compared_when_both_sides_have_them(tmp_path: Path) -> None:
    # run 1 of the new run is 20% slower than the baseline's run 1, but its median is 1% faster
    base = _baseline(tmp_path, _with_repeat(_result(), {"p_infer_core": 100.0}))
    run = _with_repeat(_result(metrics={"p_infer_core": 80.0}), {"p_infer_core": 101.0})
    g = gate.compare(run, base)
    row = next(r for r in g["rows"] if r["metric"] == "p_infer_core")
    assert (row["baseline"], row["now"], row["verdict"], row["statistic"]) == (100.0, 101.0, "ok", "median")
    assert g["status"] == "PASS" and any("--repeat medians" in n for n in g["notes"])
    # one side without --repeat: run 1 against run 1
    g = gate.compare(_result(metrics={"p_infer_core": 80.0}), base)
    assert g["status"] == "REGRESSION" and g["failed"] == ["p_infer_core"]


def test_cpu_baselines_warn_about_noise(tmp_path: Path) -> None:
    cpu = _result(vendor="cpu", environment={"device_name": "x86_64", "device_type": "cpu"})
    g = gate.compare(cpu, _baseline(tmp_path, cpu))
    assert comparable.CPU_NOISE in g["notes"] and comparable.CPU_NOISE in gate.table(g)
    g = gate.compare(_result(), _baseline(tmp_path, _result(), "gpu.json"))
    assert comparable.CPU_NOISE not in g["notes"]


def test_yaml_workload_keys_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("smoke: true\nlimit: 2\nscenario: optimized\nworld_size: 1\nmetrics: {p_infer_core: 1.0}\n",
                    encoding="utf-8")
    b = gate.load_baseline(path)
    assert gate.compare(_result(smoke=True, limit=2), b)["status"] == "PASS"
    with pytest.raises(BenchmarkError, match=r"key 'smoke' is true but this run is not a smoke run; key 'limit' is 2 "
                                             r"but this run has no --limit"):
        gate.compare(_result(), b)


# --------------------------------------------------------------------------------------------- real runs
@pytest.mark.slow  # a few seconds: keeps the fast tier under 90 s
def test_smoke_run_against_the_a100_baseline_is_refused_before_running(smoke_cache: Path, tmp_path: Path) -> None:
    run = run_smoke(smoke_cache, tmp_path / "out", "--baseline", str(A100_FP16))
    assert run.code == 2 and run.err.count("\n") == 1
    assert "not comparable with this run" in run.err and "key 'smoke' is false but this run is a smoke run" in run.err
    assert not (tmp_path / "out" / "result.json").exists()
    run = run_smoke(smoke_cache, tmp_path / "out2", "--baseline", str(A100_FP16), "--allow-mismatch")
    # Compared, not refused: PASS or REGRESSION depends on how fast this CPU is against an A100 right now.
    assert run.code in (0, 1) and run.err == "", run.err
    assert "gate: " in run.out and "not comparable (compared anyway, --allow-mismatch)" in run.out
    assert run.result["gate"]["missing"] == ["mfu (not in the run)"]


def test_compare_results_of_another_limit(smoke_cache: Path, tmp_path: Path) -> None:
    a = shared_runs(smoke_cache).a.output_dir  # --limit 2
    other = run_smoke(smoke_cache, tmp_path / "limit1", "--limit", "1")  # the last --limit wins: 1
    assert other.code == 0 and other.result["limit"] == 1
    code, out, err = cli(["compare-results", str(other.output_dir), "--baseline", str(a)])
    assert code == 2 and out == "" and "key 'limit' is 2 but this run has --limit 1" in err
    code, out, err = cli(["compare-results", str(other.output_dir), "--baseline", str(a), "--allow-mismatch"])
    assert code in (0, 1) and err == "" and "key 'limit' is 2 but this run has --limit 1" in out
    assert comparable.CPU_NOISE in out
