"""Shared by the tests that run the CLI: the one in-process CLI runner (`cli`, and `run_cli` on it) with its
one-line verdict checked, copies of the smoke data to corrupt, and the folder of the test vendors
(tests/vendors: `faulty`, whose toolkits fail on purpose, `rankfault`, `fakenvml`, `slowdown`), and the one
wait-for-a-phase-then-signal for real processes (`signal_at_phase`).

The smoke data_dir comes from conftest.py's session fixture `smoke_data_dir` (generated once); a test copies
the part it corrupts (the MMLU CSVs, or the weights folder) and links the rest.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CASE = "llama2_7b_mmlu"
MMLU = "mmlu_dataset/data"
WEIGHTS = "llama2_7b_hf"


@dataclass
class CliRun:
    code: int
    out: str
    err: str
    output_dir: Path

    @property
    def result(self) -> dict[str, Any]:
        return json.loads((self.output_dir / "result.json").read_text(encoding="utf-8"))

    @property
    def predictions(self) -> list[dict[str, Any]]:
        lines = (self.output_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    @property
    def line(self) -> str:
        return self.err.strip()


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """The tiny model on one thread: on a loaded 2-core machine two threads make a run 2-20x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def reset_logging() -> None:
    """The CLI leaves its handlers on the "benchmarks" logger; close them (run.log stays on disk)."""
    logger = logging.getLogger("benchmarks")
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
    logger.propagate = True


def cli(argv: list[str], cache: Path | None = None) -> tuple[int, str, str]:
    """The one in-process CLI runner of the tests: `benchmarks.cli.main(argv)` with stdout/stderr captured
    (and $LLAMA_BENCH_CACHE set to `cache` when given); the CLI's log handlers are closed afterwards."""
    from benchmarks.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with pytest.MonkeyPatch.context() as mp:
            if cache is not None:
                mp.setenv("LLAMA_BENCH_CACHE", str(cache))
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
    finally:
        reset_logging()
    return code, out.getvalue(), err.getvalue()


def run_cli(data_dir: Path | None, output_dir: Path, *extra: str, vendor: str = "cpu", limit: int | None = 1,
            quiet: bool = True) -> CliRun:
    """The CLI on `data_dir` with the tests' usual options; never --smoke (it would regenerate data)."""
    argv = ["--vendor", vendor, "--output_dir", str(output_dir)]
    if data_dir is not None:
        argv += ["--data_dir", str(data_dir)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    if quiet:
        argv.append("--quiet")
    return CliRun(*cli([*argv, *extra]), output_dir)


def assert_clean_exit(run: CliRun, code: int, prefix: str, *needles: str) -> str:
    """Exit `code`, stderr exactly one line starting with `prefix`, naming every needle, no traceback."""
    lines = run.err.splitlines()
    assert run.code == code, f"exit {run.code}, expected {code}; stderr:\n{run.err}"
    assert "Traceback" not in run.err and "Traceback" not in run.out
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{run.err}"
    assert lines[0].startswith(prefix), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in: {lines[0]}"
    return lines[0]


def assert_usage_error(run: CliRun, *needles: str) -> str:
    return assert_clean_exit(run, 2, "error: ", *needles)


# ------------------------------------------------------------------------------------- real processes


def wait_for_phase(proc: subprocess.Popen, result_json: Path, phase: str, timeout_s: float = 120.0) -> Path:
    """Until the run's result.json lists `phase` in `phases_done`; fails when the process ends or `timeout_s`
    passes first. `result_json` may hold a glob (`runs/*/result.json`: a run folder not named in advance).
    Returns the result.json that shows the phase."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        pattern = str(result_json.relative_to(result_json.anchor))
        for path in (sorted(Path(result_json.anchor).glob(pattern)) if "*" in pattern else [result_json]):
            try:
                if phase in json.loads(path.read_text(encoding="utf-8")).get("phases_done", []):
                    return path
            except (OSError, ValueError):  # not written yet, or replaced while read
                pass
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail(f"the process ended (exit {proc.returncode}) before phase {phase!r}: {proc.communicate()}")
    pytest.fail(f"phase {phase!r} not in {result_json} after {timeout_s:g} s")


@contextlib.contextmanager
def reaped(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Kills `proc` if it is still alive when the block ends (a failed check, a timeout), so that no test leaves
    a benchmark process behind."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def signal_at_phase(proc: subprocess.Popen, result_json: Path, phase: str, sig: int = signal.SIGTERM,
                    settle_s: float = 0.0, again_after_s: float | None = None,
                    timeout_s: float = 120.0) -> tuple[str, str]:
    """The one wait-for-a-phase-then-signal of the tests: wait until `phase` is done (wait_for_phase), `settle_s`
    more, send `sig` (a second time `again_after_s` later when given) and return the process's (stdout, stderr).
    A process still alive after `timeout_s` (or when a check fails) is killed."""
    with reaped(proc):
        wait_for_phase(proc, result_json, phase, timeout_s)
        time.sleep(settle_s)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        if again_after_s is not None:
            time.sleep(again_after_s)
            proc.send_signal(sig)
        return proc.communicate(timeout=timeout_s)


# ----------------------------------------------------------------------------------------------- data


def clone_data(base: Path, dst: Path, copy_weights: bool = False) -> Path:
    """A data_dir at `dst` with its own copy of the MMLU CSVs; the weights folder linked (or copied)."""
    dst.mkdir(parents=True)
    shutil.copytree(base / "mmlu_dataset", dst / "mmlu_dataset")
    if copy_weights:
        shutil.copytree(base / WEIGHTS, dst / WEIGHTS)
    else:
        (dst / WEIGHTS).symlink_to(base / WEIGHTS, target_is_directory=True)
    return dst


def csv_path(data_dir: Path, subject: str = "abstract_algebra", split: str = "test") -> Path:
    return data_dir / MMLU / split / f"{subject}_{split}.csv"


def copy_configs(dst: Path) -> Path:
    """A copy of configs/ to corrupt; pass it with the hidden --config_dir. Returns the case's folder."""
    shutil.copytree(REPO_ROOT / "configs", dst)
    return dst / CASE


# ------------------------------------------------------------------------------------------ test vendors

# The test-only vendors, one folder each (faulty: toolkits that fail on purpose; rankfault: one rank of a
# data-parallel run fails; fakenvml; slowdown); a test puts this folder on $LLAMA_BENCH_VENDOR_PATH.
TEST_VENDORS = Path(__file__).resolve().parent / "vendors"


def first_longer(predictions: Sequence[dict[str, Any]], tokens: int) -> tuple[int, int]:
    """(0-based index, length) of the first question whose prompt is longer than `tokens`."""
    for i, row in enumerate(predictions):
        if row["n_tokens"] > tokens:
            return i, row["n_tokens"]
    raise AssertionError(f"no prompt longer than {tokens} tokens")


# Autouse fixtures for the CLI test modules; a module opts in by importing both names.
@pytest.fixture(autouse=True, scope="module")
def one_thread_per_module() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(autouse=True)
def smoke_cache_env(smoke_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_BENCH_CACHE", str(smoke_cache))
