"""Shared by test_bad_input.py, test_faults.py and test_fuzz.py: copies of the smoke data to corrupt, a test
vendor whose toolkits fail on purpose, and the real CLI run in-process with its one-line verdict checked.

The smoke data_dir comes from conftest.py's session fixture `smoke_data_dir` (generated once); a test copies
the part it corrupts (the MMLU CSVs, or the weights folder) and links the rest.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
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


# --------------------------------------------------------------------------------------- faulty vendor

FAULTY_VENDOR = '''"""Test vendor: the cpu vendor plus toolkits that fail on purpose (from tests/fault_helpers.py)."""
import os
import time

import torch

from benchmarks.toolkits import TOOLKITS, Eager
from vendors.cpu import CpuVendor

OOM_TEXT = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB of which "
            "1.05 GiB is free. If reserved but unallocated memory is large try setting "
            "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.")


class Broken(Eager):
    name = "broken"

    def prepare(self, model_fn, warmup_calls):
        raise RuntimeError("simulated compiler crash")


class Slow(Eager):
    name = "slow"

    def prepare(self, model_fn, warmup_calls):
        time.sleep(float(os.environ.get("FAULTY_SLEEP_S", "120")))
        return model_fn


class Interrupt(Eager):
    name = "interrupt"

    def prepare(self, model_fn, warmup_calls):
        raise KeyboardInterrupt


class OomLong(Eager):
    """Raises torch.OutOfMemoryError for prompts longer than $FAULTY_OOM_TOKENS."""

    name = "oom_long"

    def prepare(self, model_fn, warmup_calls):
        limit = int(os.environ.get("FAULTY_OOM_TOKENS", "0"))

        def fn(ids, last):
            if ids.shape[1] > limit:
                raise torch.OutOfMemoryError(OOM_TEXT)
            return model_fn(ids, last)

        return fn


class FaultyVendor(CpuVendor):
    name = "faulty"

    def toolkits(self):
        return {**TOOLKITS, "broken": Broken, "slow": Slow, "interrupt": Interrupt, "oom_long": OomLong}


VENDOR = FaultyVendor()
'''


def write_faulty_vendor(vendor_root: Path, config_root: Path) -> None:
    """`vendor_root/faulty/` (put vendor_root on $LLAMA_BENCH_VENDOR_PATH) and its YAML in `config_root`."""
    (vendor_root / "faulty").mkdir(parents=True)
    (vendor_root / "faulty" / "__init__.py").write_text(FAULTY_VENDOR, encoding="utf-8")
    case_dir = config_root / CASE
    if not case_dir.exists():
        copy_configs(config_root)
    shutil.copy(case_dir / "vendor_config" / "cpu_configurations.yaml",
                case_dir / "vendor_config" / "faulty_configurations.yaml")


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
