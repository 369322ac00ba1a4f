"""The gate's noise rule (benchmarks.reporting.noise, docs/baselines.md "Noise"): medians of repeats, the
history's median and MAD, the bootstrap while the history is short, the host's load, and the NOISY status."""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reporting import gate, history, noise
from fault_helpers import cli


def _result(infer: list[float], val: list[float] | None = None, wait: float | None = None,
            start: str = "2026-12-01T02:00:00+00:00", **top: Any) -> dict[str, Any]:
    """A completed smoke-like result whose --repeat runs have these p_infer_core (and p_val_core) values; pass
    and whole throughputs follow: pass = 0.95 x core, whole = run 1's pass with 1% more time."""
    val = val or infer
    runs = [{"run": k + 1, "p_infer_core": i, "p_infer_pass": 0.95 * i, "p_val_core": v, "p_val_pass": 0.95 * v}
            for k, (i, v) in enumerate(zip(infer, val))]
    metrics = {"p_infer_core": infer[0], "p_infer_pass": 0.95 * infer[0], "p_infer_whole": 0.95 * infer[0] / 1.01,
               "p_val_core": val[0], "p_val_pass": 0.95 * val[0], "p_val_whole": 0.95 * val[0] / 1.01,
               "mfu": None, "infer_acc": 0.5, "val_acc": 0.5, "mem_used_gib": 1.0}
    out: dict[str, Any] = {"schema_version": 3, "status": "completed", "case": "llama2_7b_mmlu", "vendor": "cpu",
                           "precision": "fp32", "toolkit": "none", "smoke": True, "limit": None, "start_time": start,
                           "environment": {"device_name": "x86_64", "device_type": "cpu"}, "metrics": metrics,
                           "verdict": {"accuracy_meaningful": False}, **top}
    if len(infer) > 1:
        out["repeat"] = {"runs": runs, "spread": {}}
    if wait is not None:  # every inference pass (run 1's and the repeats') waited this share; validation none
        labels = ["inference"] + [f"inference (repeat {k}/{len(infer)})" for k in range(2, len(infer) + 1)]
        out["host_cpu_wait"] = {"available": True, "spans": {
            "validation": {"run_s": 1.0, "wait_s": 0.0, "wait_share": 0.0},
            **{label: {"run_s": 1 - wait, "wait_s": wait, "wait_share": wait} for label in labels}}}
    return out


def _baseline(tmp_path: Path, result: dict[str, Any]) -> gate.Baseline:
    path = tmp_path / "base.json"
    path.write_text(json.dumps(result), encoding="utf-8")
    return gate.load_baseline(path)


def _row(g: dict[str, Any], metric: str = "p_infer_core") -> dict[str, Any]:
    return next(r for r in g["rows"] if r["metric"] == metric)


def _nights(values: list[float], **top: Any) -> list[dict[str, Any]]:
    """History rows (as read_history returns them) of nights whose p_infer_core repeats are [v, v, v]."""
    rows = []
    for n, v in enumerate(values):
        r = _result([v, v, v], start=f"2026-11-{n + 1:02d}T02:00:00+00:00", **top)
        rows.append({k: (float(x) if x else None) if k in history.NUMERIC_COLUMNS else x
                     for k, x in history.row(r).items()})
    return rows


def test_samples_of_whole_throughputs_add_run_1s_one_time_cost_to_each_pass() -> None:
    r = _result([100.0, 110.0, 90.0])
    # run 1: pass 95 tokens/s, whole 95/1.01: 1/whole - 1/pass extra seconds per token, added to every run
    extra = 1.01 / 95 - 1 / 95
    assert noise.samples(r, "p_infer_whole") == pytest.approx([1 / (1 / p + extra) for p in (95.0, 104.5, 85.5)])
    assert noise.samples(r, "p_infer_core") == [100.0, 110.0, 90.0]
    assert noise.samples(_result([100.0]), "p_infer_core") == []  # no --repeat: no samples
    assert noise.samples({**r, "metrics": {**r["metrics"], "mfu": 0.5}}, "mfu") == pytest.approx([0.5, 0.55, 0.45])


def test_standard_error_of_a_median_uses_the_mad_so_one_disturbed_repeat_barely_counts() -> None:
    # [100, 102, 60]: the median 100, MAD 2: one run of three disturbed by 40% moves neither
    assert noise.standard_error([100.0, 102.0, 60.0]) == pytest.approx(1.4826 * 0.02 * math.sqrt(math.pi / 6))
    assert noise.standard_error([100.0]) is None


def test_without_any_noise_information_the_fixed_tolerance_decides(tmp_path: Path) -> None:
    base = _baseline(tmp_path, _result([100.0]))
    g = gate.compare(_result([93.0]), base)
    assert _row(g)["verdict"] == "REGRESSION" and _row(g)["allowed"] == pytest.approx(0.05)
    assert g["status"] == "REGRESSION"


def test_repeats_without_history_judge_a_drop_beyond_twice_the_tolerance_only(tmp_path: Path) -> None:
    base = _baseline(tmp_path, _result([100.0, 101.0, 99.0]))
    g = gate.compare(_result([93.0, 93.5, 92.5]), base)  # -7%: beyond the tolerance, within the bootstrap's 10%
    row = _row(g)
    assert (row["verdict"], row["statistic"], row["baseline"], row["now"]) == ("noisy", "median", 100.0, 93.0)
    assert row["allowed"] == pytest.approx(0.10) and "history of 0 < 5 nights" in row["noise_from"][-1]
    assert g["status"] == gate.NOISY and "p_infer_core" in g["noisy"]
    assert any(n.startswith("noise too high to judge: p_infer_core -7.0%") for n in g["notes"])
    g = gate.compare(_result([88.0, 88.5, 87.5]), base)  # -12%: a regression
    assert _row(g)["verdict"] == "REGRESSION" and g["status"] == "REGRESSION"


def test_noisy_repeats_widen_the_allowed_drop_to_three_sigma(tmp_path: Path) -> None:
    base = _baseline(tmp_path, _result([100.0, 110.0, 90.0]))  # se of each median: 1.4826 x 10% x sqrt(pi/6)
    row = _row(gate.compare(_result([80.0, 88.0, 72.0]), base))
    sigma = math.hypot(1.4826 * 0.10 * math.sqrt(math.pi / 6), 1.4826 * 0.10 * math.sqrt(math.pi / 6))
    assert row["noise"] == pytest.approx(sigma) and row["allowed"] == pytest.approx(3 * sigma)
    assert row["verdict"] == "noisy"  # -20%, but 3 sigma is 32%


def test_history_median_is_the_reference_of_a_result_json_baseline(tmp_path: Path) -> None:
    """TorchBench's rule: with 5+ good nights the median of the last 10 is the reference; a baseline that was
    an unlucky night (15% slow) then neither hides a regression nor raises a false alarm."""
    base = _baseline(tmp_path, _result([85.0, 85.0, 85.0]))
    past = _nights([100.0, 101.0, 99.0, 100.5, 99.5, 100.0])
    row_ok = _row(g := gate.compare(_result([97.0, 97.0, 97.0]), base, past))
    assert row_ok["reference"] == "median of the last 6 nights" and row_ok["baseline"] == 100.0
    assert row_ok["verdict"] == "ok" and g["status"] == "PASS"
    assert any("the baseline's 85 is -15.0% off the last 6 nights' median 100" in n for n in g["notes"])
    sigma = 1.4826 * 0.005 * math.sqrt(1 + math.pi / 12)
    assert row_ok["noise"] == pytest.approx(sigma) and row_ok["allowed"] == pytest.approx(0.05)  # 3 sigma < 5%
    row = _row(gate.compare(_result([87.0, 87.0, 87.0]), base, past))  # -13% from the nights: caught
    assert row["verdict"] == "REGRESSION"


def test_history_keeps_only_good_nights_of_the_same_workload() -> None:
    past = _nights([100.0] * 3) + _nights([50.0], gate={"status": "REGRESSION"})
    past += _nights([70.0], smoke=False) + [{**_nights([60.0])[0], "status": "failed"}]
    series = "x86_64 fp32 optimized smoke"
    from benchmarks.reporting.plots import workload_series

    assert noise.history_figures(past, series, "llama2_7b_mmlu", "p_infer_core", workload_series) == [100.0] * 3
    many = _nights([float(v) for v in range(100, 115)])
    assert noise.history_figures(many, series, "llama2_7b_mmlu", "p_infer_core", workload_series) == \
        [float(v) for v in range(105, 115)]  # the last 10, by start time


def test_yaml_baseline_keeps_its_value_and_takes_the_noise_from_the_history(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("metrics: {p_infer_core: 100.0}\n", encoding="utf-8")
    past = _nights([100.0, 110.0, 90.0, 100.0, 104.0])  # MAD 4: sigma 5.9%, 3 sigma 17.8%
    row = _row(gate.compare(_result([88.0, 88.0, 88.0]), gate.load_baseline(path), past))
    assert (row["reference"], row["baseline"], row["verdict"]) == ("baseline", 100.0, "noisy")
    assert row["allowed"] == pytest.approx(3 * 1.4826 * 0.04)


def test_each_run_is_judged_as_on_an_idle_host(tmp_path: Path) -> None:
    """x / (1 - c): the throughput a run would have had if other processes had not kept its threads waiting."""
    base = _baseline(tmp_path, _result([100.0], wait=0.0))
    row = _row(g := gate.compare(_result([90.0], [100.0], wait=0.1), base))  # waited 10%: 90 measured, 100 idle
    assert (row["now"], row["measured"]["run"], row["host_wait"]["run"]) == (pytest.approx(100.0), 90.0, 0.1)
    assert row["verdict"] == "ok" and g["status"] == "PASS"
    assert any("figures corrected for the host's load" in n and "measured 90, 100 on an idle host" in n
               for n in g["notes"])
    assert _row(gate.compare(_result([80.0], [100.0], wait=0.1), base))["verdict"] == "REGRESSION"  # 88.9: -11%
    # the busier the host, the less sure the correction: 0.15 x the wait joins sigma
    row = _row(gate.compare(_result([55.0], [100.0], wait=0.4), base))  # 91.7 on an idle host: -8.3%
    assert row["noise"] == pytest.approx(0.06) and row["allowed"] == pytest.approx(0.18)
    assert row["verdict"] == "noisy" and "the host's load" in row["noise_from"]
    assert _row(gate.compare(_result([45.0], [100.0], wait=0.4), base))["verdict"] == "REGRESSION"  # 75: -25%
    # a baseline measured on a busier host is not "corrected" into an accusation
    row = _row(gate.compare(_result([97.0], wait=0.0), _baseline(tmp_path, _result([100.0], wait=0.3))))
    assert row["baseline"] == pytest.approx(100 / 0.7) and row["change"] == pytest.approx(-0.03)
    assert row["verdict"] == "ok"


def test_a_median_figure_corrects_each_run_for_its_own_load(tmp_path: Path) -> None:
    run = _result([90.0, 89.0, 40.0], [100.0, 100.0, 100.0])
    run["host_cpu_wait"] = {"available": True, "spans": {
        label: {"run_s": 1 - w, "wait_s": w, "wait_share": w} for label, w in (
            ("validation", 0.0), ("inference", 0.02), ("compile", 0.0), ("inference (repeat 2/3)", 0.01),
            ("inference (repeat 3/3)", 0.6))}}
    fig = noise.figure(run, "p_infer_core", 90.0, median=True)
    assert fig["figure"] == pytest.approx(statistics.median([90 / 0.98, 89 / 0.99, 40 / 0.4]))
    assert (fig["wait"], fig["measured"], fig["median"]) == (0.02, 89.0, True)
    assert noise.figure(run, "p_infer_core", 90.0, median=False)["figure"] == pytest.approx(90 / 0.98)  # run 1
    assert noise.waits(run, "p_infer_whole", 1) == [pytest.approx(0.01)]  # run 1 with its compile span


def test_history_rows_keep_each_nights_corrected_figure_and_load() -> None:
    calm, busy = _nights([100.0, 101.0], wait=0.01), _nights([60.0], wait=0.4)
    assert calm[0]["host_wait_share"] == pytest.approx(0.01) and busy[0]["host_wait_share"] == pytest.approx(0.4)
    assert busy[0]["p_infer_core_figure"] == pytest.approx(100.0) and busy[0]["p_infer_core"] == 60.0
    from benchmarks.reporting.plots import workload_series

    figures = noise.history_figures(calm + busy, "x86_64 fp32 optimized smoke", "llama2_7b_mmlu", "p_infer_core",
                                    workload_series)
    assert sorted(figures) == pytest.approx([100.0, 100 / 0.99, 101 / 0.99])  # the busy night as on an idle host


def test_noisy_gate_exits_0_with_a_warning_and_a_table_that_says_why(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text(json.dumps(_result([100.0, 101.0, 99.0])), encoding="utf-8")
    (tmp_path / "run.json").write_text(json.dumps(_result([93.0, 93.5, 92.5], [100.0, 101.0, 99.0])),
                                       encoding="utf-8")
    code, out, err = cli(["compare-results", str(tmp_path / "run.json"), "--baseline", str(tmp_path / "base.json")])
    assert code == 0, err
    assert "gate: NOISY (p_val_whole, p_val_core" not in out  # val is unchanged here
    assert "gate: NOISY (p_infer_whole, p_infer_core): noise too high to judge, not a regression" in out
    assert "-10.0% (short history)" in out  # the allowed drop, twice the tolerance while the history is short


def test_compare_results_reads_the_history_and_leaves_the_run_itself_out(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text(json.dumps(_result([85.0, 85.0, 85.0])), encoding="utf-8")
    run = _result([87.0, 87.0, 87.0], start="2026-12-09T02:00:00+00:00")
    (tmp_path / "run.json").write_text(json.dumps(run), encoding="utf-8")
    hist = tmp_path / "h.csv"
    for n, v in enumerate([100.0, 101.0, 99.0, 100.5, 99.5]):
        history.append_history(hist, _result([v, v, v], start=f"2026-11-{n + 1:02d}T02:00:00+00:00"), tmp_path)
    history.append_history(hist, run, tmp_path)  # its own row: not evidence of the noise
    code, out, _ = cli(["compare-results", str(tmp_path / "run.json"), "--baseline", str(tmp_path / "base.json"),
                        "--history", str(hist)])
    assert code == 1 and "gate: REGRESSION" in out and "off the last 5 nights' median" in out
    assert statistics.median([100.0, 101.0, 99.0, 100.5, 99.5]) == 100.0
