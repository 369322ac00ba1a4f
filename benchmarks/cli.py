"""Command line: the one place that turns errors into messages and exit codes.

Exit codes: 0 ok, 1 regression against a baseline, 2 bad input or usage, 3 the run itself failed,
130 interrupted (SIGINT or SIGTERM). Every failure is one line on stderr; the traceback of a crash goes to
run.log (or to stderr with LLAMA_BENCH_TRACEBACK=1). See docs/errors_and_faults.md.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import re
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from .config import scenarios
from .parallel import distributed
from .guard import signals
from .errors import EXIT_INTERRUPTED, EXIT_RUN_FAILED, EXIT_USAGE, BenchmarkError, one_line, printable

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
                        "inside the inference pass; benchmarks/scenarios.py); --set still applies")
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
    return p


_DIST = distributed.Dist()  # this process's place in a data-parallel run (set by run())


class _RunLog(logging.FileHandler):
    """run.log through benchmarks.safe_write: appended, never through a symlink, only a regular file."""

    def _open(self) -> Any:
        from .guard.safe_write import open_log

        return open_log(Path(self.baseFilename))

    def handleError(self, record: logging.LogRecord) -> None:
        """A log line that cannot be written (disk full) is lost, quietly: logging would print a traceback to
        stderr, and the run's own files and its one stderr line say what went wrong."""
        self.lost = getattr(self, "lost", 0) + 1


class _Printable(logging.Formatter):
    """Log lines with their control characters escaped: a path holding a terminal escape sequence is shown."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep_newlines=True)


def _setup_logging(output_dir: Path, quiet: bool, rank: int = 0) -> None:
    root = logging.getLogger("benchmarks")
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):  # a second run in one process must not leak the first one's log file
        root.removeHandler(handler)
        handler.close()
    fh = _RunLog(output_dir / ("run.log" if rank == 0 else f"run.log.rank{rank}"), encoding="utf-8")
    fh.setFormatter(_Printable("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(fh)
    sh = logging.StreamHandler(sys.stderr)
    sh.setLevel(logging.WARNING if quiet else logging.INFO)
    sh.addFilter(lambda record: not getattr(record, "file_only", False))  # e.g. Finish Info: stdout has it
    if rank != 0:  # rank 0 speaks for the run; the others' lines are in run.log.rank<N>
        sh.setLevel(logging.CRITICAL)
    sh.setFormatter(_Printable("[%(asctime)s] %(message)s", "%H:%M:%S"))
    root.addHandler(sh)
    root.propagate = False


def _prepare_output(path: Path) -> Path:
    from .guard.safe_write import probe_folder, shown

    try:
        path.mkdir(parents=True, exist_ok=True)
        probe_folder(path)
    except OSError as exc:
        raise BenchmarkError(
            f"output_dir {shown(path)} is not writable ({exc.strerror or exc}); choose another --output_dir") from None
    return path


def _output_dir(args: argparse.Namespace, stamp: str) -> tuple[Path, str | None]:
    """The run's folder, locked for this run and free of an earlier run's files; (folder, note or None)."""
    from .guard import locks, safe_io

    if args.output_dir is None:
        folder = safe_io.new_run_dir(REPO_ROOT / "outputs" / args.case, stamp)
        return _prepare_output(folder), locks.lock_output_dir(folder)
    folder = _prepare_output(args.output_dir)
    note = locks.lock_output_dir(folder)
    removed = safe_io.claim_output_dir(folder, args.overwrite)
    if removed:
        note = "; ".join(filter(None, [note, f"--overwrite: removed the earlier run's "
                                              f"{', '.join(p.name for p in removed)}"]))
    return folder, note


_LIBRARY_LOGGERS = ("transformers", "torch", "py.warnings")
_library_saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []


def _library_logs_to_run_log(quiet: bool) -> None:
    """With --quiet, warnings of transformers/torch (and Python warnings) go to run.log, not the terminal:
    a quiet run prints only its summary or its one failure line."""
    if not quiet:
        return
    file_handlers = [h for h in log.handlers if isinstance(h, logging.FileHandler)]
    logging.captureWarnings(True)
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        _library_saved.append((logger, list(logger.handlers), logger.propagate))
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in file_handlers:
            logger.addHandler(handler)
        logger.propagate = False


def _restore_library_logs() -> None:
    while _library_saved:
        logger, handlers, propagate = _library_saved.pop()
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in handlers:
            logger.addHandler(handler)
        logger.propagate = propagate
    logging.captureWarnings(False)


# Files written only for a completed run: beside an interrupted or failed result.json they would contradict it.
_COMPLETED_ONLY = ("result.md", "result.csv", "throughput_vs_length.png", "timeline.png", "telemetry.csv")


def _stop_requested() -> bool:
    """A SIGINT/SIGTERM asked this process to stop (not the data-parallel watchdog stopping a rank because a
    peer failed: that run failed, and distributed.attribute names the rank)."""
    return signals.requested() is not None and not _DIST.stopped_by


def _interrupted(exc: BaseException) -> bool:
    """An interruption: a KeyboardInterrupt, or any failure after a stop was requested (a signal that cut an
    import deep inside a library turns into that library's error, not into ours)."""
    if isinstance(exc, (distributed.RankFailed, distributed.PeerFailed)):
        return False
    return isinstance(exc, KeyboardInterrupt) or _stop_requested()


def _record_end(run_: Any, exc: BaseException, output_dir: Path) -> None:
    """Record a failed or interrupted run in result.json (status, error, the passes finished so far)."""
    from .guard.safe_write import remove

    if run_.result is None:
        return
    run_.result.status = "interrupted" if _interrupted(exc) else "failed"
    run_.result.error = f"{type(exc).__name__}: {one_line(exc, 1000)}"
    run_.result.phases_s = dict(run_.spans.seconds)
    run_.result.metrics_partial = run_.partial_metrics()  # also a pass that ended after the last phase
    for name in _COMPLETED_ONLY:
        try:
            remove(output_dir / name)
        except (OSError, BenchmarkError):
            pass
    where = output_dir / "result.json"
    try:
        _save_shielded(run_)
    except OSError as first:  # disk full: no room for a second copy; overwrite the file's own blocks
        from .guard.safe_io import rewrite_in_place

        try:
            rewrite_in_place(where, run_.result.as_dict())
        except OSError as second:
            exc.add_note(f"status {run_.result.status} NOT recorded: cannot write {where} "
                         f"({first.strerror}; {second.strerror})")
            return
    _log_file_only(logging.ERROR, "run %s: %s", run_.result.status, run_.result.error)
    exc.add_note(f"status {run_.result.status} recorded in {where}")


def _history_row_of_end(history_path: Path | None, run_: Any, exc: BaseException, output_dir: Path) -> None:
    """A failed or interrupted night is a --history row too (status, error line, run folder), so a report's
    latest night is the one that really ran last. A row that cannot be appended is a note, never the error."""
    if history_path is None or run_.result is None or run_.result.status not in ("failed", "interrupted"):
        return
    from .reporting import history

    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        data = run_.result.as_dict()
        if any(r.get("result_dir") == str(output_dir) and r.get("start_time") == data.get("start_time")
               for r in _history_rows(history_path)):
            return  # the completed row went in before the interruption; the report shows the run's folder
        history.append_history(history_path, data, output_dir)
        exc.add_note(f"{run_.result.status} night recorded in {history_path}")
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - never instead of the run's own error
        exc.add_note(f"history row NOT appended to {history_path} ({type(err).__name__}: {one_line(err, 300)})")
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)


def _history_rows(path: Path) -> list[dict[str, Any]]:
    from .reporting import history

    try:
        return history.read_history(path) if path.is_file() else []
    except BenchmarkError:
        return []


def _log_file_only(level: int, msg: str, *args: Any) -> None:
    """A record for run.log alone: the terminal gets one line per failure, from main()."""
    record = log.makeRecord(log.name, level, __file__, 0, msg, args, None)
    for handler in log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _save_shielded(run_: Any) -> None:
    """Write the partial result with SIGINT/SIGTERM held off, so a second signal cannot lose it."""
    import threading

    if threading.current_thread() is not threading.main_thread():  # embedded: no handlers to hold
        run_.save()
        return
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_.save()
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)


def _one_line(exc: BaseException, limit: int = 1000) -> str:
    """The exception's message on one line, with the notes run() adds (where the partial result is)."""
    text = one_line(exc, limit)
    notes = [" ".join(str(n).split()) for n in getattr(exc, "__notes__", ())]
    return "; ".join([text, *notes]) if text else "; ".join(notes)


def run(argv: list[str]) -> int:
    from .reporting.subcommands import dispatch

    code = dispatch(argv)  # compare-results / compare-predictions / plot
    if code is not None:
        return code
    args = build_parser().parse_args(argv)
    global _DIST
    _check_arguments(args)
    ctx = _DIST = distributed.from_env(args.dist_timeout)
    if args.nproc is not None:
        if args.nproc < 1:
            raise BenchmarkError(f"--nproc {args.nproc}: expected a positive number of processes")
        if ctx.active:
            raise BenchmarkError("--nproc starts torchrun itself; under torchrun leave it out")
        if args.nproc > 1:
            return distributed.launch(args.nproc, _without_nproc(argv), str(REPO_ROOT / "run_benchmark.py"))
    # Imported only now: --help and the subcommands must start without torch/transformers (seconds each). A
    # signal during these imports is held until they end (benchmarks.signals), so it cannot be swallowed or
    # leave a half-imported module.
    with signals.deferred():
        import torch  # noqa: F401  (every run needs both; imported here, under the deferral)
        import transformers  # noqa: F401

        from .config import check_optimizations, load_config
        from .harness.host_memory import check_host_memory
        from .reporting.progress import make_progress
        from .registry import case_config_root, default_vendor, get_case, get_toolkit, get_vendor, vendor_call, vendor_home
        from .reporting.record import UNSET
        from .reporting.summary import after_run, check_gate_inputs
        from .harness.run import Run, RunRequest
        from .harness.threads import choose_threads
        case = get_case(args.case)
        vendor_name = args.vendor or default_vendor(smoke=args.smoke)
        vendor = get_vendor(vendor_name)
    config = load_config(case_config_root(args.case, args.config_dir), case, vendor_name, vendor.Options,
                         args.overrides, vendor_home=vendor_home(vendor_name), scenario=args.scenario)
    if args.scenario == scenarios.REFERENCE:
        config = _reference_compiler(config, vendor, vendor_name)
    where = f"from {vendor_home(vendor_name) or 'an entry point'}"
    vendor_call(vendor_name, where, "configure()", vendor.configure, distributed.device_options(config.vendor, ctx))
    if not vendor_call(vendor_name, where, "is_available()", vendor.is_available):
        raise BenchmarkError(f"vendor '{vendor_name}' finds no usable device on this machine; "
                             "choose another --vendor (or run where its device is)")
    check_optimizations(case.optimizations, config, vendor)  # e.g. a kernel the vendor lacks at this precision
    toolkit = get_toolkit(vendor, config.run.compiler, config.vendor)  # an unknown toolkit fails before any output
    if args.scenario == scenarios.REFERENCE:
        from .harness.toolkits import reference_toolkit

        reference_toolkit(type(toolkit))  # a toolkit without the reference's semantics fails here too
    if args.smoke:
        data_dir = case.smoke_data()
    else:
        data_dir = _resolved(args.data_dir, "--data_dir")
        case.check_data(config.case, data_dir, f"python run_benchmark.py --case {args.case} --smoke")
    memory_line = None
    parameters = (case.model_parameters(config.case, data_dir, config.run.synthetic_weights)
                  if hasattr(case, "model_parameters") else None)
    device = vendor.device()
    if device.type == "cpu" and parameters:  # the model will live in host RAM
        memory_line = check_host_memory(parameters, config.run.effective_precision)
    # A bad baseline or history file fails here (exit 2), before hours of running.
    baseline = check_gate_inputs(args.baseline, args.history, {
        "case": args.case, "precision": config.run.effective_precision, "tf32": config.run.tf32,
        "toolkit": config.run.compiler, "vendor": vendor_name, "device": vendor.device_name(),
        "smoke": args.smoke, "limit": args.limit, "scenario": args.scenario, "world_size": ctx.world_size}, args.allow_mismatch)
    distributed.setup(ctx, device)  # no-op in one process
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    output_dir, note = _shared_output_dir(args, stamp, ctx)
    _setup_logging(output_dir, args.quiet, ctx.rank)
    _library_logs_to_run_log(args.quiet or not ctx.is_main)
    if ctx.active:
        log.info("rank %d of %d (local rank %d) on %s, device %s; process group %s; hosts %s", ctx.rank,
                 ctx.world_size, ctx.local_rank, ctx.host, device, ctx.backend, ", ".join(ctx.hosts))
    log.info("case %s, vendor %s (%s), output %s", args.case, vendor_name, vendor.device_name(), output_dir)
    if note:
        log.info("note: %s", note)
    log.info(choose_threads(args.smoke, device))
    if memory_line:
        log.info(memory_line)
    run_ = Run(RunRequest(case=case, vendor=vendor, config=config, data_dir=data_dir, output_dir=output_dir,
                          limit=args.limit, smoke=args.smoke, repeat=args.repeat,
                          command_line=["run_benchmark.py", *argv],
                          progress=make_progress(args.quiet or not ctx.is_main, config.run.log_freq), dist=ctx))
    try:
        try:
            result = run_.execute()
            signals.check()  # a stop request that library code swallowed: interrupted, not completed
        except SystemExit as exc:  # a case's or vendor's code called sys.exit: a failed run, never exit 0
            raise RuntimeError(f"sys.exit({exc.code!r}) called inside the run (by a case's or vendor's code)") from exc
    except (KeyboardInterrupt, Exception) as exc:
        if _interrupted(exc):
            signals.caught()  # a second signal must not cut the recording of this one
        ctx.watching = False  # from here on this rank records its end; the watchdog must not cut that short
        exc = distributed.attribute(ctx, exc)  # rank 0: a failed or vanished rank becomes the run's error
        distributed.report_end(ctx, *_end_status(exc, ctx))
        if ctx.is_main:
            if ctx.active and run_.result is not None and run_.result.distributed is not UNSET:
                run_.result.distributed["ranks_at_end"] = distributed.end_states(ctx)
            _record_end(run_, exc, output_dir)
            _history_row_of_end(args.history, run_, exc, output_dir)
        raise exc
    ctx.watching = False
    distributed.report_end(ctx, "completed")
    if not ctx.is_main:
        signals.settle()
        return 0  # rank 0 has this rank's figures and writes the result
    # The run is complete and recorded: the gate, the history row and the summary follow. Whatever stops them
    # (a signal, a --history locked too long) leaves the run's files and its status completed as they are.
    try:
        code = after_run(result, output_dir, baseline, args.history, args.history_wait_s)  # exit 0 or 1
    except (KeyboardInterrupt, BenchmarkError) as exc:
        if isinstance(exc, KeyboardInterrupt):
            signals.caught()
        exc.add_note(f"the run had completed: its files and status completed are kept in {output_dir}"
                     + ("" if args.history is None else "; its --history row may be missing"))
        raise
    signals.settle()  # a signal from now on (the scheduler's, at exit) no longer changes the exit code
    return code


def _check_arguments(args: argparse.Namespace) -> None:
    """Every command-line value that cannot work, refused before anything is imported or created."""
    import math

    from .guard.safe_io import check_path

    if not (math.isfinite(args.dist_timeout) and 0 < args.dist_timeout <= MAX_DIST_TIMEOUT_S):
        raise BenchmarkError(f"--dist_timeout {args.dist_timeout}: expected a positive number of seconds, at most "
                             f"{MAX_DIST_TIMEOUT_S:.0f} (a week)")
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


def _resolved(path: Path, what: str) -> Path:
    """path.resolve(), a symlink loop named as such (exit 2) instead of a RuntimeError."""
    from .guard.safe_io import check_path, shown

    check_path(path, what)
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:
        raise BenchmarkError(f"{what} {shown(path)}: cannot resolve it ({one_line(exc)}); fix the links or give "
                             "the real path") from None


def _reference_compiler(config: Any, vendor: Any, vendor_name: str) -> Any:
    """The reference's `compiler` (configurations.yaml: inductor) as this vendor's compiling toolkit, whatever
    its name (benchmarks.toolkits.reference_compiler); config_sources says so when it was renamed."""
    import dataclasses

    from .registry import vendor_call
    from .harness.toolkits import reference_compiler

    factories = vendor_call(vendor_name, "its toolkits()", "toolkits()", vendor.toolkits)
    name = reference_compiler(factories, config.run.compiler)
    if name == config.run.compiler:
        return config
    sources = {**config.sources, "compiler": f"{scenarios.SOURCE} (vendor {vendor_name}'s compiling toolkit for "
                                             f"the reference's {config.run.compiler!r})"}
    return dataclasses.replace(config, run=dataclasses.replace(config.run, compiler=name), sources=sources)


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


def _shared_output_dir(args: argparse.Namespace, stamp: str, ctx: distributed.Dist) -> tuple[Path, str | None]:
    """The run's folder: rank 0 makes (and locks) it, every other rank gets its path (and makes it on its own
    node for run.log.rank<N>, when the nodes share no file system)."""
    if not ctx.active:
        return _output_dir(args, stamp)
    if ctx.is_main:
        try:
            folder, note = _output_dir(args, stamp)
        except BenchmarkError as exc:
            distributed.share(ctx, "output_dir", {"error": one_line(exc)})
            raise
        distributed.share(ctx, "output_dir", {"path": str(folder)})
        return folder, note
    got = distributed.share(ctx, "output_dir")
    if "error" in got:
        raise distributed.RankUsageError(f"rank 0: {got['error']}")
    return _prepare_output(Path(got["path"])), None


def _end_status(exc: BaseException, ctx: distributed.Dist) -> tuple[str, str, int]:
    """How this rank ended, for the others: (status, error, exit code)."""
    text = f"{type(exc).__name__}: {_one_line(exc, 500)}"
    if isinstance(exc, distributed.PeerFailed) or (isinstance(exc, KeyboardInterrupt) and ctx.stopped_by):
        return "stopped", ctx.stopped_by or one_line(exc, 500), EXIT_RUN_FAILED
    if isinstance(exc, BenchmarkError):
        return "usage", f"error: {_one_line(exc, 500)}", EXIT_USAGE
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", text, EXIT_INTERRUPTED
    return "failed", text, EXIT_RUN_FAILED


def main(argv: list[str] | None = None) -> int:
    from .guard.locks import release_all

    argv = sys.argv[1:] if argv is None else argv
    global _DIST
    _DIST = distributed.Dist()
    # SIGINT/SIGTERM are an interruption from the first line on (config loading, smoke-data generation), so
    # that every `finally` runs: no half-made cache folder or stale lock is left behind (benchmarks.signals).
    previous = signals.start()
    try:
        return _main(argv)
    finally:
        signals.settle()  # the run's end is decided: the clean-up below is never cut by a signal
        _restore_library_logs()
        release_all()
        distributed.teardown(_DIST)
        # A data-parallel rank that ended is done: the launcher's SIGTERM to the others must not cut its exit
        # code (the watchdog may have stopped it before the launcher's signal came).
        signals.end(previous)
        if _DIST.active and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN and not signals.active():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _interrupted_exit(exc: BaseException) -> int:
    signals.caught()
    signum = signals.requested()
    text = _one_line(exc) if isinstance(exc, KeyboardInterrupt) else f"signal {signum}; " + _one_line(exc)
    _say(f"interrupted: {text or 'keyboard interrupt'}")
    return EXIT_RUN_FAILED if _DIST.stopped_by else EXIT_INTERRUPTED


def _say(line: str) -> None:
    """The run's one line on stderr; a rank other than 0 of a running process group only logs it (rank 0
    names the failing rank for the run)."""
    if _DIST.active and not _DIST.is_main and _DIST.store is not None:
        _log_file_only(logging.ERROR, "%s", line)
    else:
        print(line, file=sys.stderr)


def _main(argv: list[str]) -> int:
    try:
        signals.check()  # a signal that came while the process started
        return run(argv)
    except BenchmarkError as exc:
        if _stop_requested():  # e.g. a library's error type raised from an interrupted import
            return _interrupted_exit(exc)
        _say(f"error: {_one_line(exc)}")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        return _interrupted_exit(exc)
    except (distributed.RankFailed, distributed.PeerFailed) as exc:
        _say(f"run failed: {_one_line(exc)}")
        return EXIT_RUN_FAILED
    except Exception as exc:  # a crash of the run itself: one line here, the traceback in run.log
        if _stop_requested():
            return _interrupted_exit(exc)
        logged = any(isinstance(h, logging.FileHandler) for h in log.handlers)
        where = "traceback in run.log" if logged else "LLAMA_BENCH_TRACEBACK=1 prints the traceback"
        rank = f"rank {_DIST.rank}: " if _DIST.active else ""
        _say(f"run failed: {rank}{type(exc).__name__}: {_one_line(exc)} ({where})")
        if os.environ.get("LLAMA_BENCH_TRACEBACK"):
            traceback.print_exc()
        else:
            _log_file_only(logging.ERROR, "traceback:\n%s", traceback.format_exc())
        return EXIT_RUN_FAILED
