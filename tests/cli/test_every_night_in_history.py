"""Every night is a history row: a failed or interrupted run appends its own (status, error line, run folder),
`history-add` records a night that could not, and `plot` and the HTML report show such nights as what they are;
the HTML gate table shows rounded numbers and n/a."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reporting import history, html_report, plots
from fault_helpers import cli
from results_support import run_smoke


def _completed(when: str, p: float, **top: Any) -> dict[str, Any]:
    return {"schema_version": 3, "start_time": when, "status": "completed", "case": "llama2_7b_mmlu",
            "vendor": "cpu", "precision": "fp32", "toolkit": "none", "smoke": True, "limit": None,
            "environment": {"device_name": "x86_64"}, "verdict": {"status": "INVALID"},
            "metrics": {"p_infer_core": p, "p_val_core": p, "mfu": None, "infer_acc": 0.25, "val_acc": 0.25}, **top}


@pytest.mark.parametrize("raised, status, code", [(RuntimeError, "failed", 3), (KeyboardInterrupt, "interrupted", 130)])
def test_a_failed_or_interrupted_run_appends_its_row(smoke_cache: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, raised: type,
                                                     status: str, code: int) -> None:
    import benchmarks.harness.run

    def boom(name, *args, **kwargs):
        raise raised(f"injected in the {name} pass")

    monkeypatch.setattr(benchmarks.harness.run, "run_pass", boom)
    hist = tmp_path / "history.csv"
    history.append_history(hist, _completed("2026-11-01T02:00:00+00:00", 100.0), tmp_path / "night1")
    run = run_smoke(smoke_cache, tmp_path / "night2", "--set", "warmup_longest=false", "--history", str(hist))
    assert run.code == code, run.err
    assert f"{status} night recorded in {hist}" in run.err
    rows = history.read_history(hist)
    assert [r["status"] for r in rows] == ["completed", status]
    last = rows[-1]
    assert last["error"].endswith("injected in the validation pass") and last["result_dir"] == str(tmp_path / "night2")
    assert last["start_time"] == run.result["start_time"] and last["p_infer_core"] is None


def test_history_add_records_a_night_that_could_not_and_only_once(tmp_path: Path) -> None:
    hist = tmp_path / "history.csv"
    history.append_history(hist, _completed("2026-11-01T02:00:00+00:00", 100.0), tmp_path / "night1")
    refused = tmp_path / "night2"  # refused before it started (exit 2): no result.json
    refused.mkdir()
    code, out, err = cli(["history-add", "--history", str(hist), "--run-dir", str(refused), "--error",
                          "error: --baseline b.json: not comparable with this run"])
    assert (code, err) == (0, "") and "failed night recorded" in out
    killed = tmp_path / "night3"  # killed hard: its result.json still says running
    killed.mkdir()
    (killed / "result.json").write_text(json.dumps({**_completed("2026-11-03T02:00:00+00:00", 1.0),
                                                     "status": "running"}), encoding="utf-8")
    assert cli(["history-add", "--history", str(hist), "--run-dir", str(killed), "--status", "interrupted"])[0] == 0
    code, out, _ = cli(["history-add", "--history", str(hist), "--run-dir", str(killed)])
    assert code == 0 and "recorded already" in out
    rows = history.read_history(hist)
    assert [(r["status"], r["result_dir"]) for r in rows] == [
        ("completed", str(tmp_path / "night1")), ("failed", str(refused)), ("interrupted", str(killed))]
    assert rows[1]["error"] == "error: --baseline b.json: not comparable with this run"
    assert rows[2]["error"] == "the run ended without recording its end (killed?)"
    assert rows[2]["start_time"] == "2026-11-03T02:00:00+00:00" and rows[1]["start_time"] > "2026"


def test_history_error_cell_is_one_line_and_bounded() -> None:
    row = history.row({"status": "failed", "error": "RuntimeError: first\nsecond   line " + "x" * 400})
    assert "\n" not in row["error"] and row["error"].startswith("RuntimeError: first second line x")
    assert len(row["error"]) == history.ERROR_CHARS and row["error"].endswith("...")
    assert history.row(_completed("t", 1.0))["error"] == ""


def _rows(tmp_path: Path) -> list[dict[str, Any]]:
    hist = tmp_path / "history.csv"
    night2 = tmp_path / "runs" / "night2"
    night2.mkdir(parents=True)
    gate = {"status": "REGRESSION", "rows": [
        {"metric": "p_infer_core", "baseline": 1234.56789, "now": 987.654321, "change": -0.19999, "change_kind": "rel",
         "tolerance": 0.05, "allowed": 0.0712345, "noise": 0.0712345 / 3, "direction": "higher_is_better",
         "verdict": "REGRESSION"},
        {"metric": "mfu", "baseline": None, "now": None, "change": None, "change_kind": "rel", "tolerance": 0.05,
         "allowed": None, "direction": "higher_is_better", "verdict": "missing"},
        {"metric": "infer_acc", "baseline": 0.45678, "now": 0.4, "change": -0.05678, "change_kind": "abs",
         "tolerance": 0.01, "allowed": None, "direction": "higher_is_better", "verdict": "REGRESSION"}]}
    (night2 / "result.json").write_text(json.dumps({"gate": gate}), encoding="utf-8")
    history.append_history(hist, _completed("2026-11-01T02:00:00+00:00", 1000.0), tmp_path / "runs" / "night1")
    history.append_history(hist, _completed("2026-11-02T02:00:00+00:00", 987.654321, gate=gate), night2)
    history.append_history(hist, {**_completed("2026-11-03T02:00:00+00:00", 0.0), "status": "interrupted",
                                  "metrics": {}, "error": "KeyboardInterrupt: signal 15"}, tmp_path / "runs" / "n3")
    history.append_history(hist, {**_completed("2026-11-04T02:00:00+00:00", 0.0), "status": "failed",
                                  "metrics": {}, "error": "RuntimeError: CUDA error <&>"}, tmp_path / "runs" / "n4")
    return history.read_history(hist)


def test_plot_marks_failed_and_interrupted_nights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real_save = plots._save

    def record(fig: Any, path: Path) -> None:
        seen[path.name] = {ln.get_label(): (ln.get_marker(), list(ln.get_ydata())) for ln in fig.axes[0].get_lines()}
        real_save(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    plots.plot_history(_rows(tmp_path), tmp_path / "charts")
    for name in ("throughput.png", "mfu.png", "accuracy.png"):
        assert seen[name]["failed night"] == ("x", [0]) and seen[name]["interrupted night"] == ("|", [0]), name
    assert seen["throughput.png"]["x86_64 fp32 optimized smoke infer"][1] == [1000.0, 987.654321]


def test_html_latest_is_the_latest_night_whatever_its_status_and_the_gate_is_rounded(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    text = html_report.render(rows, [], tmp_path / "history.csv", tmp_path / "report")
    latest = text.split("<h2>Charts</h2>")[0].split("<h2>Latest run</h2>")[1]
    assert ">2026-11-04T02:00:00+00:00<" in latest and '<span class="badge ended">FAILED</span>' in latest
    assert "RuntimeError: CUDA error &lt;&amp;&gt;" in latest  # the error line, escaped
    assert '<a href="../runs/n4">n4</a>' in latest
    runs = text.split("All runs (newest first)")[1]
    assert runs.count('<tr class="ended">') == 2 and runs.count('<tr class="regression">') == 1
    assert "KeyboardInterrupt: signal 15" in runs and "1 gated run(s) with a regression" in text
    assert "2 failed or interrupted" in text
    # the gate table of a night: rounded, n/a for missing values; never a raw float or None
    two = [r for r in rows if r["start_time"] <= "2026-11-02T02:00:00+00:00"]
    gate = html_report.render(two, [], tmp_path / "history.csv", tmp_path / "report").split("<h3>Gate</h3>")[1]
    gate = gate.split("</table>")[0]
    assert "<td>1234.6</td><td>987.7</td><td>-20.0%</td><td>-7.1% (3 sigma)</td>" in gate
    assert "<td>n/a</td><td>n/a</td><td>n/a</td><td>-5.0%</td>" in gate  # mfu: no values
    assert "<td>45.68%</td><td>40.00%</td><td>-5.68 pts</td><td>-1.00 pts</td>" in gate
    assert "None" not in gate and not re.search(r"\d\.\d{4,}", gate)
