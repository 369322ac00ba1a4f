"""Faults of the run itself: out of memory, non-finite logits, a failing toolkit, interruption, a failed write.

Each is provoked through the real CLI on the smoke data: a test vendor (`faulty`, on $LLAMA_BENCH_VENDOR_PATH)
whose toolkits crash, sleep, interrupt or raise torch.OutOfMemoryError, or a model wrapper monkeypatched
into the case. Verified: exit code, one stderr line, result.json status/verdict/metrics_partial, predictions.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fault_helpers import (  # noqa: E402
    REPO_ROOT,
    assert_clean_exit,
    first_longer,
    TEST_VENDORS,
    run_cli,
    signal_at_phase,
)
from fault_helpers import one_thread_per_module, smoke_cache_env  # noqa: E402,F401  (autouse fixtures)

from benchmarks.reporting import atomic as results  # noqa: E402
from benchmarks.llama2_7b_mmlu import Llama2MMLU  # noqa: E402

N_QUESTIONS = 57  # --limit 1 over the 57 subjects


@pytest.fixture(autouse=True)
def _test_vendors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_BENCH_VENDOR_PATH", str(TEST_VENDORS))


def run_faulty(data_dir: Path, out: Path, *extra: str):
    return run_cli(data_dir, out, *extra, vendor="faulty")


# ------------------------------------------------------------------------------------------ out of memory


def test_out_of_memory_in_a_pass(tmp_path: Path, smoke_data_dir: Path, monkeypatch) -> None:
    first = run_cli(smoke_data_dir, tmp_path / "ref", "--set", "no_validation=true")  # the prompt lengths
    threshold = first.predictions[0]["n_tokens"]
    index, tokens = first_longer(first.predictions, threshold)
    monkeypatch.setenv("FAULTY_OOM_TOKENS", str(threshold))

    run = run_faulty(smoke_data_dir, tmp_path / "out", "--set", "compiler=oom_long")
    line = assert_clean_exit(
        run, 3, "run failed: DeviceOutOfMemory: out of device memory in ",
        f"the inference pass at question {index + 1}/{N_QUESTIONS} ({tokens} tokens)",
        "process peak RSS",  # the memory figures (the CPU's: this test runs on the host)
        "Tried to allocate 2.00 GiB",  # torch's own figures, kept
        "--set precision=bf16", "--set compiler=none",  # the knobs for this config (fp32, a toolkit)
        "status failed recorded in",
    )
    assert "expandable_segments" not in line  # torch's advice beyond the figures is dropped: one short line
    result = run.result
    assert result["status"] == "failed"
    assert result["error"].startswith("DeviceOutOfMemory: out of device memory in the inference pass")
    assert result["phases_done"] == ["init", "validation", "compile"]
    assert result["metrics_partial"]["p_val_core"] > 0
    assert all(row["pred_val"] is not None for row in run.predictions)


@pytest.mark.slow  # a few seconds: keeps the fast tier under 90 s
def test_out_of_memory_in_a_packed_forward_names_the_pack(tmp_path: Path, smoke_data_dir: Path,
                                                          monkeypatch) -> None:
    from benchmarks.harness.passes import plan_packs

    first = run_cli(smoke_data_dir, tmp_path / "ref", "--set", "no_validation=true")
    lengths = [row["n_tokens"] for row in first.predictions]
    budget = 2 * max(lengths)
    plan = plan_packs(lengths, budget)
    i, j = next((i, j) for i, j in plan if j - i > 1 and sum(lengths[i:j]) > max(lengths))
    monkeypatch.setenv("FAULTY_OOM_TOKENS", str(max(lengths)))  # every prompt alone fits; this pack does not
    run = run_faulty(smoke_data_dir, tmp_path / "out", "--set", "compiler=oom_long",
                     "--set", f"pack_tokens={budget}")
    assert_clean_exit(
        run, 3, "run failed: DeviceOutOfMemory: out of device memory in ",
        f"the inference pass at question {i + 1}/{N_QUESTIONS} (a pack of {j - i} prompts) "
                f"({sum(lengths[i:j])} tokens)", f"--set pack_tokens={max(lengths)} (or 0: one prompt per forward")
    assert run.result["status"] == "failed"


def test_out_of_memory_while_loading(tmp_path: Path, smoke_data_dir: Path, monkeypatch) -> None:
    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 13.00 GiB.")

    monkeypatch.setattr(Llama2MMLU, "build_model", oom)
    run = run_cli(smoke_data_dir, tmp_path / "out", "--set", "precision=bf16")
    line = assert_clean_exit(run, 3, "run failed: DeviceOutOfMemory: out of device memory in init",
                             "Tried to allocate 13.00 GiB")
    assert "--set precision=" not in line  # already bf16: only knobs that apply are suggested
    assert run.result["status"] == "failed"


# ------------------------------------------------------------------------------------- non-finite logits


def test_nonfinite_logits_make_the_run_invalid(tmp_path: Path, smoke_data_dir: Path, monkeypatch) -> None:
    build = Llama2MMLU.build_model

    def nan_for_even_lengths(self, *args, **kwargs):
        model = build(self, *args, **kwargs)

        def fn(ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
            logits = model(ids, last)
            return logits * float("nan") if ids.shape[1] % 2 == 0 else logits
        return fn

    monkeypatch.setattr(Llama2MMLU, "build_model", nan_for_even_lengths)
    run = run_cli(smoke_data_dir, tmp_path / "out")
    assert run.code == 0, run.err
    expected = sum(row["n_tokens"] % 2 == 0 for row in run.predictions)
    assert 0 < expected < N_QUESTIONS
    result = run.result
    assert result["nonfinite_questions"] == {"validation": expected, "inference": expected}
    assert result["verdict"]["status"] == "INVALID"
    for name in ("validation", "inference"):
        assert f"{expected} question(s) with non-finite logits in the {name} pass" in result["verdict"]["reasons"]
    assert "verdict: INVALID" in run.out


# ------------------------------------------------------------------------------------- compile fallback


def test_toolkit_failure_fails_the_run_without_fallback(tmp_path: Path, smoke_data_dir: Path) -> None:
    run = run_faulty(smoke_data_dir, tmp_path / "out", "--set", "compiler=broken")
    assert_clean_exit(run, 3, "run failed: RuntimeError: simulated compiler crash", "traceback in run.log")
    result = run.result
    assert result["status"] == "failed"
    assert result["error"] == "RuntimeError: simulated compiler crash"
    assert result["phases_done"] == ["init", "validation"]  # a crash after validation keeps its metrics
    assert {"p_val_whole", "p_val_core", "val_acc"} <= set(result["metrics_partial"])
    assert "Traceback" in (tmp_path / "out" / "run.log").read_text()


def test_toolkit_failure_falls_back_when_allowed(tmp_path: Path, smoke_data_dir: Path) -> None:
    run = run_faulty(smoke_data_dir, tmp_path / "out", "--set", "compiler=broken",
                     "--set", "allow_compile_fallback=true")
    assert run.code == 0, run.err
    result = run.result
    assert result["status"] == "completed"
    assert result["toolkit_report"]["compile_fallback"] == "RuntimeError: simulated compiler crash"
    assert result["verdict"]["status"] == "INVALID"
    assert any("toolkit failed and the plain model was used" in r for r in result["verdict"]["reasons"])


# ----------------------------------------------------------------------------------------- interruption


def test_keyboard_interrupt_keeps_a_partial_result(tmp_path: Path, smoke_data_dir: Path) -> None:
    run = run_faulty(smoke_data_dir, tmp_path / "out", "--set", "compiler=interrupt")
    assert_clean_exit(run, 130, "interrupted: status interrupted recorded in")
    result = run.result
    assert result["status"] == "interrupted"
    assert result["phases_done"] == ["init", "validation"]
    assert result["metrics_partial"]["p_val_whole"] > 0


@pytest.mark.slow
def test_sigterm_keeps_a_partial_result(tmp_path: Path, smoke_data_dir: Path, smoke_cache: Path) -> None:
    """A real process, SIGTERM while the toolkit 'compiles' (sleeps) after the validation pass."""
    out = tmp_path / "out"
    env = {**os.environ, "LLAMA_BENCH_VENDOR_PATH": str(TEST_VENDORS), "LLAMA_BENCH_CACHE": str(smoke_cache),
           "FAULTY_SLEEP_S": "300", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO_ROOT / "run_benchmark.py"), "--vendor", "faulty",
           "--data_dir", str(smoke_data_dir), "--output_dir", str(out), "--limit", "1", "--quiet",
           "--set", "compiler=slow"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = signal_at_phase(proc, out / "result.json", "validation")
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == [f"interrupted: signal {signal.SIGTERM.value}; status interrupted "
                                           f"recorded in {out / 'result.json'}"]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "interrupted"
    assert result["error"] == f"KeyboardInterrupt: signal {signal.SIGTERM.value}"
    assert result["phases_done"] == ["init", "validation"]
    assert result["metrics_partial"]["p_val_whole"] > 0 and result["metrics_partial"]["p_val_core"] > 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == N_QUESTIONS and all(isinstance(r["pred_val"], int) for r in rows)
    assert not list(out.glob(".*.tmp"))  # no half-written temp file left behind


# ------------------------------------------------------------------------------------------ atomic write


@pytest.mark.parametrize("fail", ["fsync", "replace"])
def test_failed_write_leaves_the_previous_file(tmp_path: Path, monkeypatch, fail: str) -> None:
    path = tmp_path / "result.json"
    results.write_json(path, {"status": "running", "phases_done": ["init"]})
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fail, boom)
    with pytest.raises(OSError, match="No space left"):
        results.write_json(path, {"status": "completed", "metrics": {"x": 1.0}})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # the temp file is gone too


# ------------------------------------------------------------------------------------------ streaming


@pytest.mark.slow  # a few seconds: keeps the fast tier under 90 s
def test_predictions_are_streamed_while_a_pass_runs(tmp_path: Path, smoke_data_dir: Path, monkeypatch) -> None:
    """A pass that dies keeps what it answered: predictions.partial.jsonl gets each chunk of log_freq answers."""
    first = run_cli(smoke_data_dir, tmp_path / "ref", "--set", "no_validation=true")
    threshold = first.predictions[0]["n_tokens"]
    index, _ = first_longer(first.predictions, threshold)
    monkeypatch.setenv("FAULTY_OOM_TOKENS", str(threshold))
    run = run_faulty(smoke_data_dir, tmp_path / "out", "--set", "compiler=oom_long", "--set", "log_freq=5")
    assert run.code == 3
    rows = [json.loads(line) for line in (run.output_dir / "predictions.partial.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["pass"] == "validation"]
    infer = [r for r in rows if r["pass"] == "inference"]
    assert len(val) == N_QUESTIONS and len(infer) == (index // 5) * 5  # whole chunks before the failing question
    by_key = {(r["subject"], r["index"]): r["pred_val"] for r in run.predictions}
    assert [r["pred"] for r in val] == [by_key[(r["subject"], r["index"])] for r in val]
    # oom_long runs the plain model on short prompts: its streamed answers are the validation answers
    assert all(r["pred"] == by_key[(r["subject"], r["index"])] for r in infer)
    # a completed run leaves no partial file: predictions.jsonl holds both passes
    assert not (first.output_dir / "predictions.partial.jsonl").exists()
