"""Results are never lost or mixed (issue 15): one folder per run, refused or --overwrite'd reuse, a lock per
folder, whole-line predictions under a full disk, interruption at any moment, a guarded --history, odd paths
and report permissions. Each test runs the real CLI (in-process on the smoke data, or as a process)."""
from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fault_helpers import REPO_ROOT, assert_clean_exit, assert_usage_error, reaped, run_cli  # noqa: E402
from fault_helpers import one_thread_per_module, smoke_cache_env  # noqa: E402,F401  (autouse fixtures)

from benchmarks.guard import locks, safe_io, safe_write  # noqa: E402
from benchmarks.reporting import history  # noqa: E402

FAST = ("--set", "few_shots=0")  # 57 short prompts: about a second per run


def _env(smoke_cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "LLAMA_BENCH_CACHE": str(smoke_cache), "OMP_NUM_THREADS": "1", **extra}


# ------------------------------------------------------------------------------------- one folder per run


def test_default_folders_of_one_second_differ(tmp_path: Path) -> None:
    a = safe_io.new_run_dir(tmp_path, "20261128-085152")
    b = safe_io.new_run_dir(tmp_path, "20261128-085152")  # same second, same pid: still another folder
    assert a != b and a.is_dir() and b.is_dir()
    assert a.name == f"20261128-085152-{os.getpid()}" and b.name.startswith(a.name + "-")


@pytest.mark.slow
def test_three_runs_started_together_leave_three_complete_folders(tmp_path: Path, smoke_cache: Path) -> None:
    # The default folder lives under the repository; the child points session.REPO_ROOT at tmp instead.
    code = ("import sys; from pathlib import Path; import benchmarks.cli as c, benchmarks.session as s; s.REPO_ROOT = Path(sys.argv[1]); "
            "sys.exit(c.main(sys.argv[2:]))")
    cmd = [sys.executable, "-c", code, str(tmp_path), "--smoke", "--limit", "1", *FAST, "--quiet",
           "--config_dir", str(REPO_ROOT / "configs")]
    procs = [subprocess.Popen(cmd, cwd=REPO_ROOT, env=_env(smoke_cache), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    folders = sorted((tmp_path / "outputs" / "llama2_7b_mmlu").iterdir())
    assert len(folders) == 3
    ids = set()
    for folder in folders:
        result = json.loads((folder / "result.json").read_text())
        assert result["status"] == "completed"
        ids.add(result["run_id"])
        for name in ("result.md", "result.csv", "predictions.jsonl", "run.log"):
            assert (folder / name).is_file(), (folder, name)
        assert not (folder / locks.LOCK_NAME).exists()
    assert len(ids) == 3


# --------------------------------------------------------------------------------- an explicit folder reused


@pytest.mark.slow  # a few seconds: keeps the fast tier under 90 s
def test_output_dir_holding_a_run_is_refused_unless_overwrite(tmp_path: Path, smoke_data_dir: Path) -> None:
    out = tmp_path / "out"
    first = run_cli(smoke_data_dir, out, *FAST)
    assert first.code == 0, first.err
    first_id = first.result["run_id"]
    (out / "predictions.partial.jsonl").write_text('{"run_id": "old"}\n')  # what a killed earlier run leaves,
    recorded = json.loads((out / "result.json").read_text())  # recorded in its result.json as it ran
    recorded.update(status="interrupted", files=recorded["files"] + ["predictions.partial.jsonl"])
    (out / "result.json").write_text(json.dumps(recorded))
    (out / "notes.txt").write_text("mine")  # not a run file: kept

    refused = run_cli(smoke_data_dir, out, *FAST)
    assert_usage_error(refused, f"--output_dir {out} already holds a run", "--overwrite")
    assert refused.result["run_id"] == first_id  # untouched

    again = run_cli(smoke_data_dir, out, *FAST, "--overwrite")
    assert again.code == 0, again.err
    assert again.result["run_id"] != first_id
    assert not (out / "predictions.partial.jsonl").exists()
    (out / "result.csv").unlink()
    (out / "result.json").unlink()  # a result.csv, say, that no result.json records: never removed
    (out / "result.csv").write_text("mine")
    unrecorded = run_cli(smoke_data_dir, out, *FAST, "--overwrite")
    assert_usage_error(unrecorded, "holds predictions.jsonl, result.csv, result.md, run.log but no result.json "
                                   "recording them", "not removed, even with --overwrite")
    assert (out / "result.csv").read_text() == "mine"
    assert (out / "notes.txt").read_text() == "mine"
    assert "--overwrite: removed the earlier run's" in (out / "run.log").read_text()


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path: Path, smoke_data_dir: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    holder = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
              "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'%d\\n' % os.getpid()); print('held', flush=True); "
              "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", holder, str(out / locks.LOCK_NAME)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        run = run_cli(smoke_data_dir, out, *FAST)
        assert_usage_error(run, f"--output_dir {out}: another run (pid {proc.pid}) is writing there")
        assert not (out / "result.json").exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_stale_lock_of_a_dead_pid_is_taken_over(tmp_path: Path, smoke_data_dir: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    out.mkdir()
    (out / locks.LOCK_NAME).write_text(f"{dead.pid}\n")
    run = run_cli(smoke_data_dir, out, *FAST)
    assert run.code == 0, run.err
    assert f"took over the stale lock {out / locks.LOCK_NAME} of pid {dead.pid}" in (out / "run.log").read_text()
    assert not (out / locks.LOCK_NAME).exists()  # released at the end


# ------------------------------------------------------------------------------------ full disk, whole lines


def test_full_disk_while_streaming_leaves_whole_lines_and_a_failed_result(tmp_path: Path, smoke_data_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def full_on_second_chunk(fd: int, data) -> int:
        calls.append(len(data))
        if len(calls) == 2:  # half the chunk reaches the file, then the disk is full
            os.write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    monkeypatch.setattr(safe_write, "_append", full_on_second_chunk)
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST, "--set", "log_freq=5")
    line = assert_clean_exit(run, 3, "run failed: OSError: ", "No space left on device: cannot append to",
                             "predictions.partial.jsonl", "status failed recorded in")
    result = run.result
    assert result["status"] == "failed" and "No space left on device" in result["error"], line
    rows = [json.loads(text) for text in (run.output_dir / "predictions.partial.jsonl").read_text().splitlines()]
    assert len(rows) == 5  # the first chunk whole; nothing of the second
    assert {r["run_id"] for r in rows} == {result["run_id"]}


def test_result_json_is_rewritten_in_place_when_the_disk_is_too_full_for_a_copy(
        tmp_path: Path, smoke_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.reporting import atomic as results

    real = results.atomic_write_text

    def no_room_for_a_failed_copy(path: Path, text: str) -> None:
        if '"status": "failed"' in text:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, text)

    def full(fd: int, data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safe_write, "_append", full)
    monkeypatch.setattr(results, "atomic_write_text", no_room_for_a_failed_copy)
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST)
    assert_clean_exit(run, 3, "run failed: OSError: ", "status failed recorded in")
    assert run.result["status"] == "failed" and "No space left on device" in run.result["error"]
    assert not (run.output_dir / "predictions.partial.jsonl").read_text()  # not even half a line


def test_full_disk_writing_predictions_keeps_the_finished_passes(tmp_path: Path, smoke_data_dir: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.reporting import atomic as results

    real = results.write_jsonl
    calls = []

    def full_after_inference(path: Path, rows) -> None:
        calls.append(path)
        if len(calls) == 2:  # after the validation pass it fits; after the inference pass the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, rows)

    monkeypatch.setattr(results, "write_jsonl", full_after_inference)
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST)
    assert_clean_exit(run, 3, "run failed: OSError: [Errno 28] No space left on device", "status failed recorded in")
    result = run.result
    assert result["status"] == "failed"
    partial = result["metrics_partial"]
    assert partial["p_val_core"] > 0 and partial["p_infer_core"] > 0  # both passes' numbers kept
    assert 0 <= partial["infer_acc"] <= 1


# ---------------------------------------------------------------------------------------------- interruption


def test_interrupt_during_config_loading(tmp_path: Path, smoke_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.config

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmarks.config, "load_config", interrupted)
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST)
    assert_clean_exit(run, 130, "interrupted: keyboard interrupt")
    assert not (tmp_path / "out").exists()  # nothing half-made


def test_interrupt_during_the_final_writes(tmp_path: Path, smoke_data_dir: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.reporting import plots

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt(f"signal {signal.SIGTERM.value}")

    # write_run_files: result.json and result.md are written, the png is next
    monkeypatch.setattr(plots, "plot_throughput_by_length", interrupted)
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST, "--history", str(tmp_path / "h.csv"))
    assert_clean_exit(run, 130, f"interrupted: signal {signal.SIGTERM.value}; status interrupted recorded in")
    result = run.result
    assert result["status"] == "interrupted" and result["metrics"]["p_infer_core"] > 0
    for name in ("result.md", "result.csv", "throughput_vs_length.png"):
        assert not (run.output_dir / name).exists(), name  # no "completed" report beside an interrupted result
    assert set(result["files"]) == {"result.json", "predictions.jsonl", "run.log"}


def test_interrupt_after_completion_keeps_the_completed_run(tmp_path: Path, smoke_data_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal while the history row is appended (e.g. the scheduler's, while another job holds its lock): the
    run has completed and stays so, its files kept; the exit code says the row is missing."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt(f"signal {signal.SIGTERM.value}")

    monkeypatch.setattr(history, "append_history", interrupted)
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST, "--history", str(tmp_path / "h.csv"))
    assert_clean_exit(run, 130, f"interrupted: signal {signal.SIGTERM.value}; the run had completed: its files and "
                                f"status completed are kept in {run.output_dir}; its --history row may be missing")
    assert run.result["status"] == "completed" and "error" not in run.result
    for name in ("result.md", "result.csv", "throughput_vs_length.png", "predictions.jsonl"):
        assert (run.output_dir / name).is_file(), name


@pytest.mark.slow
def test_sigterm_while_generating_smoke_data_leaves_no_half_made_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cmd = [sys.executable, str(REPO_ROOT / "run_benchmark.py"), "--smoke", "--limit", "1", "--quiet",
           "--output_dir", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    root = cache / "smoke-v1"
    with reaped(proc):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not list(root.glob(".tmp-*")):
            time.sleep(0.005)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == [f"interrupted: signal {signal.SIGTERM.value}"]
    assert not list(root.glob(".tmp-*")) and not (root / ".complete-v1").exists()
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------- --history


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "random bytes"])
def test_history_that_is_not_a_csv_file_is_refused(tmp_path: Path, smoke_data_dir: Path, kind: str) -> None:
    path = tmp_path / "h.csv"
    if kind == "fifo":
        os.mkfifo(path)  # opening it would block the run forever
        needle = "not a regular file"
    elif kind == "/dev/zero":
        path.symlink_to("/dev/zero")  # reading its "first line" never ends
        needle = "not a regular file"
    else:
        import random

        path.write_bytes(random.Random(15).randbytes(4096))
        needle = "not UTF-8"
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST, "--history", str(path))
    assert_usage_error(run, f"--history {path}", needle)
    assert not (tmp_path / "out").exists()  # refused before the run


@pytest.mark.slow  # a few seconds: keeps the fast tier under 90 s
def test_history_without_a_final_newline_is_repaired(tmp_path: Path, smoke_data_dir: Path) -> None:
    path = tmp_path / "h.csv"
    first = run_cli(smoke_data_dir, tmp_path / "a", *FAST, "--history", str(path))
    assert first.code == 0, first.err
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # an editor saved it without the last newline
    second = run_cli(smoke_data_dir, tmp_path / "b", *FAST, "--history", str(path))
    assert second.code == 0, second.err
    rows = history.read_history(path)
    assert [r["result_dir"] for r in rows] == [str(tmp_path / "a"), str(tmp_path / "b")]


def _three_writers_append(path: Path, appends: int, result: str) -> tuple[list[str], list[dict[str, str]]]:
    """Three processes append `appends` rows each to the history at `path` at once; `result` is the row's
    result.json as a Python expression of `k` (the append's number) and `me` (the writer's name, also its
    result_dir). Returns the file's header and rows."""
    code = ("import sys; from pathlib import Path; from benchmarks.reporting import history\n"
            "me = sys.argv[2]\n"
            f"for k in range({appends}):\n"
            f"    history.append_history(Path(sys.argv[1]), {result}, me)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), f"writer{i}"], cwd=REPO_ROOT)
             for i in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    return list(reader.fieldnames or []), rows


def test_history_appends_of_overlapping_jobs_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    _, rows = _three_writers_append(
        path, 40, "{'status': 'completed', 'case': 'x' * 5000, 'metrics': {'p_infer_core': float(k)}}")
    assert len(rows) == 120 and all(r["case"] == "x" * 5000 for r in rows)
    assert path.read_text().count("schema_version") == 1  # one header


def test_overlapping_appends_to_an_older_history_upgrade_it_once_and_lose_no_row(tmp_path: Path) -> None:
    """The first writer replaces the file (new header); writers that waited on the old file reopen the new one."""
    path = tmp_path / "h.csv"
    old_columns = history.CSV_COLUMNS[:history.CSV_COLUMNS.index("energy_source") + 1]
    path.write_text(",".join(old_columns) + "\n" + ",".join(["3"] + [""] * (len(old_columns) - 1)) + "\n")
    header, rows = _three_writers_append(
        path, 20, "{'status': 'completed', 'scenario': me, 'metrics': {'p_infer_core': float(k)}}")
    assert tuple(header) == history.CSV_COLUMNS
    assert len(rows) == 61 and rows[0]["scenario"] == "" and rows[0]["schema_version"] == "3"
    assert sorted(r["scenario"] for r in rows[1:]) == sorted(f"writer{i}" for i in range(3) for _ in range(20))
    assert not list(tmp_path.glob(".h.csv.*"))  # no temporary file left


# -------------------------------------------------------------------------------------- paths and permissions


def test_output_dir_that_is_not_utf8_is_refused_up_front(tmp_path: Path, smoke_data_dir: Path) -> None:
    out = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/out\xff"))
    run = run_cli(smoke_data_dir, out, *FAST)
    assert_usage_error(run, "--output_dir", "out\\xff", "not UTF-8")
    assert not out.exists()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_result_files_follow_the_umask(tmp_path: Path, smoke_data_dir: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        run = run_cli(smoke_data_dir, tmp_path / "out", *FAST)
    finally:
        os.umask(old)
    assert run.code == 0, run.err
    for name in ("result.json", "result.md", "result.csv", "predictions.jsonl"):
        assert (run.output_dir / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
