"""plot: one series per comparable workload, "no data", y from 0, flags in titles; plot --html: one
self-contained page, checked in a real headless browser (Chromium) when it is installed."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reporting import history, html_report, plots
from fault_helpers import cli, signal_at_phase
from results_support import PNG_MAGIC

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


NIGHTLY = Path(__file__).resolve().parents[2] / "tools" / "nightly.sh"


def _nightly_env(smoke_cache: Path, **extra: str) -> dict[str, str]:
    import os

    # NIGHTLY_PYTHON: the interpreter running the tests (a virtualenv's has the requirements; `python3` may not)
    return {**os.environ, "LLAMA_BENCH_CACHE": str(smoke_cache), "NIGHTLY_SMOKE": "1", "NIGHTLY_VENDOR": "cpu",
            "NIGHTLY_REPEAT": "1", "NIGHTLY_ARGS": "--limit 1 --set few_shots=0", "NIGHTLY_PYTHON": sys.executable,
            **extra}


@pytest.mark.slow
def test_nightly_script_runs_gates_records_and_reports(smoke_cache: Path, tmp_path: Path) -> None:
    """tools/nightly.sh end to end on the smoke workload, called from another folder with relative paths: night 1
    against itself passes, night 2 against an impossible baseline exits 1, night 3 against a baseline of another
    workload is refused (exit 2) and is a history row too; the report's latest night is that refused one."""
    repo = Path(__file__).resolve().parents[2]
    first = tmp_path / "first"
    env = _nightly_env(smoke_cache, NIGHTLY_HOME="nightly")
    seed = subprocess.run([sys.executable, "run_benchmark.py", "--smoke", "--limit", "1", "--set", "few_shots=0", "--quiet",
                           "--output_dir", str(first)], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert seed.returncode == 0, seed.stderr
    # baselines named relative to the caller's folder (tmp_path), as NIGHTLY_HOME is
    (tmp_path / "impossible.yaml").write_text("smoke: true\nlimit: 1\nmetrics: {p_infer_core: 1.0e+12}\n",
                                              encoding="utf-8")
    (tmp_path / "other.yaml").write_text("smoke: false\nmetrics: {p_infer_core: 1.0}\n", encoding="utf-8")
    codes, outs = [], []
    for baseline in ("first/result.json", "impossible.yaml", "other.yaml"):
        proc = subprocess.run([str(NIGHTLY)], cwd=tmp_path, env={**env, "NIGHTLY_BASELINE": baseline},
                              capture_output=True, text=True, timeout=300)
        codes.append(proc.returncode)
        outs.append(proc.stdout + proc.stderr)
        assert "report.html" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert codes[0] in (0, 1) and codes[1:] == [1, 2], outs  # night 1 against itself: CPU noise may still exceed 5%
    assert "nightly: performance regression" in outs[1] and "nightly: misconfigured" in outs[2]
    assert not (repo / "nightly").exists() and (tmp_path / "nightly" / "history.csv").is_file()
    rows = history.read_history(tmp_path / "nightly" / "history.csv")
    assert [r["status"] for r in rows] == ["completed", "completed", "failed"]
    assert rows[2]["error"].startswith("error: --baseline ") and "not comparable with this run" in rows[2]["error"]
    latest = (tmp_path / "nightly" / "latest").read_text().strip()
    assert rows[2]["result_dir"] == str(tmp_path / "nightly" / "runs" / latest)
    text = (tmp_path / "nightly" / "report" / "report.html").read_text(encoding="utf-8")
    assert "3 run(s)" in text and '<span class="badge">REGRESSION</span>' in text
    assert '<span class="badge ended">FAILED</span>' in text.split("<h2>Charts</h2>")[0]  # the latest night
    proc = subprocess.run([str(NIGHTLY)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "NIGHTLY_BASELINE" in proc.stderr


@pytest.mark.slow
def test_nightly_sigterm_stops_the_run_and_records_an_interrupted_night(smoke_cache: Path, tmp_path: Path) -> None:
    """SIGTERM to the script: its run stops (no python left behind) and records the night as interrupted; the
    script still writes the history row's report and exits 130."""
    import os

    env = _nightly_env(smoke_cache, NIGHTLY_HOME=str(tmp_path / "home"), NIGHTLY_VENDOR="slowdown",
                       NIGHTLY_BASELINE=str(tmp_path / "base.yaml"),
                       LLAMA_BENCH_VENDOR_PATH=str(NIGHTLY.parents[1] / "tests" / "vendors"),
                       NIGHTLY_ARGS="--limit 1 --set few_shots=0 --set slowdown=400")  # inference ~400x slower
    (tmp_path / "base.yaml").write_text("smoke: true\nmetrics: {p_infer_core: 1.0}\n", encoding="utf-8")
    proc = subprocess.Popen([str(NIGHTLY)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # once the run is inside its (slowed) inference pass
    out, err = signal_at_phase(proc, tmp_path / "home" / "runs" / "*" / "result.json", "compile")
    run_dir = next((tmp_path / "home" / "runs").glob("*/result.json")).parent
    assert proc.returncode == 130, out + err
    assert "nightly: interrupted" in out
    left = [p for p in os.listdir("/proc") if p.isdigit() and str(run_dir) in _cmdline(p)]
    assert left == [], f"processes of the run still alive: {left}"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "interrupted" and "signal 15" in result["error"]
    rows = history.read_history(tmp_path / "home" / "history.csv")
    assert [(r["status"], r["result_dir"]) for r in rows] == [("interrupted", str(run_dir))]
    text = (tmp_path / "home" / "report" / "report.html").read_text(encoding="utf-8")
    assert '<span class="badge ended">INTERRUPTED</span>' in text


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
