"""Hostile inputs (issue 23): files, flags, subcommands, signals and verdicts that earlier rounds of testing found
holes with, and their neighbours. Every case must end as docs/errors_and_faults.md says: exit 2 with one line
naming the file, key or value before any work; or the run's files and status exactly as documented; never a
traceback, a hang, exit 0 on a lost signal, a file written through a link, or a number that is silently wrong.

Cheap by design: most cases run the CLI in-process and fail in its argument or input checks (no model); the
few real runs use the smoke data with --limit 1 and few_shots=0; the signal cases start real processes.
Families: FILES (the one write path), FLAGS (the bounded parser and path checks), SUBCOMMANDS (compare-results,
compare-predictions, plot), SIGNALS (real processes), VERDICTS (the identity of a measurement, the gate).
"""
from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from fault_helpers import (  # noqa: E402
    REPO_ROOT,
    TEST_VENDORS,
    WEIGHTS,
    CliRun,
    assert_clean_exit,
    assert_usage_error,
    cli,
    run_cli,
    signal_at_phase,
)
from fault_helpers import one_thread_per_module, smoke_cache_env  # noqa: E402,F401  (autouse fixtures)

from benchmarks.guard import safe_write  # noqa: E402
from benchmarks.reporting import history  # noqa: E402

pytestmark = pytest.mark.slow
FAST = ("--set", "few_shots=0")
LONG = "x" * 300  # one path component over the 255 bytes a file name may have
OLD_COLUMNS = history.CSV_COLUMNS[:history.CSV_COLUMNS.index("energy_source") + 1]  # the previous release's


def _alias_bomb(levels: int, fan: int) -> str:
    """A YAML flow mapping whose last key expands to fan**levels values."""
    parts = [f"a0: &a0 [{', '.join(['x'] * fan)}]"]
    for k in range(1, levels):
        parts.append(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * fan)}]")
    return "{" + ", ".join(parts) + "}"


BOMB_280 = _alias_bomb(7, 6)  # about 280 bytes, 6**7 = 280k values
BOMB_7 = _alias_bomb(7, 9)  # 9**7 = 4.8M values


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, smoke_data_dir: Path) -> CliRun:
    """One real smoke run (its result.json, predictions.jsonl and history row are the inputs of many cases)."""
    root = tmp_path_factory.mktemp("hostile")
    run = run_cli(smoke_data_dir, root / "run", *FAST, "--history", str(root / "h.csv"))
    assert run.code == 0, run.err
    return run


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block takes longer: SIGALRM interrupts a blocking open/read."""
    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s: it would hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _usage(code_out_err: tuple[int, str, str], *needles: str) -> str:
    return assert_usage_error(CliRun(*code_out_err, Path(".")), *needles)


# ================================================================================================== FILES


def test_a_lock_symlink_in_the_output_folder_is_refused_not_followed(tmp_path: Path, smoke_data_dir: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("secret")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".run.lock").symlink_to(victim)
    run = run_cli(smoke_data_dir, out, *FAST)
    assert_usage_error(run, f"{out / '.run.lock'} is a symlink; it is never written through")
    assert victim.read_text() == "secret" and not (out / "result.json").exists()


def test_a_write_probe_symlink_is_never_followed(tmp_path: Path, smoke_data_dir: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("secret")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".write-test").symlink_to(victim)  # the old probe's fixed name
    run = run_cli(smoke_data_dir, out, *FAST)
    assert run.code == 0, run.err
    assert victim.read_text() == "secret" and (out / ".write-test").is_symlink()
    assert run.result["status"] == "completed"


@pytest.mark.parametrize("name, make", [
    ("result.json", lambda p: p.mkdir()),
    ("result.json", lambda p: os.mkfifo(p)),
    ("run.log", lambda p: p.mkdir()),
    ("predictions.jsonl", lambda p: p.mkdir()),
    ("result.csv", lambda p: os.mkfifo(p)),
], ids=["result.json folder", "result.json fifo", "run.log folder", "predictions folder", "result.csv fifo"])
def test_a_run_file_name_taken_by_a_folder_or_fifo_is_refused_before_the_run(tmp_path: Path, smoke_data_dir: Path,
                                                                            name: str, make: Callable) -> None:
    out = tmp_path / "out"
    out.mkdir()
    make(out / name)
    for extra in ((), ("--overwrite",)):
        run = run_cli(smoke_data_dir, out, *FAST, *extra)
        assert_usage_error(run, f"--output_dir {out}: {name} there is a", "not a file", "choose another --output_dir")
        assert not stat.S_ISREG(os.lstat(out / name).st_mode)  # never removed, never written


def test_overwrite_on_a_folder_that_never_held_a_run_keeps_the_users_files(tmp_path: Path,
                                                                          smoke_data_dir: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mine = {"diagram.png": "png", "predictions_2019.jsonl": "{}\n", "notes.txt": "n", "result.json.bak": "b"}
    for name, text in mine.items():
        (out / name).write_text(text)
    run = run_cli(smoke_data_dir, out, *FAST, "--overwrite")
    assert run.code == 0, run.err
    assert {n: (out / n).read_text() for n in mine} == mine
    assert "--overwrite: removed" not in (out / "run.log").read_text()


def test_overwrite_removes_exactly_the_files_the_previous_run_recorded(tmp_path: Path, finished: CliRun,
                                                                      smoke_data_dir: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(finished.output_dir, out)
    (out / "timeline_2019.png").write_text("mine")
    recorded = set(json.loads((out / "result.json").read_text())["files"])
    assert {"result.json", "result.md", "result.csv", "predictions.jsonl", "run.log"} <= recorded
    refused = run_cli(smoke_data_dir, out, *FAST)
    assert_usage_error(refused, "already holds a run", "--overwrite")
    run = run_cli(smoke_data_dir, out, *FAST, "--overwrite")
    assert run.code == 0, run.err
    assert (out / "timeline_2019.png").read_text() == "mine"
    log = (out / "run.log").read_text()
    assert "--overwrite: removed the earlier run's" in log and "timeline_2019.png" not in log


def test_a_planted_stream_symlink_is_never_followed_nor_removed_unrecorded(tmp_path: Path, smoke_data_dir: Path,
                                                                          finished: CliRun) -> None:
    victim = tmp_path / "victim"
    victim.write_text("secret")
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.partial.jsonl").symlink_to(victim)
    for extra in ((), ("--overwrite",)):  # no result.json records it: refused, never removed
        assert_usage_error(run_cli(smoke_data_dir, out, *FAST, *extra), "holds predictions.partial.jsonl but no "
                           "result.json recording them", "not removed, even with --overwrite")
    assert (out / "predictions.partial.jsonl").is_symlink()
    # recorded by the run that was there (killed while streaming): --overwrite removes the link, not its target
    data = json.loads((finished.output_dir / "result.json").read_text())
    data.update(status="interrupted", files=["result.json", "predictions.partial.jsonl"])
    (out / "result.json").write_text(json.dumps(data))
    run = run_cli(smoke_data_dir, out, *FAST, "--overwrite")
    assert run.code == 0, run.err
    assert victim.read_text() == "secret" and not (out / "predictions.partial.jsonl").exists()


@pytest.mark.parametrize("name", ["report.html", "throughput.png"])
def test_plot_replaces_a_symlinked_output_never_writing_through_it(tmp_path: Path, finished: CliRun,
                                                                   name: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("secret")
    charts = tmp_path / "charts"
    charts.mkdir()
    (charts / name).symlink_to(victim)
    code, out, err = cli(["plot", "--history", str(finished.output_dir.parent / "h.csv"), "--out", str(charts),
                          "--html"])
    assert code == 0, err
    assert victim.read_text() == "secret" and not (charts / name).is_symlink() and (charts / name).stat().st_size


@pytest.mark.parametrize("kind", ["fifo", "folder", "device", "symlink"])
def test_compare_predictions_out_replaces_only_a_regular_file(tmp_path: Path, finished: CliRun, kind: str) -> None:
    target = tmp_path / "diff.jsonl"
    victim = tmp_path / "victim"
    victim.write_text("secret")
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    elif kind == "device":
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root (CI runs as root)")
        os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a copy of /dev/null, here
    else:
        target.symlink_to(victim)
    preds = str(finished.output_dir / "predictions.jsonl")
    result = cli(["compare-predictions", preds, preds, "--out", str(target)])
    if kind == "symlink":  # the link is replaced by the file; what it pointed to is untouched
        assert result[0] == 0, result[2]
        assert victim.read_text() == "secret" and not target.is_symlink() and target.read_text() == ""
        return
    _usage(result, f"--out {target} is a", "not a regular file")
    mode = os.lstat(target).st_mode
    assert {"fifo": stat.S_ISFIFO, "folder": stat.S_ISDIR, "device": stat.S_ISCHR}[kind](mode)


def test_a_full_disk_never_leaves_half_a_history_row(tmp_path: Path, finished: CliRun,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.csv"
    shutil.copy(finished.output_dir.parent / "h.csv", path)
    before = path.read_bytes()

    def half_then_full(fd: int, data: Any) -> int:
        os.write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safe_write, "_append", half_then_full)
    with pytest.raises(history.BenchmarkError, match="cannot append to it \\(No space left on device\\); the run's "
                                                     "own result.csv has the row"):
        history.append_history(path, finished.result, finished.output_dir)
    assert path.read_bytes() == before


def test_a_torn_last_history_line_is_skipped_by_plot_and_cut_by_the_next_append(tmp_path: Path,
                                                                                 finished: CliRun) -> None:
    path = tmp_path / "h.csv"
    text = (finished.output_dir.parent / "h.csv").read_text()
    row = text.splitlines()[1]
    path.write_text(text + row[: len(row) // 2])  # a crash in the middle of a row: no newline, half its cells
    code, out, err = cli(["plot", "--history", str(path), "--out", str(tmp_path / "charts")])
    assert code == 0, err
    assert err.strip().splitlines() == [f"warning: --history {path} line 3: skipped a torn last line "
                                        f"({len(next(csv.reader([row[:len(row) // 2]])))} of "
                                        f"{len(history.CSV_COLUMNS)} cells, no newline: a write that did not finish)"]
    assert len(history.read_history(path)) == 1
    note = history.append_history(path, finished.result, "again")
    assert note is not None and "removed a torn last line" in note
    rows = history.read_history(path)
    assert [r["result_dir"] for r in rows] == [str(finished.output_dir), "again"]


def test_plot_html_does_not_hang_on_a_fifo_result_json(tmp_path: Path, finished: CliRun) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    os.mkfifo(folder / "result.json")  # opening it for reading would wait for a writer forever
    path = tmp_path / "h.csv"
    rows = list(csv.reader((finished.output_dir.parent / "h.csv").read_text().splitlines()))
    rows[1][rows[0].index("result_dir")] = str(folder)
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    with _deadline(60):
        code, _, err = cli(["plot", "--history", str(path), "--out", str(tmp_path / "c"), "--html"])
    assert code == 0, err
    assert "<h3>Gate</h3>" not in (tmp_path / "c" / "report.html").read_text()


def test_a_symlinked_history_appends_to_the_shared_file_and_upgrades_it_in_place(tmp_path: Path,
                                                                                 finished: CliRun) -> None:
    shared = tmp_path / "shared" / "history.csv"
    shared.parent.mkdir()
    old_row = dict.fromkeys(OLD_COLUMNS, "")
    old_row.update(schema_version="3", status="completed", start_time="2026-11-01T00:00:00+00:00",
                   p_infer_core="40000.0")
    shared.write_text(",".join(OLD_COLUMNS) + "\n" + ",".join(old_row[c] for c in OLD_COLUMNS) + "\n")
    inode = shared.stat().st_ino
    link = tmp_path / "mine.csv"
    link.symlink_to(shared)
    history.append_history(link, finished.result, finished.output_dir)
    assert link.is_symlink() and shared.stat().st_ino == inode  # the shared file itself, upgraded in place
    header, *rows = list(csv.reader(shared.read_text().splitlines()))
    assert tuple(header) == history.CSV_COLUMNS and len(rows) == 2 and rows[0][0] == "3"
    assert not list(shared.parent.glob(".history.csv*")) and not list(tmp_path.glob(".mine.csv*"))


OLD_WRITER = """
import csv, fcntl, io, os, sys
path, columns = sys.argv[1], sys.argv[2].split(",")
with open(path, "a+", encoding="utf-8", newline="") as f:  # the previous release's append_history
    print("opened", flush=True)
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    f.seek(0, 2)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\\n")
    w.writerow({c: "" for c in columns} | {"schema_version": "3", "status": "completed", "result_dir": "old-writer"})
    f.write(buf.getvalue())
    f.flush()
    os.fsync(f.fileno())
"""


def _waiting_on_a_lock(pid: int) -> bool:
    """/proc/locks lists a process blocked on a lock with '->'."""
    try:
        return any("->" in line and f" {pid} " in f" {line} " for line in Path("/proc/locks").read_text().splitlines())
    except OSError:
        return False


def test_a_previous_release_writer_waiting_on_the_lock_during_an_upgrade_keeps_its_row(
        tmp_path: Path, finished: CliRun, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.csv"
    path.write_text(",".join(OLD_COLUMNS) + "\n" + ",".join(["3"] + [""] * (len(OLD_COLUMNS) - 1)) + "\n")
    real_upgrade = history._upgrade
    procs: list[subprocess.Popen] = []

    def upgrade_while_an_old_writer_waits(p: Path) -> None:
        proc = subprocess.Popen([sys.executable, "-c", OLD_WRITER, str(path), ",".join(OLD_COLUMNS)],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "opened"  # it holds the old file open, waiting on our lock
        deadline = time.monotonic() + 20
        while not _waiting_on_a_lock(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        real_upgrade(p)

    monkeypatch.setattr(history, "_upgrade", upgrade_while_an_old_writer_waits)
    history.append_history(path, finished.result, "new-writer")
    assert procs and procs[0].wait(timeout=30) == 0
    rows = history.read_history(path)
    assert sorted(r["result_dir"] or "" for r in rows) == ["", "new-writer", "old-writer"]


def test_a_history_held_too_long_ends_in_exit_2_with_the_run_completed(tmp_path: Path, smoke_data_dir: Path) -> None:
    path = tmp_path / "h.csv"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)", str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        run = run_cli(smoke_data_dir, tmp_path / "out", *FAST, "--history", str(path), "--history_wait_s", "0.5")
        assert time.monotonic() - start < 60
    finally:
        holder.kill()
        holder.wait()
    assert_usage_error(run, f"--history {path}: another process has held its lock for 0.5 s (--history_wait_s)",
                       "the run's own result.csv has it", "the run had completed: its files and status completed "
                       f"are kept in {run.output_dir}")
    assert run.result["status"] == "completed"
    for name in ("result.md", "result.csv", "predictions.jsonl", "throughput_vs_length.png"):
        assert (run.output_dir / name).is_file(), name


def test_a_smoke_cache_lock_symlink_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    (cache / "smoke-v1").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("secret")
    (cache / "smoke-v1" / ".lock").symlink_to(victim)
    monkeypatch.setenv("LLAMA_BENCH_CACHE", str(cache))
    run = run_cli(None, tmp_path / "out", "--smoke", *FAST)
    assert_usage_error(run, f"smoke cache lock {cache / 'smoke-v1' / '.lock'} is a symlink")
    assert victim.read_text() == "secret"


# ================================================================================================== FLAGS


def _dangling(tmp: Path) -> Path:
    (tmp / "h.csv").symlink_to(tmp / "no_such_folder" / "history.csv")
    return tmp / "h.csv"


def _configs_with(tmp: Path, line: str) -> Path:
    from fault_helpers import copy_configs

    case_dir = copy_configs(tmp / "configs")
    text = (case_dir / "configurations.yaml").read_text()
    (case_dir / "configurations.yaml").write_text("\n".join(l for l in text.splitlines() if not l.startswith("seed:"))
                                                  + f"\n{line}\n")
    return tmp / "configs"


def _loop(tmp: Path) -> Path:
    (tmp / "loop_a").symlink_to(tmp / "loop_b")
    (tmp / "loop_b").symlink_to(tmp / "loop_a")
    return tmp / "loop_a"


# name -> (argv or a function of tmp_path giving it, environment, needles of the one line)
FLAG_CASES: dict[str, tuple[Any, dict[str, str], tuple[str, ...]]] = {
    "--set alias bomb 280 bytes": (["--set", f"inductor_options={BOMB_280}"], {},
                                   ("--set inductor_options=", "anchors/aliases are expanded (an alias bomb?)")),
    "--set alias bomb 7 levels": (["--set", f"inductor_options={BOMB_7}"], {}, ("anchors/aliases are expanded",)),
    "--set 1500 nested lists": (["--set", "inductor_options={k: " + "[" * 1500 + "]" * 1500 + "}"], {},
                                ("nesting deeper than 100 levels",)),
    "--set 1500 nested mappings": (["--set", "inductor_options=" + "{a: " * 1500 + "1" + "}" * 1500], {},
                                   ("nesting deeper than 100 levels",)),
    "--set key twice": (["--set", "inductor_options={a: 1, a: 2}"], {}, ("key 'a' appears twice",)),
    "--set python tag": (["--set", "inductor_options=!!python/object/apply:os.system ['true']"], {},
                         ("could not determine a constructor",)),
    "--set recursive alias": (["--set", "inductor_options=&a {k: *a}"], {}, ("--set inductor_options=",)),
    "--set weight_dir 300 chars": (["--set", f"weight_dir={LONG}"], {},
                                   ("--set: config key 'weight_dir':", "a path component of 300 bytes")),
    "--set mmlu_dir 300 chars": (["--set", f"mmlu_dir=a/{LONG}/b"], {}, ("config key 'mmlu_dir':", "300 bytes")),
    "--set weight_dir escape": (["--set", "weight_dir=w\x1b[31m"], {}, ("control characters", "w\\x1b[31m")),
    "--data_dir 300 chars": (lambda t: ["--data_dir", str(t / LONG)], {}, ("--data_dir", "a path component of 300")),
    "--data_dir symlink loop": (lambda t: ["--data_dir", str(_loop(t))], {}, ("--data_dir", "a symlink loop")),
    "--data_dir under a loop": (lambda t: ["--data_dir", str(_loop(t) / "x")], {}, ("--data_dir", "symlink loop")),
    "--baseline 300 chars": (lambda t: ["--baseline", str(t / LONG)], {}, ("--baseline", "300 bytes")),
    "--baseline symlink loop": (lambda t: ["--baseline", str(_loop(t))], {}, ("--baseline", "symlink loop")),
    "--history 300 chars": (lambda t: ["--history", str(t / LONG)], {}, ("--history", "300 bytes")),
    "--history escape": (lambda t: ["--history", str(t / "h\x1b]0;x\x07.csv")], {},
                         ("--history", "h\\x1b]0;x\\x07.csv", "control characters")),
    "--output_dir 300 chars": (lambda t: ["--output_dir", str(t / LONG)], {}, ("--output_dir", "300 bytes")),
    "--output_dir escape": (lambda t: ["--output_dir", str(t / "o\x1b[2J")], {}, ("--output_dir", "o\\x1b[2J")),
    "--output_dir too long": (lambda t: ["--output_dir", str(t / "/".join(["d" * 200] * 22))], {},
                              ("--output_dir", "more than the 4095 a path may have")),
    "--dist_timeout nan": (["--dist_timeout", "nan"], {}, ("--dist_timeout nan", "positive number of seconds")),
    "--dist_timeout inf": (["--dist_timeout", "inf"], {}, ("--dist_timeout inf",)),
    "--dist_timeout -inf": (["--dist_timeout=-inf"], {}, ("--dist_timeout -inf",)),
    "--dist_timeout 0": (["--dist_timeout", "0"], {}, ("--dist_timeout 0.0",)),
    "--dist_timeout 1e30": (["--dist_timeout", "1e30"], {}, ("--dist_timeout 1e+30", "at most 604800")),
    "--history_wait_s nan": (["--history_wait_s", "nan"], {}, ("--history_wait_s nan",)),
    "--history_wait_s -1": (["--history_wait_s=-1"], {}, ("--history_wait_s -1.0",)),
    "WORLD_SIZE=2 alone": ([], {"WORLD_SIZE": "2"}, ("WORLD_SIZE=2 but MASTER_ADDR and MASTER_PORT not set",
                                                     "torchrun")),
    "WORLD_SIZE=2 no port": ([], {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}, ("MASTER_PORT not set",)),
    "WORLD_SIZE=two": ([], {"WORLD_SIZE": "two"}, ("WORLD_SIZE='two' is not an integer",)),
    "RANK outside": ([], {"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"},
                     ("RANK=2 is outside WORLD_SIZE=2",)),
    "--limit 0": (["--limit", "0"], {}, ("--limit 0",)),
    "--repeat -1": (["--repeat=-1"], {}, ("--repeat -1",)),
    "--nproc 0": (["--nproc", "0"], {}, ("--nproc 0",)),
    "--set seed -1": (["--set", "seed=-1"], {}, ("'seed' = -1 is out of range",)),
    "--set flops 2**7e9": (["--set", "flops=2**7e9"], {}, ("config key 'flops'", "cannot parse")),
    "--set flops nested": (["--set", "flops=" + "(" * 30 + "1" + ")" * 30], {}, ("nested deeper than 20",)),
    "--set pack_tokens 1e9": (["--set", "pack_tokens=1000000000"], {}, ("'pack_tokens' = 1000000000 is out of range",)),
    "--set unknown key": (["--set", "dynamo_wamrup_iters=3"], {}, ("unknown key 'dynamo_wamrup_iters'",)),
    "--smok typo": (["--smok"], {}, ("unrecognized arguments: --smok",)),
    "--set seed of 5,000 digits": (["--set", "seed=" + "9" * 5000], {}, ("an integer of 5,000 digits",)),
    "--set a megabyte value": (["--set", "seed=" + "x" * 2**20], {}, ("(1,048,581 characters)",)),
    "--repeat 10**9": (["--repeat", "1000000000"], {}, ("--repeat 1000000000", "to 1000")),
    "--nproc 10**6": (["--nproc", "1000000"], {}, ("--nproc 1000000", "at most 1024")),
    "OMP_NUM_THREADS abc": ([], {"OMP_NUM_THREADS": "abc"}, ("OMP_NUM_THREADS='abc' is not a number of threads",)),
    "OMP_NUM_THREADS 0": ([], {"OMP_NUM_THREADS": "0"}, ("OMP_NUM_THREADS='0'",)),
    "--history dangling link": (lambda t: ["--history", str(_dangling(t))], {},
                                ("--history", "whose folder does not exist")),
    "config file of 5,000 digits": (lambda t: ["--config_dir", str(_configs_with(t, "seed: " + "9" * 5000))], {},
                                    ("configurations.yaml: not valid YAML", "an integer of 5,000 digits")),
    "--history is the run's result.csv": (lambda t: ["--output_dir", str(t / "o"), "--history", str(t / "o" / "result.csv")],
                                           {}, ("is the run's own result.csv in --output_dir",)),
    "LLAMA_BENCH_CACHE loop": (lambda t: ["--smoke"], {"LLAMA_BENCH_CACHE": "<loop>"},
                               ("LLAMA_BENCH_CACHE", "symlink loop")),
    "LLAMA_BENCH_CACHE 300 chars": (lambda t: ["--smoke"], {"LLAMA_BENCH_CACHE": "<long>"},
                                    ("LLAMA_BENCH_CACHE", "300 bytes")),
}


@pytest.mark.parametrize("name", list(FLAG_CASES))
def test_flags_and_environment_are_refused_before_any_work(tmp_path: Path, smoke_data_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    argv, env, needles = FLAG_CASES[name]
    argv = argv(tmp_path) if callable(argv) else list(argv)
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        value = {"<loop>": str(_loop(tmp_path)) if "<loop>" == value else value,
                 "<long>": str(tmp_path / LONG)}.get(value, value)
        monkeypatch.setenv(key, value)
    data = [] if "--data_dir" in argv or "--smoke" in argv else ["--data_dir", str(smoke_data_dir)]
    out = [] if "--output_dir" in argv else ["--output_dir", str(tmp_path / "out")]
    run = CliRun(*cli([*data, *out, "--limit", "1", "--quiet", *FAST, *argv]), tmp_path / "out")
    line = assert_usage_error(run, *needles)
    assert "\x1b" not in line and "\x07" not in line  # escaped, never sent to the terminal raw
    assert not list(tmp_path.rglob("result.json"))  # refused before the run


# ============================================================================================= SUBCOMMANDS


def _edited_result(run: CliRun, edit: Callable[[dict[str, Any]], Any]) -> str:
    data = json.loads((run.output_dir / "result.json").read_text())
    out = edit(data)
    return out if isinstance(out, str) else json.dumps(data)


RESULT_CASES: dict[str, tuple[Callable[[dict[str, Any]], Any], tuple[str, ...]]] = {
    "string metric": (lambda d: d["metrics"].__setitem__("p_infer_core", "fast"),
                      ("key 'metrics.p_infer_core' is 'fast'; expected a finite number or null",)),
    "NaN metric": (lambda d: json.dumps(d).replace('"p_infer_core": ', '"p_infer_core": NaN, "was": '),
                   ("key 'metrics.p_infer_core' is nan", "can neither pass nor fail the gate")),
    "Infinity metric": (lambda d: json.dumps(d).replace('"mem_used_gib": ', '"mem_used_gib": Infinity, "was": '),
                        ("key 'metrics.mem_used_gib' is inf",)),
    "boolean metric": (lambda d: d["metrics"].__setitem__("val_acc", True), ("key 'metrics.val_acc' is True",)),
    "list metric": (lambda d: d["metrics"].__setitem__("mfu", [0.5]), ("key 'metrics.mfu' is [0.5]",)),
    "string verdict": (lambda d: d.__setitem__("verdict", "VALID"), ("key 'verdict' is 'VALID'; expected a mapping",)),
    "list verdict": (lambda d: d.__setitem__("verdict", ["VALID"]), ("key 'verdict' is ['VALID']",)),
    "verdict status number": (lambda d: d["verdict"].__setitem__("status", 1), ("key 'verdict.status' is 1",)),
    "accuracy_meaningful string": (lambda d: d["verdict"].__setitem__("accuracy_meaningful", "no"),
                                   ("key 'verdict.accuracy_meaningful' is 'no'",)),
    "environment string": (lambda d: d.__setitem__("environment", "cpu"), ("key 'environment' is 'cpu'",)),
    "accuracy list": (lambda d: d.__setitem__("accuracy", []), ("key 'accuracy' is []",)),
    "precision number": (lambda d: d.__setitem__("precision", 16), ("key 'precision' is 16",)),
    "world_size zero": (lambda d: d.__setitem__("world_size", 0), ("key 'world_size' is 0",)),
    "limit string": (lambda d: d.__setitem__("limit", "1"), ("key 'limit' is '1'",)),
    "schema_version string": (lambda d: d.__setitem__("schema_version", "3"), ("key 'schema_version' is '3'",)),
    "schema_version newer": (lambda d: d.__setitem__("schema_version", 4), ("schema_version 4 is newer",)),
    "schema_version zero": (lambda d: d.__setitem__("schema_version", 0), ("key 'schema_version' is 0",)),
    "status running": (lambda d: d.__setitem__("status", "running"), ("key 'status' is 'running'",)),
    "metrics a list": (lambda d: d.__setitem__("metrics", []), ("key 'metrics' missing or not a mapping",)),
    "memory in MiB": (lambda d: d["metrics"].__setitem__("mem_used_gib", 15872.0),
                      ("15872 GiB, more than 1024: probably MiB",)),
    "not JSON": (lambda d: "{'schema_version': 3}", ("not valid JSON",)),
    "deep JSON": (lambda d: '{"schema_version": 3, "x": ' + "[" * 5000 + "]" * 5000 + "}", ("nested",)),
    "integer of 5,000 digits": (lambda d: json.dumps(d).replace('"limit": 1', '"limit": ' + "9" * 5000),
                                ("an integer of 5,000 digits",)),
    "repeat.spread a list": (lambda d: d.__setitem__("repeat", {"spread": {"p_infer_core": [1.0]}}),
                             ("key 'repeat.spread' is",)),
    "accuracy.overall a list": (lambda d: d["accuracy"].__setitem__("overall", [0.5]),
                                ("key 'accuracy.overall' is [0.5]",)),
    "not UTF-8": (lambda d: json.dumps(d).replace('"cpu"', '"c\udcffpu"'), ("not UTF-8",)),
}


@pytest.mark.parametrize("name", list(RESULT_CASES))
def test_compare_results_refuses_what_it_cannot_compare(tmp_path: Path, finished: CliRun, name: str) -> None:
    edit, needles = RESULT_CASES[name]
    path = tmp_path / "result.json"
    path.write_bytes(_edited_result(finished, edit).encode("utf-8", "surrogateescape"))
    baseline = str(finished.output_dir / "result.json")
    _usage(cli(["compare-results", str(path), "--baseline", baseline]), f"compare-results {path}", *needles)
    # the same file as the baseline: refused the same way, named as --baseline
    _usage(cli(["compare-results", baseline, "--baseline", str(path)]), f"--baseline {path}")


@pytest.mark.parametrize("kind", ["300 chars", "fifo", "folder without result.json", "symlink loop"])
def test_compare_results_paths(tmp_path: Path, finished: CliRun, kind: str) -> None:
    path = {"300 chars": tmp_path / LONG, "fifo": tmp_path / "r.json", "symlink loop": _loop(tmp_path),
            "folder without result.json": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    needle = {"300 chars": "300 bytes", "fifo": "file not found", "symlink loop": "symlink loop",
              "folder without result.json": "file not found"}[kind]
    _usage(cli(["compare-results", str(path), "--baseline", str(finished.output_dir / "result.json")]),
           "compare-results", needle)


def _predictions(run: CliRun) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run.output_dir / "predictions.jsonl").read_text().splitlines()]


PRED_CASES: dict[str, tuple[Callable[[list[dict[str, Any]]], Any], tuple[str, ...]]] = {
    "non-UTF-8 byte": (lambda rows: b"\n".join(json.dumps(r).encode() for r in rows).replace(b"abstract", b"\xffbs", 1),
                       ("not UTF-8 text at byte",)),
    "list-valued predictions": (lambda rows: [r.__setitem__("pred_infer", [r["pred_infer"]]) for r in rows],
                                ("key 'pred_infer' is [", "expected an integer")),
    "string prediction": (lambda rows: rows[3].__setitem__("pred_infer", "A"), ("line 4: key 'pred_infer' is 'A'",)),
    "float prediction": (lambda rows: rows[0].__setitem__("pred_infer", 319.0), ("key 'pred_infer' is 319.0",)),
    "boolean index": (lambda rows: rows[0].__setitem__("index", True), ("key 'index' is True",)),
    "label a string": (lambda rows: rows[0].__setitem__("label", "A"), ("key 'label' is 'A'",)),
    "subject a number": (lambda rows: rows[0].__setitem__("subject", 7), ("key 'subject' is 7",)),
    "row a list": (lambda rows: rows.__setitem__(0, [1, 2]), ("line 1: expected a JSON object, got list",)),
    "deep row": (lambda rows: b'{"a": ' + b"[" * 50000 + b"]" * 50000 + b"}", ("line 1: nested",)),
    "question twice": (lambda rows: rows.append(dict(rows[0])), ("appears twice",)),
    "null prediction": (lambda rows: rows[0].__setitem__("pred_infer", None), ("key 'pred_infer' is null",)),
    "integer of 5,000 digits": (lambda rows: "".join(json.dumps(r) + "\n" for r in rows).replace(
        '"pred_infer": ', '"pred_infer": ' + "9" * 5000 + ', "x": ', 1).encode(), ("an integer of 5,000 digits",)),
}


@pytest.mark.parametrize("name", list(PRED_CASES))
def test_compare_predictions_refuses_malformed_rows(tmp_path: Path, finished: CliRun, name: str) -> None:
    edit, needles = PRED_CASES[name]
    rows = _predictions(finished)
    made = edit(rows)
    path = tmp_path / "b.jsonl"
    path.write_bytes(made if isinstance(made, bytes) else "".join(json.dumps(r) + "\n" for r in rows).encode())
    _usage(cli(["compare-predictions", str(finished.output_dir / "predictions.jsonl"), str(path)]), str(path),
           *needles)


def test_compare_predictions_escapes_names_from_the_files(tmp_path: Path, finished: CliRun) -> None:
    rows = _predictions(finished)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for r in rows:
        r["subject"] = "s\x1b]0;owned\x07" + r["subject"]
    a.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rows[0]["pred_infer"] += 1
    b.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = cli(["compare-predictions", str(a), str(b)])
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "s\\x1b]0;owned\\x07" in out


@pytest.mark.parametrize("kind", ["300 chars", "fifo", "symlink loop"])
def test_compare_predictions_paths(tmp_path: Path, finished: CliRun, kind: str) -> None:
    path = {"300 chars": tmp_path / LONG, "fifo": tmp_path / "p.jsonl", "symlink loop": _loop(tmp_path)}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    needle = {"300 chars": "300 bytes", "fifo": "file not found", "symlink loop": "symlink loop"}[kind]
    _usage(cli(["compare-predictions", str(path), str(finished.output_dir / "predictions.jsonl")]), needle)


def _history_with(finished: CliRun, tmp: Path, column: str, value: str) -> Path:
    rows = list(csv.reader((finished.output_dir.parent / "h.csv").read_text().splitlines()))
    rows[1][rows[0].index(column)] = value
    path = tmp / "h.csv"
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


@pytest.mark.parametrize("column, value", [("limit", "nan"), ("limit", "inf"), ("limit", "-Infinity"),
                                           ("p_infer_core", "nan"), ("mfu", "inf"), ("world_size", "NaN"),
                                           ("limit", "1e999"), ("p_val_core", "fast")])
def test_plot_refuses_a_history_cell_that_is_not_a_finite_number(tmp_path: Path, finished: CliRun, column: str,
                                                                 value: str) -> None:
    path = _history_with(finished, tmp_path, column, value)
    _usage(cli(["plot", "--history", str(path), "--out", str(tmp_path / "c")]),
           f"--history {path} line 2: column '{column}' = {value!r} is not a", "fix or delete that row")
    assert not (tmp_path / "c").exists()


def test_plot_html_link_of_a_javascript_result_dir_is_a_path(tmp_path: Path, finished: CliRun) -> None:
    path = _history_with(finished, tmp_path, "result_dir", "javascript:alert(document.domain)")
    code, _, err = cli(["plot", "--history", str(path), "--out", str(tmp_path / "c"), "--html"])
    assert code == 0, err
    page = (tmp_path / "c" / "report.html").read_text()
    assert 'href="javascript:' not in page and 'href="./javascript%3Aalert%28document.domain%29"' in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


@pytest.mark.parametrize("kind", ["--out is a file", "--out 300 chars", "--history fifo", "--history folder"])
def test_plot_paths(tmp_path: Path, finished: CliRun, kind: str) -> None:
    hist, out = finished.output_dir.parent / "h.csv", tmp_path / "c"
    if kind == "--out is a file":
        out.write_text("x")
        needle = "--out"
    elif kind == "--out 300 chars":
        out = tmp_path / LONG
        needle = "300 bytes"
    elif kind == "--history fifo":
        hist = tmp_path / "h.csv"
        os.mkfifo(hist)
        needle = "file not found"
    else:
        hist = tmp_path
        needle = "file not found"
    _usage(cli(["plot", "--history", str(hist), "--out", str(out)]), needle)


# ================================================================================================= SIGNALS


def _env(smoke_cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "LLAMA_BENCH_CACHE": str(smoke_cache), "OMP_NUM_THREADS": "1", **extra}


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("delay_s", [0.2, 0.7])
def test_sigterm_during_startup_and_imports_is_never_lost(tmp_path: Path, smoke_cache: Path, delay_s: float) -> None:
    """The first second: interpreter start, the CLI's imports (torch, transformers), the config. Exit 130 and one
    line every time: never 0 (a swallowed signal), never 3 (an import cut in the middle)."""
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "run_benchmark.py"), "--smoke", "--limit", "1",
                             *FAST, "--quiet", "--output_dir", str(tmp_path / "out")], cwd=REPO_ROOT,
                            env=_env(smoke_cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert _one_line(stderr).startswith("interrupted: signal 15")


def test_a_second_sigterm_4_ms_after_the_first_still_ends_in_130_and_one_line(tmp_path: Path, smoke_cache: Path,
                                                                             smoke_data_dir: Path) -> None:
    """A real run whose toolkit 'compiles' (sleeps) for minutes after the validation pass: two SIGTERM 4 ms apart
    once that phase is done."""
    sig = signal.SIGTERM
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "run_benchmark.py"), "--vendor", "faulty",
                             "--data_dir", str(smoke_data_dir),
                             "--output_dir", str(out), "--limit", "1", *FAST, "--quiet", "--set", "compiler=slow"],
                            cwd=REPO_ROOT,
                            env=_env(smoke_cache, LLAMA_BENCH_VENDOR_PATH=str(TEST_VENDORS),
                                     FAULTY_SLEEP_S="300"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = signal_at_phase(proc, out / "result.json", "validation", sig, again_after_s=0.004)
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert _one_line(stderr) == f"interrupted: signal {int(sig)}; status interrupted recorded in {out / 'result.json'}"
    assert json.loads((out / "result.json").read_text())["status"] == "interrupted"


DRIVER = """
import atexit, os, signal, sys, time
from benchmarks.guard import signals
signals.install()
import benchmarks.cli as cli
def send(times, sig=signal.SIGTERM, gap=0.004):
    for k in range(times):
        os.kill(os.getpid(), sig)
        time.sleep(gap)
    time.sleep(0.2)
settle = cli.signals.settle
def settle_and_signal():  # inside the CLI, the moment the run is recorded as completed
    settle()
    send(1)
cli.signals.settle = settle_and_signal
atexit.register(lambda: send(2, signal.SIGINT))  # two Ctrl-C 4 ms apart while the interpreter shuts down
code = cli.main(sys.argv[1:])
send(2)  # two SIGTERM after main returned, before the process exits
sys.exit(code)
"""


def test_signals_after_completion_keep_exit_0(tmp_path: Path, smoke_cache: Path, smoke_data_dir: Path) -> None:
    """SIGTERM the moment the run is recorded completed, two more after the CLI returned, two Ctrl-C 4 ms apart
    during interpreter shutdown (atexit): exit 0, nothing on stderr, the completed run as it was."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", DRIVER, "--data_dir", str(smoke_data_dir), "--output_dir",
                           str(out), "--limit", "1", *FAST, "--quiet"], cwd=REPO_ROOT, env=_env(smoke_cache),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""  # no traceback, no "Exception ignored in atexit callback"
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed" and (out / "result.md").is_file() and (out / "result.csv").is_file()


def _all_written(out: Path) -> bool:
    try:
        return "throughput_vs_length.png" in json.loads((out / "result.json").read_text()).get("files", [])
    except (OSError, ValueError):
        return False


def test_sigterm_while_waiting_for_the_history_lock_keeps_the_completed_run(tmp_path: Path, smoke_cache: Path,
                                                                           smoke_data_dir: Path) -> None:
    path = tmp_path / "h.csv"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(300)", str(path)],
                              stdout=subprocess.PIPE, text=True)
    out = tmp_path / "out"
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "run_benchmark.py"), "--data_dir", str(smoke_data_dir),
                                 "--output_dir", str(out), "--limit", "1", *FAST, "--quiet", "--history", str(path)],
                                cwd=REPO_ROOT, env=_env(smoke_cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 120  # the run's files are all written before the history row is appended
        while time.monotonic() < deadline and proc.poll() is None and not _all_written(out):
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 130, stderr
    assert _one_line(stderr) == (f"interrupted: signal 15; the run had completed: its files and status completed are "
                                 f"kept in {out}; its --history row may be missing")
    assert json.loads((out / "result.json").read_text())["status"] == "completed"
    for name in ("result.md", "result.csv", "throughput_vs_length.png"):
        assert (out / name).is_file(), name


# ================================================================================================ VERDICTS


def _data_copy(smoke_data_dir: Path, tmp: Path) -> Path:
    """A data_dir whose weights folder is a copy (to edit), the MMLU data linked."""
    data = tmp / "data"
    data.mkdir()
    (data / "mmlu_dataset").symlink_to(smoke_data_dir / "mmlu_dataset", target_is_directory=True)
    shutil.copytree(smoke_data_dir / WEIGHTS, data / WEIGHTS)
    return data


def _workload(data: Path) -> Any:
    from benchmarks.llama2_7b_mmlu import CASE

    return CASE.load_workload(CASE.Params(weight_dir=WEIGHTS, mmlu_dir="mmlu_dataset/data", few_shots=0), data, 1)


def _deviations(data: Path) -> list[str]:
    from benchmarks.llama2_7b_mmlu import CASE

    params = CASE.Params(weight_dir=WEIGHTS, mmlu_dir="mmlu_dataset/data", few_shots=5)
    return CASE.deviations(params, _workload(data), {**CASE.architecture, "parameters": CASE.parameters})


@pytest.fixture(scope="module")
def honest(smoke_data_dir: Path) -> Any:
    return _workload(smoke_data_dir)


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("field, value, shown", [
    ("rope_theta", 500000.0, "rope_theta=500000.0 (expected 10000.0)"),
    ("rms_norm_eps", 1e-6, "rms_norm_eps=1e-06 (expected 1e-05)"),
    ("hidden_act", "gelu", "hidden_act='gelu' (expected 'silu')"),
    ("rope_scaling", {"rope_type": "linear", "factor": 2.0}, "rope_type='linear' (expected 'default')"),
    ("max_position_embeddings", 4096, None),  # Llama-2-7B's own value: no longer a deviation
    ("attention_bias", True, "attention_bias=True (expected False)"),
    ("head_dim", 32, "head_dim=32 (expected 16)"),
])
def test_a_model_config_that_changes_the_arithmetic_is_a_verdict_reason(tmp_path: Path, smoke_data_dir: Path,
                                                                        honest: Any, field: str, value: Any,
                                                                        shown: str | None) -> None:
    data = _data_copy(smoke_data_dir, tmp_path)

    def lie(cfg: dict[str, Any]) -> None:
        if field in ("rope_theta", "rope_scaling"):
            params = cfg.setdefault("rope_parameters", {})
            params.update({"rope_theta": value} if field == "rope_theta" else value)
        else:
            cfg[field] = value

    _edit_json(data / WEIGHTS / "config.json", lie)
    found = [d for d in _deviations(data) if d.startswith("the model config is not Llama-2-7B's")]
    workload = _workload(data)
    assert workload.fingerprint["model_config_sha256"] != honest.fingerprint["model_config_sha256"]
    if shown is None:  # the smoke model's 2048 was its only difference
        assert found == []
    else:
        assert len(found) == 1 and shown in found[0], found


def test_a_tokenizer_with_the_ids_of_a_and_b_swapped_is_noticed(tmp_path: Path, smoke_data_dir: Path,
                                                                honest: Any) -> None:
    from benchmarks.measure.provenance import same_measurement

    data = _data_copy(smoke_data_dir, tmp_path)
    path = data / WEIGHTS / "tokenizer.json"
    tok = json.loads(path.read_text())
    vocab = tok["model"]["vocab"]
    vocab["\u2581A"], vocab["\u2581B"] = vocab["\u2581B"], vocab["\u2581A"]
    path.write_text(json.dumps(tok))
    swapped = _workload(data)
    assert swapped.notes["letter_ids"]["A"] == honest.notes["letter_ids"]["B"]  # the labels move with it
    assert swapped.fingerprint["tokenizer_sha256"] != honest.fingerprint["tokenizer_sha256"]
    a = {"case": "c", "config_sha256": "x", "fingerprint": dict(honest.fingerprint)}
    b = {"case": "c", "config_sha256": "x", "fingerprint": dict(swapped.fingerprint)}
    assert [d.split(":")[0] for d in same_measurement(a, b)] == ["fingerprint.tokenizer_sha256"]


def test_a_tokenizer_with_twice_the_tokens_is_noticed(tmp_path: Path, smoke_data_dir: Path, honest: Any) -> None:
    data = _data_copy(smoke_data_dir, tmp_path)
    path = data / WEIGHTS / "tokenizer.json"
    tok = json.loads(path.read_text())
    vocab = tok["model"]["vocab"]
    for k in range(len(vocab)):
        vocab[f"extra{k}"] = len(vocab)
    path.write_text(json.dumps(tok))
    from benchmarks.errors import BenchmarkError

    with pytest.raises(BenchmarkError, match=r"the tokenizer has \d+ tokens but config.json's vocab_size is 1057"):
        _workload(data)  # more tokens than the embedding: refused
    _edit_json(data / WEIGHTS / "config.json", lambda c: c.__setitem__("vocab_size", 4 * len(vocab)))
    assert _workload(data).fingerprint["tokenizer_sha256"] != honest.fingerprint["tokenizer_sha256"]


SHARED = Path(os.environ.get("LLAMA_BENCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")) / "llama2_tokenizer"


@pytest.mark.skipif(not (SHARED / "tokenizer.json").is_file(), reason=f"the Llama-2 tokenizer is not at {SHARED}")
def test_the_llama2_tokenizer_is_the_cases_and_a_swapped_copy_is_a_verdict_reason(tmp_path: Path) -> None:
    import transformers

    from benchmarks.contracts import Workload
    from benchmarks.llama2_7b_mmlu import _identity_deviations, identity

    assert identity.tokenizer_fingerprint(transformers.AutoTokenizer.from_pretrained(SHARED)) == \
        identity.LLAMA2_TOKENIZER_SHA256
    copy = tmp_path / "tok"
    shutil.copytree(SHARED, copy, ignore=shutil.ignore_patterns("tokenizer.model", "SOURCE.md"))
    tok = json.loads((copy / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["\u2581A"], vocab["\u2581B"] = vocab["\u2581B"], vocab["\u2581A"]
    (copy / "tokenizer.json").write_text(json.dumps(tok))
    swapped = identity.tokenizer_fingerprint(transformers.AutoTokenizer.from_pretrained(copy))
    found = _identity_deviations(Workload(samples=(), fingerprint={"tokenizer_sha256": swapped}))
    assert len(found) == 1 and found[0].startswith("the tokenizer is not Llama-2's")


def test_re_randomized_weights_of_the_same_size_change_the_fingerprint(tmp_path: Path, smoke_data_dir: Path,
                                                                      honest: Any) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    data = _data_copy(smoke_data_dir, tmp_path)
    path = data / WEIGHTS / "model.safetensors"
    tensors = load_file(path)
    torch.manual_seed(1)
    save_file({k: torch.randn_like(v) for k, v in tensors.items()}, path, metadata={"format": "pt"})
    again = _workload(data)
    assert again.fingerprint["weights_sha256"] == honest.fingerprint["weights_sha256"]  # same names and sizes
    assert again.fingerprint["weights_sample_sha256"] != honest.fingerprint["weights_sample_sha256"]


def test_flops_and_peak_overrides_from_set_are_named(tmp_path: Path, smoke_data_dir: Path) -> None:
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST, "--set", "flops=2*7e10", "--set", "peak_flops=1e12")
    assert run.code == 0, run.err
    verdict, result = run.result["verdict"], run.result
    assert any(r.startswith("flops overridden with --set ('2*7e10' = 1.4e+11 FLOPs per token instead of '2*7e9')")
               for r in verdict["reasons"]), verdict
    assert result["peak_flops"]["source"] == "--set peak_flops=1e+12"
    assert any("peak FLOP/s overridden (1e+12 from --set peak_flops=1e+12)" in n for n in verdict["notes"])
    same = run_cli(smoke_data_dir, tmp_path / "same", *FAST, "--set", "flops=2*7e9")  # the file's own value
    assert same.code == 0 and not any("flops overridden" in r for r in same.result["verdict"]["reasons"])


def test_a_nan_metric_of_the_run_is_never_a_pass(tmp_path: Path, smoke_data_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.measure import metrics

    real = metrics.compute

    def nan_core(**kw: Any) -> Any:
        import dataclasses

        return dataclasses.replace(real(**kw), p_infer_core=float("nan"))

    monkeypatch.setattr(metrics, "compute", nan_core)
    baseline = tmp_path / "b.yaml"
    baseline.write_text("metrics:\n  p_infer_core: {value: 1.0, rel_tol: 0.05}\n")
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST, "--baseline", str(baseline))
    assert_usage_error(run, "this run's result: key 'metrics.p_infer_core' is nan",
                       "the run had completed: its files and status completed are kept in")
    assert run.result["status"] == "completed" and run.result["metrics"]["p_infer_core"] is None


BASELINE_YAML = {
    "rel_tol 5 (meant 5%)": ("p_infer_core: {value: 1000, rel_tol: 5}", "rel_tol: 0.05"),
    "rel_tol 1.5": ("p_infer_core: {value: 1000, rel_tol: 1.5}", "is a fraction of the baseline"),
    "accuracy abs_tol 5": ("infer_acc: {value: 0.45, abs_tol: 5}", "abs_tol: 0.05"),
    "memory in MiB": ("mem_used_gib: 15872", "probably MiB (15872 MiB = 15.50 GiB)"),
    "memory in MiB with tol": ("mem_used_gib: {value: 16384.0, rel_tol: 0.1}", "probably MiB"),
    "zero throughput": ("p_infer_core: 0", "must be positive"),
    "negative mfu": ("mfu: -0.5", "must be positive"),
    "string value": ("p_infer_core: fast", "expected a number"),
    "nan value": ("p_infer_core: .nan", "expected a number"),
    "negative tolerance": ("p_infer_core: {value: 1000, rel_tol: -0.1}", "non-negative"),
    "both tolerances": ("p_infer_core: {value: 1000, rel_tol: 0.1, abs_tol: 1}", "not both"),
    "unknown metric": ("p_infer_cores: 1000", "unknown metric"),
}


@pytest.mark.parametrize("name", list(BASELINE_YAML))
def test_baseline_yaml_numbers_in_the_wrong_unit_are_refused(tmp_path: Path, finished: CliRun, name: str) -> None:
    body, needle = BASELINE_YAML[name]
    path = tmp_path / "b.yaml"
    path.write_text(f"metrics:\n  {body}\n")
    _usage(cli(["compare-results", str(finished.output_dir / "result.json"), "--baseline", str(path)]),
           f"--baseline {path}", needle)


@pytest.mark.parametrize("line, needle", [
    ('smoke: "no"', "key 'smoke' is 'no'; expected true/false"),
    ('limit: "2"', "key 'limit' is '2'; expected an integer or null"),
    ("world_size: 2.0", "key 'world_size' is 2.0"),
    ("device: [A100]", "key 'device' is ['A100']; expected a string or null"),
    ("precision: 16", "key 'precision' is 16"),
])
def test_baseline_yaml_context_of_the_wrong_type_is_refused(tmp_path: Path, finished: CliRun, line: str,
                                                            needle: str) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(f"{line}\nmetrics:\n  p_infer_core: 1000\n")
    _usage(cli(["compare-results", str(finished.output_dir / "result.json"), "--baseline", str(path)]),
           f"--baseline {path}", needle)


@pytest.mark.parametrize("name, edit, needle", [
    ("all zero", lambda m: m.update({k: 0 for k in m if isinstance(m[k], (int, float)) and m[k] is not None}),
     "is null or zero, so the gate would compare nothing"),
    ("all null", lambda m: m.update(dict.fromkeys(m)), "has a value, so the gate would compare nothing"),
])
def test_a_baseline_that_gates_nothing_is_refused(tmp_path: Path, finished: CliRun, name: str,
                                                  edit: Callable, needle: str) -> None:
    path = tmp_path / "b.json"
    data = json.loads((finished.output_dir / "result.json").read_text())
    edit(data["metrics"])
    data["accuracy"] = {}
    path.write_text(json.dumps(data))
    _usage(cli(["compare-results", str(finished.output_dir / "result.json"), "--baseline", str(path)]), needle)


def test_a_baseline_of_schema_2_is_converted_never_compared_as_is(tmp_path: Path, finished: CliRun) -> None:
    data = json.loads((finished.output_dir / "result.json").read_text())
    old = json.loads(json.dumps(data))
    old["schema_version"] = 2
    old["metrics"]["p_infer_whole"] = data["metrics"]["p_infer_pass"]  # what schema 2 called p_infer_whole
    old["metrics"]["p_val_whole"] = data["metrics"]["p_val_pass"]
    for key in ("p_infer_pass", "p_val_pass"):
        del old["metrics"][key]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    code, out, err = cli(["compare-results", str(finished.output_dir / "result.json"), "--baseline", str(path)])
    assert code == 0, err
    assert "the baseline has schema_version 2, whose p_val_whole/p_infer_whole were the pass alone" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  p_")}
    assert "missing" in rows["p_infer_whole"] and "missing" in rows["p_val_whole"]
    assert "ok" in rows["p_infer_pass"] and "ok" in rows["p_val_pass"]  # the same figures, their current names


CASE_CODE = {
    "raises": ("raise RuntimeError('boom')\n", "import failed (RuntimeError: boom)"),
    "syntax error": ("def (:\n", "import failed (SyntaxError:"),
    "sys.exit(0)": ("import sys\nsys.exit(0)\n", "import failed (sys.exit(0))"),
    "sys.exit(3)": ("import sys\nsys.exit(3)\n", "import failed (sys.exit(3))"),
    "import error": ("import no_such_module_here\n", "import failed (ModuleNotFoundError:"),
    "no CASE": ("X = 1\n", "does not provide a CASE"),
    "CASE of another name": ("from benchmarks.llama2_7b_mmlu import CASE\n", "CASE.name is 'llama2_7b_mmlu'"),
}


@pytest.mark.parametrize("name", list(CASE_CODE))
def test_a_broken_case_plugin_is_named_with_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     name: str) -> None:
    code, needle = CASE_CODE[name]
    folder = tmp_path / "cases" / "brokencase"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(code)
    monkeypatch.setenv("LLAMA_BENCH_CASE_PATH", str(tmp_path / "cases"))
    monkeypatch.delitem(sys.modules, "llama_bench_case_brokencase", raising=False)
    run = CliRun(*cli(["--case", "brokencase", "--smoke", "--output_dir", str(tmp_path / "out")]), tmp_path / "out")
    assert_usage_error(run, "case 'brokencase'", str(folder), needle)
    assert "llama_bench_case_brokencase" not in sys.modules or name.startswith(("no CASE", "CASE of"))


def test_sys_exit_inside_the_run_is_a_failed_run_not_exit_0(tmp_path: Path, smoke_data_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.llama2_7b_mmlu import Llama2MMLU

    monkeypatch.setattr(Llama2MMLU, "build_model", lambda self, *a, **k: sys.exit(0))
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST)
    assert_clean_exit(run, 3, "run failed: RuntimeError: sys.exit(0) called inside the run", "status failed recorded")
    assert run.result["status"] == "failed"


CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
           "to allocate 140737488355328 bytes. Error code 12 (Cannot allocate memory)")


@pytest.mark.parametrize("where", ["pass", "load"])
def test_out_of_host_memory_is_one_line_naming_the_phase_and_the_settings(tmp_path: Path, smoke_data_dir: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          where: str) -> None:
    from benchmarks.llama2_7b_mmlu import Llama2MMLU
    from benchmarks.llama2_7b_mmlu.model import LastTokenLM

    if where == "pass":
        calls = []
        real = LastTokenLM.forward

        def third_forward_runs_out(self: Any, ids: Any, last: Any) -> Any:
            calls.append(1)
            if len(calls) == 4:  # the warm-up, then questions 1-2 of the validation pass fit
                raise RuntimeError(CPU_OOM)
            return real(self, ids, last)

        monkeypatch.setattr(LastTokenLM, "forward", third_forward_runs_out)
        phase = "out of host memory in the validation pass at question 3/57"
    else:
        def no_room(self: Any, *a: Any, **k: Any) -> Any:
            raise RuntimeError(CPU_OOM)

        monkeypatch.setattr(Llama2MMLU, "build_model", no_room)
        phase = "out of host memory in init (loading the model onto the device)"
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST)
    line = assert_clean_exit(run, 3, "run failed: HostOutOfMemory: " + phase, "process peak RSS",
                             "DefaultCPUAllocator: can't allocate memory", "--set precision=bf16",
                             "a machine with more free host memory", "status failed recorded in")
    assert "a device with more free memory" not in line
    assert run.result["status"] == "failed" and run.result["error"].startswith("HostOutOfMemory: out of host memory")


@pytest.mark.parametrize("kind", ["fifo tokenizer.json", "/dev/zero tokenizer.json", "fifo weights",
                                  "config.json of 5,000 digits"])
def test_weight_files_that_would_block_or_never_end_are_refused(tmp_path: Path, smoke_data_dir: Path,
                                                                 kind: str) -> None:
    data = _data_copy(smoke_data_dir, tmp_path)
    weights = data / WEIGHTS
    if kind == "fifo tokenizer.json":
        (weights / "tokenizer.json").unlink()
        os.mkfifo(weights / "tokenizer.json")
    elif kind == "/dev/zero tokenizer.json":
        (weights / "tokenizer.json").unlink()
        (weights / "tokenizer.json").symlink_to("/dev/zero")
    elif kind == "fifo weights":
        os.mkfifo(weights / "extra.safetensors")
    else:
        text = (weights / "config.json").read_text()
        (weights / "config.json").write_text(text.replace('"vocab_size": 1057', '"vocab_size": ' + "9" * 5000))
    with _deadline(60):  # a read of the FIFO would block, of /dev/zero never end
        run = run_cli(data, tmp_path / "out", *FAST)
    line = assert_usage_error(run, str(weights))
    assert ("not a regular file" in line) if kind != "config.json of 5,000 digits" else ("5000 digits" in line)


def test_a_full_disk_under_run_log_prints_no_logging_traceback(tmp_path: Path, smoke_data_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real = safe_write.open_log

    class Full:
        def __init__(self, stream: Any) -> None:
            self.stream, self.lines = stream, 0

        def write(self, text: str) -> int:
            self.lines += 1
            if self.lines > 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.stream.write(text)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.stream, name)

    monkeypatch.setattr(safe_write, "open_log", lambda path: Full(real(path)))
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST, quiet=False)
    assert run.code == 0, run.err
    assert "Logging error" not in run.err and "Traceback" not in run.err
    assert run.result["status"] == "completed"


@pytest.mark.parametrize("value", ["\x1b[2J\x07", "d" * 500])
def test_plot_draws_odd_device_names_without_warnings(tmp_path: Path, finished: CliRun, value: str) -> None:
    path = _history_with(finished, tmp_path, "device_name", value)
    code, out, err = cli(["plot", "--history", str(path), "--out", str(tmp_path / "c"), "--html"])
    assert code == 0 and err == "", err  # no matplotlib layout or missing-glyph warning on stderr
    assert "\x1b" not in out and (tmp_path / "c" / "throughput.png").stat().st_size > 0


def test_plot_refuses_to_write_over_its_own_history(tmp_path: Path, finished: CliRun) -> None:
    charts = tmp_path / "charts"
    charts.mkdir()
    hist = charts / "mfu.png"
    shutil.copy(finished.output_dir.parent / "h.csv", hist)
    before = hist.read_bytes()
    _usage(cli(["plot", "--history", str(hist), "--out", str(charts)]), "is one of the files plot writes in --out")
    assert hist.read_bytes() == before
