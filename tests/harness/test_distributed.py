"""Data-parallel runs (benchmarks/distributed.py): 2 processes with gloo on the CPU on the tiny smoke model.

The slow tests start real processes: bare torchrun (`python -m torch.distributed.run`) and `--nproc 2`
(torchrun's Python API). A test vendor (`rankfault`, on $LLAMA_BENCH_VENDOR_PATH) makes one rank raise or
kill itself during the inference pass.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.parallel import distributed
from benchmarks.measure import metrics, verdict
from benchmarks.contracts import PeakFlops
from fault_helpers import TEST_VENDORS, assert_usage_error, cli, CliRun, signal_at_phase
from results_support import SMOKE_ARGS, doc_tables, shared_runs

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(REPO_ROOT / "run_benchmark.py")


# ------------------------------------------------------------------------------------------------- unit


@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_cover_every_question_once_balanced_by_tokens(world: int) -> None:
    import random

    rng = random.Random(world)
    lengths = [rng.randint(50, 2048) for _ in range(1000)]
    bounds = distributed.shard_bounds(lengths, world)
    assert bounds == distributed.shard_bounds(lengths, world)  # deterministic
    assert len(bounds) == world and bounds[0][0] == 0 and bounds[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous: each question exactly once
    share = sum(lengths) / world
    for lo, hi in bounds:
        assert abs(sum(lengths[lo:hi]) - share) <= max(lengths)  # within one prompt of its token share


def test_shards_balance_tokens_not_questions() -> None:
    lengths = [1000] * 10 + [100] * 100  # 20,000 tokens: the long prompts first
    (a0, a1), (b0, b1) = distributed.shard_bounds(lengths, 2)
    assert sum(lengths[a0:a1]) == sum(lengths[b0:b1]) == 10_000
    assert (a1 - a0, b1 - b0) == (10, 100)
    assert distributed.shard_bounds([5, 5], 3) == [(0, 1), (1, 1), (1, 2)]  # more ranks than questions: one empty


def _evidence(ranks: list[dict[str, Any]], disagreements: tuple[str, ...] = ()) -> verdict.Evidence:
    m = metrics.Metrics(*([None] * 14))
    return verdict.Evidence(smoke=False, limit=None, synthetic_weights=True, recompiles=0, compile_fallback=None,
                            passes=[], metrics=m, peak=PeakFlops(1.0, "x"), ranks=ranks, disagreements=disagreements)


def test_verdict_requires_the_same_config_inputs_and_device_on_every_rank() -> None:
    ranks = [{"rank": 0, "host": "h"}, {"rank": 1, "host": "h"}]
    ok = verdict.judge(_evidence(ranks))
    assert ok["status"] == "SPEED-ONLY" and any("data parallel: 2 ranks on 1 host" in n for n in ok["notes"])  # random weights
    bad = verdict.judge(_evidence(ranks, ("ranks [1] saw another config than rank 0: config_sha256 differs",)))
    assert bad["status"] == "INVALID" and any("ranks [1]" in r and "config_sha256" in r for r in bad["reasons"])
    assert verdict.judge(_evidence([]))["status"] == "SPEED-ONLY"  # one process: no rank rule


def test_device_index_follows_local_rank() -> None:
    from vendors.cpu import CpuOptions
    from vendors.nvidia import NvidiaOptions

    ctx = distributed.Dist(rank=3, world_size=4, local_rank=1)
    assert distributed.device_options(NvidiaOptions(), ctx).device_index == 1
    assert distributed.device_options(NvidiaOptions(), distributed.Dist()).device_index == 0
    assert distributed.device_options(CpuOptions(), ctx) == CpuOptions()  # no device_index: unchanged


def test_single_process_has_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed.from_env()
    assert not ctx.active and ctx.is_main and distributed.shard_bounds([3, 4], 1) == [(0, 2)]
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not distributed.from_env().active
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(distributed.BenchmarkError, match="RANK=5 is outside WORLD_SIZE=2"):
        distributed.from_env()


@pytest.mark.slow  # a few seconds: keeps the fast tier under 90 s
def test_single_run_records_world_size_1_and_no_distributed_block(smoke_cache: Path) -> None:
    r = shared_runs(smoke_cache).a.result
    assert r["world_size"] == 1 and "distributed" not in r
    assert not any("data parallel" in n for n in r["verdict"]["notes"])


@pytest.mark.parametrize("argv, needle", [(["--nproc", "0"], "--nproc 0: expected a positive"),
                                          (["--dist_timeout", "0"], "--dist_timeout 0")])
def test_bad_distributed_options(tmp_path: Path, argv: list[str], needle: str) -> None:
    assert_usage_error(CliRun(*cli(["--smoke", *argv, "--output_dir", str(tmp_path / "o")]), tmp_path), needle)


def test_nproc_under_torchrun_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")  # as torchrun sets them
    monkeypatch.setenv("MASTER_PORT", "29500")
    run = CliRun(*cli(["--smoke", "--nproc", "2", "--output_dir", str(tmp_path / "o")]), tmp_path)
    assert_usage_error(run, "--nproc starts torchrun itself")


# ------------------------------------------------------------------------------------ real processes


def _env(smoke_cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "LLAMA_BENCH_CACHE": str(smoke_cache), "OMP_NUM_THREADS": "1", **extra}


def _run(cmd: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


_TWO: dict[str, tuple[subprocess.CompletedProcess, Path, float]] = {}


def two_process_run(smoke_cache: Path) -> tuple[subprocess.CompletedProcess, Path, float]:
    """SMOKE_ARGS under bare torchrun with 2 processes (made once per session)."""
    if "run" not in _TWO:
        out = smoke_cache.parent / "results_runs" / "dp2"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", SCRIPT,
               *SMOKE_ARGS, "--output_dir", str(out), "--quiet"]
        t0 = time.monotonic()
        proc = _run(cmd, _env(smoke_cache))
        _TWO["run"] = (proc, out, time.monotonic() - t0)
    return _TWO["run"]


@pytest.mark.slow
def test_two_processes_equal_one(smoke_cache: Path) -> None:
    proc, out, _ = two_process_run(smoke_cache)
    assert proc.returncode == 0, proc.stderr
    one = shared_runs(smoke_cache).a
    r, r1 = json.loads((out / "result.json").read_text()), one.result
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert preds == one.predictions  # every question once, in order, the same answers (both passes)
    assert len({(p["subject"], p["index"]) for p in preds}) == len(preds) == r["counts"]["questions"] == 114
    for key in ("val_acc", "infer_acc", "agreement"):
        assert r["metrics"][key] == r1["metrics"][key]
    assert r["accuracy"]["overall"] == r1["accuracy"]["overall"]
    assert r["world_size"] == 2 and r["distributed"]["backend"] == "gloo" and len(r["distributed"]["hosts"]) == 2
    ranks = r["distributed"]["ranks"]
    assert [x["rank"] for x in ranks] == [0, 1]
    assert sum(x["questions"] for x in ranks) == 114 and sum(x["tokens"] for x in ranks) == r["counts"]["tokens"]
    assert ranks[1]["first_question"] == ranks[0]["questions"]
    # system throughput: all tokens / the slowest rank's summed core time (and wall time)
    for key in ("infer", "val"):
        slowest = max(x[f"{key}_core_s"] for x in ranks)
        assert r["metrics"][f"p_{key}_core"] == pytest.approx(r["counts"]["tokens"] / slowest)
        assert r["metrics"][f"p_{key}_pass"] == pytest.approx(  # (whole adds the warm-up / compile before it)
            r["counts"]["tokens"] / max(x[f"{key}_whole_s"] for x in ranks))
    assert r["metrics"]["e2e_time"] == max(x["e2e_time"] for x in ranks)
    assert r["metrics"]["mem_used_gib"] == max(x["mem_used_gib"] for x in ranks)
    assert r["verdict"]["reasons"] == r1["verdict"]["reasons"]  # same config, inputs and device on both ranks
    assert any("data parallel: 2 ranks" in n for n in r["verdict"]["notes"])
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        ["result.json", "result.md", "result.csv", "predictions.jsonl", "throughput_vs_length.png", "timeline.png",
         "run.log", "run.log.rank1"])
    assert "| rank | host | device |" in (out / "result.md").read_text()
    assert proc.stdout.count("verdict:") == 1  # only rank 0 prints the summary


@pytest.mark.slow
def test_documented_distributed_fields(smoke_cache: Path) -> None:
    from results_support import SCHEMA_DOC, check_type, values_at

    proc, out, _ = two_process_run(smoke_cache)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "result.json").read_text())
    rows = [row for row in doc_tables(SCHEMA_DOC, "field") if row["present"] in ("distributed", "distributed-completed")]
    assert len(rows) >= 30
    for row in rows:
        for value in values_at(r, row["field"]):
            check_type(row["field"], value, row["type"])
    documented = {row["field"] for row in rows}
    assert {f"distributed.{k}" for k in r["distributed"]} <= documented
    assert {f"distributed.ranks.*.{k}" for k in r["distributed"]["ranks"][0]} <= documented


@pytest.fixture(scope="module")
def rankfault() -> Path:
    return TEST_VENDORS  # the test vendor tests/vendors/rankfault


def _faulty_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, SCRIPT, *SMOKE_ARGS, "--vendor", "rankfault", "--set", "compiler=rank_fault",
            "--output_dir", str(out), "--quiet", "--nproc", "2", *extra]


def _no_process_left(out: Path) -> None:
    """No worker of this run is alive (its command line names the run's folder)."""
    time.sleep(0.5)
    left = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(out) in text and "run_benchmark.py" in text:
            left.append(text)
    assert not left, left


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["raise", "kill"])
def test_a_failing_or_killed_rank_ends_the_run(mode: str, tmp_path: Path, smoke_cache: Path, rankfault: Path) -> None:
    out = tmp_path / "out"
    env = _env(smoke_cache, LLAMA_BENCH_VENDOR_PATH=str(rankfault), FAULT_RANK="1", FAULT_AFTER="10",
               FAULT_MODE=mode)
    t0 = time.monotonic()
    proc = _run(_faulty_cmd(out), env, timeout=180)
    took = time.monotonic() - t0
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 3, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("run failed: rank 1: "), proc.stderr
    assert "Traceback" not in proc.stderr
    r = json.loads((out / "result.json").read_text())
    assert r["status"] == "failed" and r["error"].startswith("RankFailed: rank 1: ")
    if mode == "raise":
        assert "RuntimeError: injected fault on rank 1 at forward 11" in lines[0]
        assert r["distributed"]["ranks_at_end"]["1"]["status"] == "failed"
    else:
        assert "ended without reporting an error (killed" in lines[0]
        assert r["distributed"]["ranks_at_end"]["1"] is None
    assert r["phases_done"] == ["init", "validation", "compile"]  # failed in the inference pass
    assert r["metrics_partial"]["p_val_core"] > 0  # the validation pass of both ranks is kept
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 114
    assert not (out / "result.md").exists()
    assert took < 90, f"took {took:.0f} s"
    _no_process_left(out)


@pytest.mark.slow
def test_ctrl_c_on_the_launcher_stops_every_rank(tmp_path: Path, smoke_cache: Path, rankfault: Path) -> None:
    """SIGINT to the --nproc launcher alone, while rank 1 hangs in its inference pass."""
    out = tmp_path / "out"
    env = _env(smoke_cache, LLAMA_BENCH_VENDOR_PATH=str(rankfault), FAULT_RANK="1", FAULT_AFTER="10",
               FAULT_MODE="sleep")
    proc = subprocess.Popen(_faulty_cmd(out), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # 1 s after the compile: rank 1 is asleep in its pass, rank 0 done with its own
    _, stderr = signal_at_phase(proc, out / "result.json", "compile", signal.SIGINT, settle_s=1.0, timeout_s=90)
    assert proc.returncode == 130, stderr
    r = json.loads((out / "result.json").read_text())
    assert r["status"] == "interrupted", r.get("error")
    assert r["phases_done"] == ["init", "validation", "compile"]
    _no_process_left(out)


@pytest.mark.slow
def test_two_ranks_report_the_system_s_tokens_per_joule(tmp_path: Path, smoke_cache: Path) -> None:
    """Issue 22: with a telemetry-reporting vendor (scripted NVML: each device draws ~310 W), two ranks report all
    tokens / both ranks' joules. The bug divided them by rank 0's joules alone: ~2x the one-process figure. At a
    constant power joules follow time, so the two-rank figure / the one-process one is the one-process pass time /
    the two ranks' pass times together: 1.0 on separate devices; on this 2-core VM two CPU-bound processes scale
    ~1.7x when it is idle (0.85-0.92 here; 0.5-0.6 under other jobs' load), so that ratio itself is checked: the
    bug's figure would be twice it."""
    vendors = str(REPO_ROOT / "tests" / "vendors")
    env = _env(smoke_cache, LLAMA_BENCH_VENDOR_PATH=vendors, PYTHONPATH=str(REPO_ROOT / "tests"))
    args = [*SMOKE_ARGS, "--limit", "6", "--vendor", "fakenvml", "--quiet"]
    one = _run([sys.executable, SCRIPT, *args, "--output_dir", str(tmp_path / "one")], env)
    two = _run([sys.executable, SCRIPT, *args, "--nproc", "2", "--output_dir", str(tmp_path / "two")], env)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    r1, r2 = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("one", "two"))
    assert r2["world_size"] == 2 and r2["counts"]["tokens"] == r1["counts"]["tokens"]
    e2 = r2["energy"]["phases"]["inference"]["energy_j"]
    ranks = [row["e_infer_j"] for row in r2["distributed"]["ranks"]]
    assert e2 == pytest.approx(sum(ranks)) and all(j > 0 for j in ranks)  # every device's joules
    assert r2["metrics"]["tokens_per_joule_whole"] == pytest.approx(r2["counts"]["tokens"] / e2)
    ratio = r2["metrics"]["tokens_per_joule_whole"] / r1["metrics"]["tokens_per_joule_whole"]
    t1 = r1["energy"]["phases"]["inference"]["duration_s"]
    busy = sum(j / row_w for j, row_w in zip(ranks, _rank_powers(r2)))  # each rank's pass time, at its own power
    # all ranks' joules, or the ratio would be twice t1 / busy (what the bug reported)
    assert ratio == pytest.approx(t1 / busy, rel=0.05), (ratio, t1, busy)
    assert ratio <= 1.1, ratio  # at a constant power per device, two devices never do more work per joule than one


def _rank_powers(result: dict[str, Any]) -> list[float]:
    """Each rank's mean inference power: the scripted ~310 W (the system's mean power is their sum)."""
    total = result["energy"]["phases"]["inference"]["mean_power_w"]
    n = result["world_size"]
    return [total / n] * n
