"""The regression gate: verdict rules, baseline parsing errors, exit codes of a run and of compare-results."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reporting import gate
from benchmarks.errors import BenchmarkError
from fault_helpers import cli
from results_support import read_csv, run_smoke, shared_runs

REPO_ROOT = Path(__file__).resolve().parents[2]
BASELINES = REPO_ROOT / "baselines" / "llama2_7b_mmlu"


@pytest.fixture(scope="module")
def runs(smoke_cache: Path):
    return shared_runs(smoke_cache)


def _result(meaningful: bool = True, **metrics: Any) -> dict[str, Any]:
    base = {"p_infer_core": 100.0, "mfu": 0.5, "infer_acc": 0.5, "val_acc": 0.5, "mem_used_gib": 10.0,
            "p_val_core": 90.0, "e2e_time": 100.0}
    base.update(metrics)
    return {"schema_version": 3, "status": "completed", "case": "llama2_7b_mmlu", "precision": "fp16",
            "tf32": True, "toolkit": "inductor", "vendor": "nvidia", "metrics": base,
            "accuracy": {"overall": {"infer_choice_acc": 0.6}},
            "verdict": {"accuracy_meaningful": meaningful}}


def _yaml(tmp_path: Path, text: str, name: str = "base.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _verdicts(g: dict[str, Any]) -> dict[str, str]:
    return {r["metric"]: r["verdict"] for r in g["rows"]}


BASE_YAML = """\
case: llama2_7b_mmlu
precision: fp16
metrics:
  p_infer_core: {value: 100.0}                 # default rel_tol 0.05
  mfu: {value: 0.5, rel_tol: 0.10}
  infer_acc: {value: 0.5}                      # default abs_tol 0.01
  infer_choice_acc: 0.6                        # shorthand
  mem_used_gib: {value: 10.0}                  # default rel_tol 0.10, higher is worse
  e2e_time: {value: 100, rel_tol: 0.2}
"""


@pytest.mark.parametrize("metrics, expected", [
    ({}, {"p_infer_core": "ok", "mfu": "ok", "infer_acc": "ok", "infer_choice_acc": "ok", "mem_used_gib": "ok",
          "e2e_time": "ok"}),
    ({"p_infer_core": 95.1, "mfu": 0.451, "infer_acc": 0.491, "mem_used_gib": 10.9, "e2e_time": 119.0},
     {"p_infer_core": "ok", "mfu": "ok", "infer_acc": "ok", "mem_used_gib": "ok", "e2e_time": "ok"}),
    ({"p_infer_core": 94.9, "mfu": 0.449, "infer_acc": 0.489, "mem_used_gib": 11.1, "e2e_time": 121.0},
     {"p_infer_core": "REGRESSION", "mfu": "REGRESSION", "infer_acc": "REGRESSION", "mem_used_gib": "REGRESSION",
      "e2e_time": "REGRESSION"}),
    ({"p_infer_core": 200.0, "mfu": 0.9, "infer_acc": 0.6, "mem_used_gib": 5.0, "e2e_time": 50.0},
     {"p_infer_core": "better", "mfu": "better", "infer_acc": "better", "mem_used_gib": "better", "e2e_time": "better"}),
    ({"mfu": None}, {"mfu": "missing", "p_infer_core": "ok"}),  # listed, not a regression
])
def test_verdict_rules(tmp_path: Path, metrics: dict[str, Any], expected: dict[str, str]) -> None:
    g = gate.compare(_result(**metrics), gate.load_baseline(_yaml(tmp_path, BASE_YAML)))
    verdicts = _verdicts(g)
    assert {k: verdicts[k] for k in expected} == expected
    failed = sorted(k for k, v in verdicts.items() if v in ("REGRESSION", "MISSING"))
    assert sorted(g["failed"]) == failed
    assert g["status"] == ("REGRESSION" if failed else "PASS")


def test_change_values_and_table(tmp_path: Path) -> None:
    g = gate.compare(_result(p_infer_core=90.0, infer_acc=0.47), gate.load_baseline(_yaml(tmp_path, BASE_YAML)))
    rows = {r["metric"]: r for r in g["rows"]}
    assert rows["p_infer_core"]["change"] == pytest.approx(-0.10) and rows["p_infer_core"]["change_kind"] == "rel"
    assert rows["infer_acc"]["change"] == pytest.approx(-0.03) and rows["infer_acc"]["tolerance"] == 0.01
    assert rows["mem_used_gib"]["direction"] == "lower_is_better"
    text = gate.table(g)
    assert "metric" in text and "baseline" in text and "change" in text and "verdict" in text
    assert "-10.0%" in text and "-3.00 pts" in text and "gate: REGRESSION (p_infer_core, infer_acc)" in text


def test_accuracy_skipped_when_the_run_has_random_weights(tmp_path: Path) -> None:
    g = gate.compare(_result(meaningful=False, infer_acc=0.0), gate.load_baseline(_yaml(tmp_path, BASE_YAML)))
    assert _verdicts(g)["infer_acc"] == "skipped" and g["status"] == "PASS"
    assert any("accuracy not gated" in n for n in g["notes"])


def test_result_json_baseline_uses_the_default_metrics(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text(json.dumps(_result(mfu=None)), encoding="utf-8")
    b = gate.load_baseline(path)
    assert b.kind == "result.json" and [e.metric for e in b.expectations] == list(gate.DEFAULT_METRICS)
    g = gate.compare({**_result(), "precision": "fp32"}, gate.allowing_mismatch(b))
    assert g["status"] == "PASS" and _verdicts(g)["mfu"] == "missing"
    assert ("not comparable (compared anyway, --allow-mismatch): key 'precision' is 'fp16' but this run has "
            "'fp32'") in g["notes"]
    with pytest.raises(BenchmarkError, match=r"key 'case' is 'llama2_7b_mmlu' but this run has 'other'"):
        gate.compare({**_result(), "case": "other"}, b)


@pytest.mark.parametrize("text, match", [
    ("metrics: {p_infer_core: {value: 1}\n", r"base\.yaml: not valid YAML at line 2"),
    ("- 1\n- 2\n", r"base\.yaml: expected a mapping with a 'metrics' key"),
    ("precison: fp16\nmetrics: {mfu: 0.4}\n", r"base\.yaml: unknown key\(s\) precison"),
    ("description: x\n", r"base\.yaml: key 'metrics' missing or empty"),
    ("metrics: {p_infer_cor: {value: 1}}\n", r"base\.yaml: key 'metrics\.p_infer_cor': unknown metric; known"),
    ("metrics: {mfu: {rel_tol: 0.1}}\n", r"base\.yaml: key 'metrics\.mfu': missing 'value'"),
    ("metrics: {mfu: {value: high}}\n", r"base\.yaml: key 'metrics\.mfu\.value': expected a number, got 'high'"),
    ("metrics: {mfu: {value: 0.4, rel_tol: 0.1, abs_tol: 0.1}}\n", r"key 'metrics\.mfu': give rel_tol or abs_tol"),
    ("metrics: {mfu: {value: 0.4, rel_tol: -1}}\n", r"key 'metrics\.mfu\.rel_tol': expected a non-negative number"),
    ("metrics: {mfu: {value: 0.4, tol: 1}}\n", r"key 'metrics\.mfu': unknown key\(s\) tol"),
    ("metrics: {mfu: [1]}\n", r"key 'metrics\.mfu': expected a number or a mapping"),
])
def test_malformed_yaml_baselines(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(BenchmarkError, match=match):
        gate.load_baseline(_yaml(tmp_path, text))


def test_bad_result_json_baselines(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"--baseline .*nope\.yaml: file not found"):
        gate.load_baseline(tmp_path / "nope.yaml")
    bad = _yaml(tmp_path, "{not json", "r.json")
    with pytest.raises(BenchmarkError, match=r"r\.json: not valid JSON"):
        gate.load_baseline(bad)
    failed = _yaml(tmp_path, json.dumps({**_result(), "status": "failed"}), "f.json")
    with pytest.raises(BenchmarkError, match=r"f\.json: key 'status' is 'failed'; only a completed run"):
        gate.load_baseline(failed)


def test_exponent_without_sign_is_a_number(tmp_path: Path) -> None:
    # PyYAML reads 1e9 / 1.0e9 as strings; the baseline still means the number
    b = gate.load_baseline(_yaml(tmp_path, "metrics: {p_infer_core: {value: 1.0e9}, mfu: 5e-1}\n"))
    assert [e.value for e in b.expectations] == [1e9, 0.5]


def test_shipped_a100_baselines_hold_the_reference_rows() -> None:
    fp16 = gate.load_baseline(BASELINES / "a100_reference_fp16.yaml")
    fp32 = gate.load_baseline(BASELINES / "a100_reference_fp32.yaml")
    v16 = {e.metric: e.value for e in fp16.expectations}
    v32 = {e.metric: e.value for e in fp32.expectations}
    assert fp16.context == {"case": "llama2_7b_mmlu", "precision": "fp16"}
    assert fp32.context == {"case": "llama2_7b_mmlu", "precision": "fp32", "tf32": True}
    assert (v16["p_infer_core"], v16["e2e_time"], v16["mem_used_gib"]) == (10052.2, 2558, 28.0)
    assert (v32["p_infer_core"], v32["e2e_time"], v32["mem_used_gib"]) == (5951.8, 4143, 35.0)
    assert v16["infer_acc"] == v16["val_acc"] == v32["infer_acc"] == 0.458
    # MFU rows follow from p_infer_core x 2*7e9 / A100 peak (312e12 fp16, 156e12 TF32)
    assert v16["mfu"] == pytest.approx(10052.2 * 14e9 / 312e12, abs=5e-4)
    assert v32["mfu"] == pytest.approx(5951.8 * 14e9 / 156e12, abs=5e-4)
    assert "published A100 numbers" in (REPO_ROOT / "baselines" / "README.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------- real runs, exit codes
def test_run_with_a_regressing_baseline_exits_1_and_records_the_gate(runs) -> None:
    b = runs.b
    assert b.code == 1, b.err
    g = b.result["gate"]
    assert g["status"] == "REGRESSION" and g["failed"] == ["p_infer_core"] and g["baseline_kind"] == "yaml"
    assert {r["metric"]: r["verdict"] for r in g["rows"]} == {"p_infer_core": "REGRESSION", "mem_used_gib": "better"}
    # `now` is the run's figure: its throughput as on an idle host (the noise rule), `measured` as it was
    row = g["rows"][0]
    assert row["measured"]["run"] == b.result["metrics"]["p_infer_core"]
    assert row["now"] == pytest.approx(row["measured"]["run"] / (1 - (row["host_wait"]["run"] or 0.0)))
    assert "gate: REGRESSION (p_infer_core)" in b.out and "p_infer_core" in b.out
    assert "gate: REGRESSION" in (b.output_dir / "result.md").read_text(encoding="utf-8")
    assert read_csv(b.output_dir / "result.csv")[1][0]["gate"] == "REGRESSION"
    assert runs.a.code == 0 and "gate" not in runs.a.result


def test_run_with_a_malformed_baseline_exits_2_before_running(smoke_cache: Path, tmp_path: Path) -> None:
    bad = _yaml(tmp_path, "metrics: {p_infer_core: {valu: 1}}\n")
    run = run_smoke(smoke_cache, tmp_path / "out", "--baseline", str(bad))
    assert run.code == 2
    assert run.err.startswith(f"error: --baseline {bad}: key 'metrics.p_infer_core'")
    assert not (tmp_path / "out" / "result.json").exists()
    run = run_smoke(smoke_cache, tmp_path / "out", "--baseline", str(BASELINES / "a100_reference_fp16.yaml"))
    assert run.code == 2 and "key 'precision' is 'fp16' but this run has 'fp32'" in run.err


def test_compare_results_exit_codes(runs, tmp_path: Path) -> None:
    a = runs.a.output_dir / "result.json"
    code, out, err = cli(["compare-results", str(a), "--baseline", str(a)])
    assert (code, err) == (0, "") and "gate: PASS" in out
    assert all(v in ("ok", "missing") for v in _verdicts(gate.compare(runs.a.result, gate.load_baseline(a))).values())
    code, out, _ = cli(["compare-results", str(runs.a.output_dir), "--baseline", str(runs.regress_yaml)])
    assert code == 1 and "REGRESSION" in out
    bad = _yaml(tmp_path, "metrics:\n  mfu: {value: [\n")
    code, out, err = cli(["compare-results", str(a), "--baseline", str(bad)])
    assert code == 2 and out == "" and f"--baseline {bad}: not valid YAML" in err
    code, _, err = cli(["compare-results", str(tmp_path / "missing.json"), "--baseline", str(a)])
    assert code == 2 and "missing.json: file not found" in err
    code, _, err = cli(["compare-results", str(a)])
    assert code == 2 and "--baseline" in err and "required" in err
