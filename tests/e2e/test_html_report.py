"""plot: one series per comparable workload, "no data", y from 0, flags in titles; plot --html: one
self-contained page, checked in a real headless browser (Chromium) when it is installed."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reporting import history, html_report, plots
from results_support import PNG_MAGIC, cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _result(when: str, p: float, **top: Any) -> dict[str, Any]:
    return {"schema_version": 2, "start_time": when, "status": "completed", "case": "llama2_7b_mmlu",
            "vendor": "cpu", "precision": "fp32", "toolkit": "none", "smoke": False, "limit": None,
            "environment": {"device_name": "x86_64"}, "verdict": {"status": "VALID"},
            "metrics": {"p_infer_core": p, "p_val_core": p / 2, "mfu": None, "infer_acc": 0.45, "val_acc": 0.44},
            **top}


@pytest.fixture()
def hist(tmp_path: Path) -> Path:
    """Four runs: two full runs (the second gated with a regression, its folder holding the gate rows), a smoke
    run and a --limit run, all on one device and precision."""
    path = tmp_path / "history.csv"
    regressed = tmp_path / "runs" / "night2"
    regressed.mkdir(parents=True)
    gate = {"status": "REGRESSION", "rows": [{"metric": "p_infer_core", "baseline": 1000.0, "now": 800.0,
                                              "verdict": "REGRESSION"},
                                             {"metric": "mem_used_gib", "baseline": 1.0, "now": 1.0, "verdict": "ok"}]}
    (regressed / "result.json").write_text(json.dumps({"gate": gate}), encoding="utf-8")
    history.append_history(path, _result("2026-11-01T02:00:00+00:00", 1000.0), tmp_path / "runs" / "night1")
    history.append_history(path, _result("2026-11-02T02:00:00+00:00", 800.0, gate=gate), regressed)
    history.append_history(path, _result("2026-11-02T03:00:00+00:00", 50.0, smoke=True), tmp_path / "runs" / "s")
    history.append_history(path, _result("2026-11-02T04:00:00+00:00", 900.0, limit=2), tmp_path / "runs" / "l")
    return path


def test_series_never_join_smoke_limit_and_full_runs(hist: Path) -> None:
    rows = history.read_history(hist)
    names = [plots.workload_series(r) for r in rows]
    assert names == ["x86_64 fp32 optimized", "x86_64 fp32 optimized", "x86_64 fp32 optimized smoke",
                     "x86_64 fp32 optimized limit 2"]
    assert plots.workload_flags(rows) == ["smoke", "--limit 2"]
    assert plots.workload_flags(rows[:2]) == []


def test_history_charts_lines_titles_axes(hist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real_save = plots._save

    def record(fig: Any, path: Path) -> None:  # look at each figure as it is saved, then save it for real
        ax = fig.axes[0]
        seen[path.name] = {"title": ax.get_title(), "ylabel": ax.get_ylabel(), "ylim": ax.get_ylim(),
                           "lines": {ln.get_label(): list(ln.get_ydata()) for ln in ax.get_lines()},
                           "texts": [t.get_text() for t in ax.texts]}
        real_save(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    written = plots.plot_history(history.read_history(hist), tmp_path / "charts")
    assert [p.name for p in written] == ["throughput.png", "mfu.png", "accuracy.png"]
    thr = seen["throughput.png"]
    assert thr["lines"]["x86_64 fp32 optimized infer"] == [1000.0, 800.0]  # the two full runs: one line
    assert thr["lines"]["x86_64 fp32 optimized smoke infer"] == [50.0]
    assert thr["lines"]["x86_64 fp32 optimized limit 2 infer"] == [900.0]
    assert thr["ylim"][0] == 0 and "smoke" in thr["title"] and "--limit 2" in thr["title"]
    assert seen["mfu.png"]["texts"] == ["no data"] and seen["mfu.png"]["lines"] == {}
    acc = seen["accuracy.png"]
    assert acc["ylabel"] == "accuracy, %" and acc["lines"]["x86_64 fp32 optimized infer"] == [45.0, 45.0]
    assert acc["ylim"][0] == 0


def test_throughput_vs_length_empty_is_no_data(tmp_path: Path) -> None:
    data = {"bin_tokens": 64, "bin_start": [0], "questions": [1], "tokens_per_s": {"inference": [None]}}
    path = plots.plot_throughput_by_length(tmp_path / "t.png", data, "case: x, fp32, none, smoke, --limit 1")
    assert path is not None and path.read_bytes()[:8] == PNG_MAGIC


def _html(hist: Path, tmp_path: Path) -> tuple[Path, str]:
    code, out, err = cli(["plot", "--history", str(hist), "--out", str(tmp_path / "report"), "--html"])
    assert (code, err) == (0, "")
    page = tmp_path / "report" / "report.html"
    assert str(page) in out
    return page, page.read_text(encoding="utf-8")


def test_html_report_is_self_contained(hist: Path, tmp_path: Path) -> None:
    page, text = _html(hist, tmp_path)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 3 and all(base64.b64decode(i)[:8] == PNG_MAGIC for i in images)
    refs = re.findall(r'(?:src|href)="([^"]+)"', text)
    # no network: inlined charts, and the run folders, which sit beside the report's folder, linked relatively
    # (so the links work inside a CI artifact of report/ and runs/; before, they were file:// URIs)
    assert not [r for r in refs if not r.startswith(("data:image/png;base64,", "../runs/"))]
    assert "<script" not in text and "<link" not in text
    # newest first: the --limit run is the latest; the regressed night is marked, its folder linked
    assert text.index("limit 2") < text.index(">2026-11-02T02:00:00+00:00<")
    assert text.count('<tr class="regression">') == 1  # its row in "all runs"; the latest run has no gate
    assert 'href="../runs/night2"' in text and "1 gated run(s) with a regression" in text
    assert (page.parent / "../runs/night2/result.json").resolve().is_file()  # the link resolves from the page


def test_html_links_a_run_folder_elsewhere_by_its_file_uri(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "run1"
    rows = [{**_row_of(_result("2026-11-01T02:00:00+00:00", 1000.0)), "result_dir": str(elsewhere)}]
    text = html_report.render(rows, [], tmp_path / "h.csv", tmp_path / "site" / "report")
    assert f'href="{elsewhere.as_uri()}"' in text


def _row_of(result: dict[str, Any]) -> dict[str, Any]:
    row = history.row(result)
    return {k: (float(v) if k in history.NUMERIC_COLUMNS and v else None if k in history.NUMERIC_COLUMNS else v)
            for k, v in row.items()}


def test_html_latest_run_shows_its_gate_rows(hist: Path, tmp_path: Path) -> None:
    rows = [r for r in history.read_history(hist) if r["start_time"] <= "2026-11-02T02:00:00+00:00"]
    text = html_report.render(rows, [], hist)
    latest = text.split("<h2>Charts</h2>")[0]
    assert "<h3>Gate</h3>" in latest and '<tr class="regression"><td class="text">p_infer_core</td>' in latest
    assert 'REGRESSION <span class="badge">' not in latest and '<span class="badge">REGRESSION</span>' in latest


def _chromium(url: str, shot: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           "--window-size=1200,1600", f"--screenshot={shot}", url],
                          capture_output=True, text=True, timeout=120)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def _colours(png: Path) -> int:
    from matplotlib.image import imread

    img = imread(str(png))
    flat = img.reshape(-1, img.shape[-1])
    return len({tuple(px) for px in flat[:: max(1, len(flat) // 200_000)]})


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it: apt-get install -y chromium)")
def test_html_report_in_a_headless_browser(hist: Path, tmp_path: Path) -> None:
    page, _ = _html(hist, tmp_path)
    # the check can fail: a page with a script error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>undefinedFunction();</script></body></html>", encoding="utf-8")
    proc = _chromium(bad.as_uri(), tmp_path / "bad.png")
    assert any("undefinedFunction" in line for line in _console_errors(proc.stderr)), proc.stderr[-3000:]
    shot = tmp_path / "shot.png"
    proc = _chromium(page.as_uri(), shot)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _console_errors(proc.stderr) == [], proc.stderr[-3000:]
    assert shot.read_bytes()[:8] == PNG_MAGIC
    assert _colours(shot) > 20  # text, tables and charts: not a blank page


@pytest.mark.slow
def test_nightly_script_runs_gates_records_and_reports(smoke_cache: Path, tmp_path: Path) -> None:
    """tools/nightly.sh end to end on the smoke workload: night 1 against itself passes, night 2 against an
    impossible baseline exits 1; both nights are in the history and the report."""
    import os

    repo = Path(__file__).resolve().parents[2]
    first = tmp_path / "first"
    env = {**os.environ, "LLAMA_BENCH_CACHE": str(smoke_cache), "NIGHTLY_HOME": str(tmp_path / "nightly"),
           "NIGHTLY_SMOKE": "1", "NIGHTLY_VENDOR": "cpu", "NIGHTLY_ARGS": "--limit 1 --set few_shots=0"}
    seed = subprocess.run(["python3", "run_benchmark.py", "--smoke", "--limit", "1", "--set", "few_shots=0", "--quiet",
                           "--output_dir", str(first)], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert seed.returncode == 0, seed.stderr
    # a baseline with the workload of the seed run, expecting a speed no CPU reaches
    impossible = tmp_path / "impossible.yaml"
    impossible.write_text("smoke: true\nlimit: 1\nmetrics: {p_infer_core: 1.0e+12}\n", encoding="utf-8")
    codes = []
    for baseline in (first / "result.json", impossible):
        proc = subprocess.run(["tools/nightly.sh"], cwd=repo, env={**env, "NIGHTLY_BASELINE": str(baseline)},
                              capture_output=True, text=True, timeout=300)
        codes.append(proc.returncode)
        assert "report.html" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert codes[1] == 1 and "nightly: performance regression" in proc.stdout
    assert codes[0] in (0, 1)  # against itself: CPU noise may still exceed 5%
    assert len(history.read_history(tmp_path / "nightly" / "history.csv")) == 2
    text = (tmp_path / "nightly" / "report" / "report.html").read_text(encoding="utf-8")
    assert "2 run(s)" in text and '<span class="badge">REGRESSION</span>' in text
    proc = subprocess.run(["tools/nightly.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "NIGHTLY_BASELINE" in proc.stderr
