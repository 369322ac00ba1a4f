"""Command line: the one place that turns errors into messages and exit codes.

Exit codes: 0 ok, 1 regression against a baseline, 2 bad input or usage, 3 the run itself failed,
130 interrupted (SIGINT or SIGTERM). Every failure is one line on stderr; the traceback of a crash goes to
run.log (or to stderr with LLAMA_BENCH_TRACEBACK=1). See docs/errors_and_faults.md.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any

from .config import scenarios
from .errors import EXIT_INTERRUPTED, EXIT_RUN_FAILED, EXIT_USAGE, BenchmarkError, printable
from .guard import signals
from .parallel import distributed, launcher
from .reporting import runlog
from .session import one_line_with_notes, stop_requested

REPO_ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks")
HISTORY_WAIT_S = 120.0  # reporting.history.DEFAULT_WAIT_S, repeated here so --help imports no reporting code
MAX_DIST_TIMEOUT_S = 7 * 24 * 3600.0
MAX_REPEAT = 1000  # --repeat: more is a typo (each repeat runs both passes again)
MAX_NPROC = 1024  # --nproc: processes on this host, one per device


class _ArgParser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--smok` must be an error, not a smoke run
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # argparse exits 2 with usage; keep its code, one line
        raise BenchmarkError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _ArgParser(prog="run_benchmark.py", description="FlagPerf-style LLM inference benchmark",
                   epilog="subcommands on earlier results: compare-results, compare-predictions, plot, history-add "
                          "(run_benchmark.py SUBCOMMAND --help)")
    p.add_argument("--case", default="llama2_7b_mmlu", help="case name (default: llama2_7b_mmlu)")
    p.add_argument("--vendor", default=None, help="vendor name (default: nvidia when CUDA is present, else cpu)")
    p.add_argument("--data_dir", type=Path, default=Path("data"), help="folder holding the data the case reads (see the case's README)")
    p.add_argument("--output_dir", type=Path, default=None,
                   help="default: outputs/<case>/<timestamp>-<pid>/ (a new folder per run)")
    p.add_argument("--overwrite", action="store_true",
                   help="let --output_dir replace the run it already holds (its result.*, predictions*, png and "
                        "run.log are removed first); without it such a folder is refused")
    p.add_argument("--config_dir", type=Path, default=REPO_ROOT / "configs", help=argparse.SUPPRESS)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a merged config key (typed by the key's declared type); repeatable")
    p.add_argument("--limit", type=int, default=None, help="run only the first N questions of every subject")
    p.add_argument("--smoke", action="store_true",
                   help="generate the case's tiny model and data (nothing is downloaded) and run the normal path on it "
                        "(vendor default: cpu; any vendor may be named with --vendor)")
    p.add_argument("--scenario", default=scenarios.DEFAULT, choices=scenarios.SCENARIOS,
                   help="optimized (default): the vendor YAML's settings and optimizations, compile and warm-up before "
                        "the timed pass. reference: the reference's semantics end to end (configurations.yaml and "
                        "parameters.yaml only, optimizations off, its model load path, lazy compile and warm-up rule "
                        "inside the inference pass; benchmarks/config/scenarios.py); --set still applies")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run the timed validation and inference passes N times on the model built once and "
                        "report the throughputs' spread (result.json 'repeat'); metrics stay those of run 1. "
                        "Not the config key 'repeat', which stays 1 as in the reference")
    p.add_argument("--baseline", type=Path, default=None, metavar="FILE",
                   help="regression gate: compare with a result.json or a baseline YAML (docs/baselines.md); "
                        "exit 1 on a regression")
    p.add_argument("--history", type=Path, default=None, metavar="FILE",
                   help="append this run as one row (result.csv columns) to a CSV file, for `plot`")
    p.add_argument("--history_wait_s", type=float, default=None, metavar="S",
                   help="the longest the finished run waits for another process's lock on --history before it "
                        "exits 2 without the row (its own files kept; default "
                        f"{HISTORY_WAIT_S:.0f} s)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="gate against a baseline of another workload (device, precision, smoke/--limit, ...) "
                        "anyway, printing the differences")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="data-parallel run on N devices of this host: the same command under torchrun "
                        "(torchrun --standalone --nproc_per_node N run_benchmark.py ...); for several nodes "
                        "use torchrun itself (docs/multi_gpu.md)")
    p.add_argument("--dist_timeout", type=float, default=distributed.DEFAULT_TIMEOUT_S, metavar="S",
                   help="data-parallel runs: the longest a rank waits for the others at a barrier or gather "
                        f"(default {distributed.DEFAULT_TIMEOUT_S:.0f} s)")
    p.add_argument("--dist_silence_s", type=float, default=distributed.SILENCE_S, metavar="S",
                   help="data-parallel runs: a rank whose heartbeat stood still this long is taken for dead "
                        "(killed, hung, its node lost) and every other rank stops, rank 0 naming it (default "
                        f"{distributed.SILENCE_S:.0f} s, at least {distributed.MIN_SILENCE_S:.0f}; docs/multi_gpu.md)")
    return p


_DIST = distributed.Dist()  # this process's place in a data-parallel run (set by run())
_LINE: str | None = None  # the one line this process said (an --nproc rank leaves it to the launcher)


def run(argv: list[str]) -> int:
    from .reporting.subcommands import dispatch

    code = dispatch(argv)  # compare-results / compare-predictions / plot / history-add
    if code is not None:
        return code
    args = build_parser().parse_args(argv)
    global _DIST
    _check_arguments(args)
    ctx = _DIST = distributed.from_env(args.dist_timeout, args.dist_silence_s)
    if args.nproc is not None:
        if ctx.active:
            raise BenchmarkError("--nproc starts torchrun itself; under torchrun leave it out")
        if args.nproc > 1:
            return launcher.launch(args.nproc, _without_nproc(argv), str(REPO_ROOT / "run_benchmark.py"))
    from . import session

    return session.run(args, argv, ctx)


def _check_arguments(args: argparse.Namespace) -> None:
    """Every command-line value that cannot work, refused before anything is imported or created."""
    import math

    from .guard.safe_io import check_path

    if not (math.isfinite(args.dist_timeout) and 0 < args.dist_timeout <= MAX_DIST_TIMEOUT_S):
        raise BenchmarkError(f"--dist_timeout {args.dist_timeout}: expected a positive number of seconds, at most "
                             f"{MAX_DIST_TIMEOUT_S:.0f} (a week)")
    if not (math.isfinite(args.dist_silence_s)
            and distributed.MIN_SILENCE_S <= args.dist_silence_s <= MAX_DIST_TIMEOUT_S):
        raise BenchmarkError(f"--dist_silence_s {args.dist_silence_s}: expected a number of seconds from "
                             f"{distributed.MIN_SILENCE_S:g} (4 heartbeats) to {MAX_DIST_TIMEOUT_S:.0f} (a week)")
    if args.history_wait_s is not None and not (math.isfinite(args.history_wait_s) and 0 <= args.history_wait_s
                                                <= MAX_DIST_TIMEOUT_S):
        raise BenchmarkError(f"--history_wait_s {args.history_wait_s}: expected a number of seconds from 0 to "
                             f"{MAX_DIST_TIMEOUT_S:.0f}")
    if args.limit is not None and args.limit < 1:
        raise BenchmarkError(f"--limit {args.limit}: expected a positive number of questions per subject")
    if not 1 <= args.repeat <= MAX_REPEAT:
        raise BenchmarkError(f"--repeat {args.repeat}: expected a positive number of runs, 1 (no repeat) to "
                             f"{MAX_REPEAT}")
    if args.nproc is not None and not 1 <= args.nproc <= MAX_NPROC:
        raise BenchmarkError(f"--nproc {args.nproc}: expected a positive number of processes, at most {MAX_NPROC} "
                             "(one per device of this host)")
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and not re.fullmatch(r"[1-9]\d{0,5}(,[1-9]\d{0,5})*", threads.strip()):
        raise BenchmarkError(f"environment: OMP_NUM_THREADS={printable(threads[:40])!r} is not a number of threads "
                             "(a positive integer, or a comma-separated list of them); set one or unset it")
    for flag, path in (("--output_dir", args.output_dir), ("--history", args.history), ("--baseline", args.baseline),
                       ("--data_dir", None if args.smoke else args.data_dir), ("--config_dir", args.config_dir)):
        if path is not None:
            check_path(path, flag)
    if args.history is not None and args.output_dir is not None:
        from .guard.safe_io import RUN_FILES, shown

        same = [n for n in RUN_FILES if os.path.realpath(args.output_dir / n) == os.path.realpath(args.history)]
        if same:
            raise BenchmarkError(f"--history {shown(args.history)} is the run's own {same[0]} in --output_dir, which "
                                 "the run replaces; give a history file outside the run's files")


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    from .guard.locks import release_all

    argv = sys.argv[1:] if argv is None else argv
    global _DIST, _LINE
    _DIST, _LINE = distributed.Dist(), None
    # SIGINT/SIGTERM are an interruption from the first line on (config loading, smoke-data generation), so
    # that every `finally` runs: no half-made cache folder or stale lock is left behind (benchmarks.guard.signals).
    previous = signals.start()
    code = EXIT_RUN_FAILED
    try:
        code = _main(argv)
        return code
    finally:
        launcher.leave_end(code, _LINE)  # a rank of an --nproc run: its code and line, for the launcher
        signals.settle()  # the run's end is decided: the clean-up below is never cut by a signal
        runlog.restore_library_logs()
        release_all()
        distributed.teardown(_DIST)
        # In the process's own entry point the signals stay ignored until it exits (signals.end): a data-parallel
        # rank that ended is done, and the launcher's SIGTERM to the others must not cut its exit code (the
        # watchdog may have stopped it before the launcher's signal came). Called in-process, the caller's
        # handlers come back, whatever the run was.
        signals.end(previous)


def _interrupted_exit(exc: BaseException) -> int:
    signals.caught()
    signum = signals.requested()
    text = one_line_with_notes(exc) if isinstance(exc, KeyboardInterrupt) else f"signal {signum}; " + one_line_with_notes(exc)
    _say(f"interrupted: {text or 'keyboard interrupt'}")
    # rank 0 recorded status interrupted: its code says the same; another rank stopped by its watchdog (a peer
    # failed) did not get a signal itself
    return EXIT_RUN_FAILED if _DIST.stopped_by and not _DIST.is_main else EXIT_INTERRUPTED


def _say(line: str) -> None:
    """The run's one line on stderr; a rank other than 0 of a running process group, or of an --nproc run, only
    logs it (rank 0, or the --nproc launcher, names the failing rank for the run)."""
    global _LINE
    _LINE = line
    if (_DIST.active and not _DIST.is_main and _DIST.store is not None) or launcher.quiet_rank():
        runlog.file_only(logging.ERROR, "%s", line)
    else:
        print(line, file=sys.stderr)


def _main(argv: list[str]) -> int:
    try:
        signals.check()  # a signal that came while the process started
        return run(argv)
    except BenchmarkError as exc:
        if stop_requested(_DIST):  # e.g. a library's error type raised from an interrupted import
            return _interrupted_exit(exc)
        _say(f"error: {one_line_with_notes(exc)}")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        return _interrupted_exit(exc)
    except (distributed.RankFailed, distributed.PeerFailed) as exc:
        _say(f"run failed: {one_line_with_notes(exc)}")
        return EXIT_RUN_FAILED
    except Exception as exc:  # a crash of the run itself: one line here, the traceback in run.log
        if stop_requested(_DIST):
            return _interrupted_exit(exc)
        logged = any(isinstance(h, logging.FileHandler) for h in log.handlers)
        where = "traceback in run.log" if logged else "LLAMA_BENCH_TRACEBACK=1 prints the traceback"
        rank = f"rank {_DIST.rank}: " if _DIST.active else ""
        _say(f"run failed: {rank}{type(exc).__name__}: {one_line_with_notes(exc)} ({where})")
        if os.environ.get("LLAMA_BENCH_TRACEBACK"):
            traceback.print_exc()
        else:
            runlog.file_only(logging.ERROR, "traceback:\n%s", traceback.format_exc())
        return EXIT_RUN_FAILED
