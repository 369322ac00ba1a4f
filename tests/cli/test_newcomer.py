"""What a newcomer meets first: the two set-up lines (README = .ci/run), a --help that starts without torch,
no abbreviated flags, the smoke run's thread count, and the host memory check of a CPU run."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness import host_memory, threads
from benchmarks.errors import BenchmarkError
from fault_helpers import cli
from results_support import run_smoke

REPO_ROOT = Path(__file__).resolve().parents[2]
GIB = 1024**3


# ------------------------------------------------------------------------------------------ set-up lines
def _readme_setup_lines() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up and run", 1)[1]
    block = section.split("```", 2)[1]
    return [line for line in block.strip().splitlines() if line.strip()]


def test_readme_setup_is_two_lines_that_ci_runs_verbatim() -> None:
    lines = _readme_setup_lines()
    assert len(lines) == 2, lines
    assert "pip install torch==2.13.0" in lines[0] and "run_benchmark.py --case llama2_7b_mmlu --smoke" in lines[0]
    assert "requirements-dev.txt" in lines[1] and "pytest" in lines[1]
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for line in lines:
        assert line in ci, f".ci/run does not run the README line: {line}"
    assert any("-m slow" in line and "--durations=10" in line for line in ci)
    assert "set -euo pipefail" in ci  # a failing line fails CI
    assert "The issue" not in (REPO_ROOT / "README.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------- lazy imports
@pytest.mark.parametrize("argv", [
    ["--help"],
    ["compare-results", "--help"],
    ["compare-predictions", "--help"],
    ["plot", "--help"],
])
def test_help_and_subcommands_start_without_torch(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "run_benchmark.py", *argv], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert len(imported) > 20  # importtime did report: the check below can fail
    assert not {"torch", "transformers"} & imported


def test_plot_runs_without_torch(tmp_path: Path) -> None:
    """A real `plot` on a history file, in a fresh interpreter: neither torch nor transformers is imported."""
    from benchmarks.reporting import history

    hist = tmp_path / "h.csv"
    history.append_history(hist, {"start_time": "2026-01-01T00:00:00+00:00", "status": "completed",
                                  "metrics": {"p_infer_core": 10.0}})
    proc = subprocess.run([sys.executable, "-X", "importtime", "run_benchmark.py", "plot", "--history", str(hist),
                           "--out", str(tmp_path / "c")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "matplotlib" in imported and not {"torch", "transformers"} & imported


@pytest.mark.parametrize("argv, needle", [
    (["--smok"], "unrecognized arguments: --smok"),
    (["--smoke", "--lim", "1"], "unrecognized arguments: --lim"),
    (["compare-results", "r.json", "--base", "b.yaml"], "the following arguments are required: --baseline"),
    (["plot", "--hist", "h.csv", "--out", "x"], "the following arguments are required: --history"),
])
def test_abbreviated_flags_are_errors(argv: list[str], needle: str, tmp_path: Path) -> None:
    code, out, err = cli(argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err, err
    assert not (REPO_ROOT / "x").exists()


# ----------------------------------------------------------------------------------------------- threads
def test_smoke_takes_one_thread_unless_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        line = threads.choose_threads(smoke=True, device=torch.device("cpu"))
        assert torch.get_num_threads() == threads.SMOKE_THREADS == 1
        assert line.startswith("torch threads: 1 of ") and "OMP_NUM_THREADS" in line
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        line = threads.choose_threads(smoke=True, device=torch.device("cpu"))
        assert torch.get_num_threads() == 2 and "OMP_NUM_THREADS=2 from the environment" in line
        monkeypatch.delenv("OMP_NUM_THREADS")
        threads.choose_threads(smoke=False, device=torch.device("cpu"))  # a real model keeps torch's count
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------ host memory
def _meminfo(tmp_path: Path, gib: float) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       99999999 kB\nMemFree:         1000 kB\nMemAvailable:   {int(gib * 1024 * 1024)} kB\n",
                    encoding="ascii")
    return path


def test_llama2_7b_parameter_count_and_needs(tmp_path: Path) -> None:
    from benchmarks.llama2_7b_mmlu.model import parameter_count

    assert parameter_count(tmp_path) == 6_738_415_616  # Llama-2-7B, no config.json: the 7B shape
    assert parameter_count(tmp_path, layers=2) == 6_738_415_616 - 30 * 202_383_360
    assert parameter_count(tmp_path, synthetic=False) is None  # the load reports the missing config.json
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    assert parameter_count(tmp_path) is None  # ... and a broken one
    (tmp_path / "config.json").unlink()
    fp32 = host_memory.needed_bytes(6_738_415_616, "fp32") / GIB
    bf16 = host_memory.needed_bytes(6_738_415_616, "bf16") / GIB
    assert 26.5 < fp32 < 28 and 13.5 < bf16 < 15
    assert host_memory.available_bytes(_meminfo(tmp_path, 20)) == 20 * GIB
    assert host_memory.available_bytes(tmp_path / "none") is None
    with pytest.raises(BenchmarkError, match=r"needs 27\.1 GiB .* MemAvailable is 20\.0 GiB; use --set "
                                             r"precision=bf16 .*--set model_layers=N"):
        host_memory.check_host_memory(6_738_415_616, "fp32", _meminfo(tmp_path, 20))
    assert "available" in host_memory.check_host_memory(6_738_415_616, "bf16", _meminfo(tmp_path, 20))


def _seven_b_data_dir(smoke_data_dir: Path, tmp_path: Path) -> Path:
    """The smoke data with a config.json of the real 7B shape: what a CPU user with the real files has."""
    data = tmp_path / "data"
    shutil.copytree(smoke_data_dir, data, ignore=shutil.ignore_patterns(".lock", ".complete-*"))
    cfg_path = data / "llama2_7b_hf" / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32, vocab_size=32000)
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    return data


def test_cpu_run_of_the_7b_size_is_refused_up_front(smoke_data_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    data = _seven_b_data_dir(smoke_data_dir, tmp_path)
    monkeypatch.setattr(host_memory, "MEMINFO", _meminfo(tmp_path, 16))
    out = tmp_path / "out"
    code, _, err = cli(["--vendor", "cpu", "--data_dir", str(data), "--output_dir", str(out), "--quiet"])
    assert code == 2 and err.count("\n") == 1
    assert re.search(r"^error: host memory: this CPU run needs 27\.1 GiB \(6\.74B parameters x 4 bytes \(fp32\)", err)
    assert "MemAvailable is 16.0 GiB" in err and "--set model_layers=N" in err
    assert not out.exists()  # refused before anything was written
    monkeypatch.setattr(host_memory, "MEMINFO", _meminfo(tmp_path, 12))
    code, _, err = cli(["--vendor", "cpu", "--data_dir", str(data), "--output_dir", str(out), "--quiet",
                        "--set", "precision=bf16"])
    assert code == 2 and "needs 14.6 GiB" in err and "precision=bf16 (about half)" not in err


@pytest.mark.slow  # a few seconds: keeps the fast tier under 90 s
def test_shrunk_model_runs_and_is_invalid(smoke_cache: Path, tmp_path: Path) -> None:
    run = run_smoke(smoke_cache, tmp_path / "out", "--set", "model_layers=1")
    assert run.code == 0, run.err
    r = run.result
    assert r["config"]["model_layers"] == 1 and r["config_sources"]["model_layers"] == "--set"
    assert r["verdict"]["status"] == "INVALID" and r["verdict"]["accuracy_meaningful"] is False
    assert "shrunk model: model_layers=1, not the case's model" in r["verdict"]["reasons"]
    full = run_smoke(smoke_cache, tmp_path / "full")
    # one of the smoke model's two layers: other logits, so (random weights) other predictions somewhere
    a = [json.loads(x)["pred_val"] for x in (run.output_dir / "predictions.jsonl").read_text().splitlines()]
    b = [json.loads(x)["pred_val"] for x in (full.output_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(a) == len(b) and a != b
    log = (run.output_dir / "run.log").read_text(encoding="utf-8")
    assert "torch threads: 1 of" in log and "host memory:" in log


def test_model_layers_must_be_positive(smoke_cache: Path, tmp_path: Path) -> None:
    code, _, err = cli(["--smoke", "--set", "model_layers=0", "--output_dir", str(tmp_path / "o")], smoke_cache)
    assert code == 2 and "config key 'model_layers': got 0; expected a positive number" in err
