"""--history, the plot subcommand, throughput_vs_length.png, compare-predictions and the progress display."""
from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.measure import metrics
from benchmarks.reporting import progress
from benchmarks.reporting import history, plots
from benchmarks.errors import BenchmarkError
from benchmarks.harness.passes import HostBatch, run_pass
from fault_helpers import cli
from results_support import PNG_MAGIC, read_csv, shared_runs


@pytest.fixture(scope="module")
def runs(smoke_cache: Path):
    return shared_runs(smoke_cache)


class Records(logging.Handler):
    """Records of the "benchmarks" logger (which the CLI sets not to propagate, so caplog misses them)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> "Records":
        logger = logging.getLogger("benchmarks")
        self._level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("benchmarks")
        logger.removeHandler(self)
        logger.setLevel(self._level)


def _png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000, path


# ------------------------------------------------------------------------------------------------ history
def test_two_runs_append_two_rows_under_one_header(runs) -> None:
    text = runs.history.read_text(encoding="utf-8")
    assert text.count("schema_version,start_time,") == 1
    header, rows = read_csv(runs.history)
    assert tuple(header) == history.CSV_COLUMNS and len(rows) == 2
    assert [r["gate"] for r in rows] == ["", "REGRESSION"]
    assert [r["result_dir"] for r in rows] == [str(runs.a.output_dir), str(runs.b.output_dir)]
    # each history row is the run's result.csv row
    assert rows[0] == read_csv(runs.a.output_dir / "result.csv")[1][0]
    assert float(rows[1]["p_infer_core"]) == runs.b.result["metrics"]["p_infer_core"]


def test_history_file_problems(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("when,tokens_per_s\n1,2\n", encoding="utf-8")
    with pytest.raises(BenchmarkError, match=r"foreign\.csv: its header does not match .* column 1 \('when' vs "
                                             r"'schema_version'\)\); start a new history file"):
        history.append_history(foreign, {"metrics": {}})
    with pytest.raises(BenchmarkError, match=r"is a folder"):
        history.check_history(tmp_path)
    with pytest.raises(BenchmarkError, match=r"folder .*no_such does not exist"):
        history.check_history(tmp_path / "no_such" / "h.csv")
    empty = tmp_path / "empty.csv"
    empty.touch()
    history.append_history(empty, {"status": "completed", "metrics": {"p_infer_core": 1.5}, "tf32": True})
    _, rows = read_csv(empty)
    assert rows[0]["p_infer_core"] == "1.5" and rows[0]["tf32"] == "true" and rows[0]["mfu"] == ""


OLD_COLUMNS = history.CSV_COLUMNS[:history.CSV_COLUMNS.index("energy_source") + 1]  # before the scenario column


def test_an_older_history_is_upgraded_on_append_and_keeps_its_rows(tmp_path: Path) -> None:
    old = tmp_path / "nightly.csv"
    old_row = dict.fromkeys(OLD_COLUMNS, "")
    old_row.update(schema_version="3", status="completed", p_infer_core="40000.0", optimizations="a;b")
    old.write_text(",".join(OLD_COLUMNS) + "\n" + ",".join(old_row[c] for c in OLD_COLUMNS) + "\n", encoding="utf-8")
    history.check_history(old)  # accepted before the run
    history.append_history(old, {"status": "completed", "scenario": "reference", "world_size": 1,
                                 "metrics": {"p_infer_core": 9000.0, "p_infer_pass": 1000.0, "mfu_executed": 0.12}})
    header, rows = read_csv(old)
    assert tuple(header) == history.CSV_COLUMNS and len(rows) == 2
    assert rows[0]["p_infer_core"] == "40000.0" and rows[0]["optimizations"] == "a;b"
    assert [rows[0][c] for c in ("scenario", "p_infer_pass", "mfu_executed", "world_size")] == ["", "", "", ""]
    assert [rows[1][c] for c in ("scenario", "p_infer_pass", "mfu_executed", "world_size")] == [
        "reference", "1000.0", "0.12", "1"]
    read = history.read_history(old)
    assert read[1]["p_infer_pass"] == 1000.0 and read[0]["p_infer_pass"] is None
    # a damaged older history is not upgraded: one line naming the file, the file left as it was
    damaged = tmp_path / "damaged.csv"
    body = (",".join(OLD_COLUMNS) + "\n3").encode() + b",\xff" * (len(OLD_COLUMNS) - 1) + b"\n"
    damaged.write_bytes(body)
    with pytest.raises(BenchmarkError, match=r"damaged\.csv: written by an older version, so it is upgraded, but "
                                             r"it is not UTF-8 text at byte \d+; fix or delete the damaged rows"):
        history.append_history(damaged, {"status": "completed", "metrics": {}})
    assert damaged.read_bytes() == body
    # a header that is not a prefix stays refused
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(",".join(OLD_COLUMNS[:5] + ("other",)) + "\n", encoding="utf-8")
    with pytest.raises(BenchmarkError, match=r"column 6 \('other' vs"):
        history.check_history(mixed)


def test_plot_series_never_mix_scenarios(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    base = {"status": "completed", "precision": "fp16", "environment": {"device_name": "NVIDIA H200"},
            "metrics": {"p_infer_core": 1.0}}
    for scenario in ("optimized", "reference", None):
        history.append_history(path, {**base, "scenario": scenario})
    series = [plots.workload_series(r) for r in history.read_history(path)]
    assert series == ["NVIDIA H200 fp16 optimized", "NVIDIA H200 fp16 reference", "NVIDIA H200 fp16 optimized"]


def test_run_refuses_a_foreign_history_before_running(smoke_cache: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "h.csv"
    foreign.write_text("a,b\n", encoding="utf-8")
    code, _, err = cli(["--smoke", "--output_dir", str(tmp_path / "out"), "--history", str(foreign)], smoke_cache)
    assert code == 2 and f"--history {foreign}: its header does not match" in err
    assert not (tmp_path / "out" / "result.json").exists()


# --------------------------------------------------------------------------------------------------- plots
def test_plot_subcommand_writes_three_pngs(runs, tmp_path: Path) -> None:
    code, out, err = cli(["plot", "--history", str(runs.history), "--out", str(tmp_path / "charts")])
    assert (code, err) == (0, "")
    names = sorted(p.name for p in (tmp_path / "charts").iterdir())
    assert names == ["accuracy.png", "mfu.png", "throughput.png"]
    for name in names:
        _png(tmp_path / "charts" / name)
        assert str(tmp_path / "charts" / name) in out


def test_plot_usage_errors(tmp_path: Path) -> None:
    code, _, err = cli(["plot", "--history", str(tmp_path / "none.csv"), "--out", str(tmp_path)])
    assert code == 2 and "none.csv: file not found" in err
    header_only = tmp_path / "h.csv"
    header_only.write_text(",".join(history.CSV_COLUMNS) + "\n", encoding="utf-8")
    code, _, err = cli(["plot", "--history", str(header_only), "--out", str(tmp_path)])
    assert code == 2 and "no runs recorded yet" in err
    code, _, err = cli(["plot", "--history", str(header_only)])
    assert code == 2 and "--out" in err


def test_throughput_vs_length_png_is_written_by_the_run(runs) -> None:
    _png(runs.a.output_dir / "throughput_vs_length.png")


def test_throughput_by_length_bins() -> None:
    t = metrics.throughput_by_length([10, 70, 80, 200], {"inference": [1.0, 1.0, 1.0, 2.0], "validation": None})
    assert t["bin_start"] == [0, 64, 192] and t["questions"] == [1, 2, 1]
    assert t["tokens_per_s"] == {"inference": [10.0, 75.0, 100.0]}


def test_a_missing_matplotlib_skips_the_chart_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    data = metrics.throughput_by_length([10], {"inference": [1.0]})
    with Records() as rec:
        assert plots.plot_throughput_by_length(tmp_path / "t.png", data, "t") is None
    assert not (tmp_path / "t.png").exists()
    assert rec.messages == ["matplotlib is not installed: t.png not written (pip install matplotlib)"]
    with pytest.raises(BenchmarkError, match="plot needs matplotlib"):
        plots.plot_history([], tmp_path)


# ------------------------------------------------------------------------------------- compare-predictions
def _preds(path: Path, rows: list[tuple[str, int, int, int | None, int]]) -> Path:
    path.write_text("".join(json.dumps({"subject": s, "index": i, "n_tokens": 10, "label": y, "pred_val": v,
                                        "pred_infer": p, "choice_val": y, "choice_infer": y}) + "\n"
                            for s, i, y, v, p in rows), encoding="utf-8")
    return path


ROWS_A = [("anatomy", 0, 1, 1, 1), ("anatomy", 1, 2, 2, 2), ("virology", 0, 3, 3, 3), ("virology", 1, 4, 4, 4)]
ROWS_B = [("virology", 1, 4, 4, 9), ("anatomy", 0, 1, 1, 1), ("anatomy", 1, 2, 7, 2), ("virology", 0, 3, 8, 3)]


def test_compare_predictions_agreement_and_differences(tmp_path: Path) -> None:
    a, b = _preds(tmp_path / "a.jsonl", ROWS_A), _preds(tmp_path / "b.jsonl", ROWS_B)
    code, out, err = cli(["compare-predictions", str(a), str(b), "--out", str(tmp_path / "diff.jsonl")])
    assert (code, err) == (0, "")
    assert "agreement on pred_infer: 75.00% (3/4 agree, 1 differ); accuracy A 100.00%, B 75.00%" in out
    assert "  virology 1 4 4 9" in out
    diff = [json.loads(line) for line in (tmp_path / "diff.jsonl").read_text().splitlines()]
    assert diff == [{"subject": "virology", "index": 1, "label": 4, "a": 4, "b": 9}]
    code, out, _ = cli(["compare-predictions", str(a), str(b), "--field", "pred_val"])
    assert code == 0 and "agreement on pred_val: 50.00% (2/4 agree, 2 differ)" in out
    assert "anatomy 1 2 2 7" in out and "virology 0 3 3 8" in out
    code, out, _ = cli(["compare-predictions", str(a), str(b), "--field", "pred_val", "--show", "0"])
    assert code == 0 and out.splitlines() == ["agreement on pred_val: 50.00% (2/4 agree, 2 differ); "
                                              "accuracy A 100.00%, B 50.00%"]
    code, out, _ = cli(["compare-predictions", str(a), str(b), "--min-agreement", "0.9"])
    assert code == 1 and "below --min-agreement" in out
    code, out, _ = cli(["compare-predictions", str(a), str(a), "--field", "choice_infer"])
    assert code == 0 and "100.00% (4/4 agree, 0 differ)" in out


def test_compare_predictions_errors(tmp_path: Path) -> None:
    a = _preds(tmp_path / "a.jsonl", ROWS_A)
    fewer = _preds(tmp_path / "fewer.jsonl", ROWS_A[:3])
    code, _, err = cli(["compare-predictions", str(a), str(fewer)])
    assert code == 2 and "cover different questions (1 only in" in err and "virology #1" in err
    no_val = _preds(tmp_path / "noval.jsonl", [(s, i, y, None, p) for s, i, y, _, p in ROWS_A])
    code, _, err = cli(["compare-predictions", str(a), str(no_val), "--field", "pred_val"])
    assert code == 2 and "noval.jsonl line 1: key 'pred_val' is null" in err
    broken = tmp_path / "broken.jsonl"
    broken.write_text(a.read_text().splitlines()[0] + "\n{oops\n", encoding="utf-8")
    code, _, err = cli(["compare-predictions", str(a), str(broken)])
    assert code == 2 and "broken.jsonl line 2: not valid JSON" in err
    dup = _preds(tmp_path / "dup.jsonl", ROWS_A + ROWS_A[:1])
    code, _, err = cli(["compare-predictions", str(dup), str(a)])
    assert code == 2 and "dup.jsonl line 5: question anatomy #0 appears twice" in err
    code, _, err = cli(["compare-predictions", str(a), str(tmp_path / "none.jsonl")])
    assert code == 2 and "none.jsonl: file not found" in err


def test_compare_predictions_of_two_real_runs(runs) -> None:
    code, out, _ = cli(["compare-predictions", str(runs.a.output_dir / "predictions.jsonl"),
                        str(runs.b.output_dir / "predictions.jsonl")])
    assert code == 0 and "(114/114 agree, 0 differ)" in out  # same model, same data, deterministic


# ------------------------------------------------------------------------------------------------ progress
class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_mode_selection() -> None:
    assert isinstance(progress.make_progress(False, 10, io.StringIO())("validation"), progress.LogProgress)
    assert isinstance(progress.make_progress(True, 10, FakeTTY())("validation"), progress.LogProgress)
    assert isinstance(progress.make_progress(False, 10, FakeTTY())("validation"), progress.BarProgress)


def test_log_progress_lines() -> None:
    cb = progress.make_progress(False, 2, io.StringIO())("inference")
    with Records() as rec:
        for i in range(1, 6):
            cb(i, 5, float(i), 100 * i)
    assert rec.messages == ["inference: 2/5 questions, 100 tokens/s, elapsed 2s, ETA 3s",
                    "inference: 4/5 questions, 100 tokens/s, elapsed 4s, ETA 1s",
                    "inference: 5/5 questions, 100 tokens/s, elapsed 5s"]


def test_log_progress_of_a_packed_pass_logs_each_multiple_it_passes() -> None:
    """Packs report several questions at once: done = 7, 14, 21, ... hits no multiple of 10 before 70."""
    cb = progress.make_progress(False, 10, io.StringIO())("inference")
    with Records() as rec:
        for done in (7, 14, 21, 28, 35, 42, 43):
            cb(done, 43, 1.0, done)
    assert [m.split(" questions")[0] for m in rec.messages] == [
        "inference: 14/43", "inference: 21/43", "inference: 35/43", "inference: 42/43", "inference: 43/43"]


def test_bar_progress_draws_on_the_terminal() -> None:
    tty = FakeTTY()
    cb = progress.make_progress(False, 1000, tty)("validation")
    for i in range(1, 4):
        cb(i, 3, 0.5 * i, 2000 * i)
    text = tty.getvalue()
    assert "validation" in text and "3/3" in text and "4,000 tok/s" in text


def test_run_pass_reports_cumulative_tokens() -> None:
    calls: list[tuple[Any, ...]] = []
    batch = HostBatch([[1, 2, 3], [4, 5], [6, 7, 8, 9]], torch.device("cpu"))
    rec = run_pass("validation", lambda ids, last: torch.zeros(1, 10), batch, lambda: None,
                   progress=lambda *a: calls.append(a))
    assert [(c[0], c[1], c[3]) for c in calls] == [(1, 3, 3), (2, 3, 5), (3, 3, 9)]
    assert all(c[2] >= 0 for c in calls) and rec.tokens == 9
