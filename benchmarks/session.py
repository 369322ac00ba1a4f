"""One benchmark run end to end, as the CLI starts it: the inputs checked before anything is created, the run's
folder and log, this rank's run (benchmarks.harness.run), every rank's record gathered and aggregated
(benchmarks.parallel), the summary (benchmarks.measure.summary) and the writer (benchmarks.reporting.writer), then
the gate, the history and the end-of-run table (benchmarks.reporting.outcome). A failed or interrupted run's end
is recorded here too. The CLI (benchmarks.cli) turns what this raises into one line and an exit code.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import secrets
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from .config import scenarios
from .errors import EXIT_INTERRUPTED, EXIT_RUN_FAILED, EXIT_USAGE, BenchmarkError, one_line
from .guard import signals
from .parallel import distributed
from .reporting import runlog

REPO_ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks")


def run(args: argparse.Namespace, argv: list[str], ctx: distributed.Dist) -> int:
    """The run the arguments ask for, on this rank; the exit code (0, or 1 on a regression)."""
    # Imported only now: --help and the subcommands must start without torch/transformers (seconds each). A
    # signal during these imports is held until they end (benchmarks.guard.signals), so it cannot be swallowed or
    # leave a half-imported module.
    with signals.deferred():
        import torch  # noqa: F401  (every run needs both; imported here, under the deferral)
        import transformers  # noqa: F401

        from .config import check_optimizations, load_config
        from .contracts import hooks
        from .harness.host_memory import check_host_memory
        from .harness.run import Place, Run, RunRequest
        from .harness.sink import NullSink
        from .harness.threads import choose_threads
        from .measure import provenance
        from .measure.summary import Inputs, summarize
        from .parallel.aggregate import aggregate
        from .registry import case_config_root, default_vendor, get_case, get_vendor, vendor_call, vendor_home
        from .reporting.outcome import after_run, check_gate_inputs
        from .reporting.progress import make_progress
        from .reporting.writer import RunWriter, new_result
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
    toolkit = _toolkit(vendor, config)  # resolved once; an unknown toolkit fails before any output
    if args.smoke:
        data_dir = case.smoke_data()
    else:
        data_dir = _resolved(args.data_dir, "--data_dir")
        case.check_data(config.case, data_dir, f"python run_benchmark.py --case {args.case} --smoke")
    parameters = hooks.model_parameters_of(case, config.case, data_dir, config.run.synthetic_weights)
    device = vendor.device()
    memory_line = check_host_memory(parameters, config.run.effective_precision) \
        if device.type == "cpu" and parameters else None  # the model will live in host RAM
    # A bad baseline or history file fails here (exit 2), before hours of running.
    baseline = check_gate_inputs(args.baseline, args.history, {
        "case": args.case, "precision": config.run.effective_precision, "tf32": config.run.tf32,
        "toolkit": config.run.compiler, "vendor": vendor_name, "device": vendor.device_name(),
        "smoke": args.smoke, "limit": args.limit, "scenario": args.scenario, "world_size": ctx.world_size},
        args.allow_mismatch)
    distributed.setup(ctx, device)  # no-op in one process
    output_dir, note = _shared_output_dir(args, _dt.datetime.now().strftime("%Y%m%d-%H%M%S"), ctx)
    runlog.setup(output_dir, args.quiet, ctx.rank)
    runlog.library_logs_to_run_log(args.quiet or not ctx.is_main)
    if ctx.active:
        log.info("rank %d of %d (local rank %d) on %s, device %s; process group %s; hosts %s", ctx.rank,
                 ctx.world_size, ctx.local_rank, ctx.host, device, ctx.backend, ", ".join(ctx.hosts))
    log.info("case %s, vendor %s (%s), output %s", args.case, vendor_name, vendor.device_name(), output_dir)
    for line in (note, choose_threads(args.smoke, device), memory_line):
        if line:
            log.info("%s", line if line is not note else f"note: {note}")
    writer = None
    if ctx.is_main:
        # In every streamed row and in result.json: rows of another run in the same file are told apart.
        run_id = f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}-{secrets.token_hex(3)}"
        writer = RunWriter(output_dir, new_result(
            run_id=run_id, case=case, vendor=vendor, config=config, scenario_load_path=scenarios.load_path(args.scenario),
            limit=args.limit, smoke=args.smoke, command_line=["run_benchmark.py", *argv], world_size=ctx.world_size,
            distributed=ctx.describe() if ctx.active else None))
        writer.started()
    run_ = Run(RunRequest(
        case=case, vendor=vendor, config=config, toolkit=toolkit, data_dir=data_dir, limit=args.limit,
        repeat=args.repeat, progress=make_progress(args.quiet or not ctx.is_main, config.run.log_freq),
        shard=ctx.shard, barrier=lambda what: distributed.barrier(ctx, what),
        place=Place(ctx.rank, ctx.world_size, ctx.local_rank, ctx.host), sink=_sink(ctx, writer, NullSink()),
        config_sha256=provenance.config_sha256(config.as_dict())))
    try:
        try:
            record = run_.execute()
            signals.check()  # a stop request that library code swallowed: interrupted, not completed
            records = distributed.gather_records(ctx, record)
            if writer is not None:  # the system's record, its summary and the run's files: then it is completed
                system = aggregate(records)
                writer.finish(system, summarize(system, Inputs(case=case, config=config, vendor_name=vendor_name,
                                                               smoke=args.smoke, limit=args.limit,
                                                               repeat=args.repeat)),
                              system.workload.samples)
        except SystemExit as exc:  # a case's or vendor's code called sys.exit: a failed run, never exit 0
            raise RuntimeError(f"sys.exit({exc.code!r}) called inside the run (by a case's or vendor's code)") from exc
    except (KeyboardInterrupt, Exception) as exc:
        if interrupted(exc, ctx):
            signals.caught()  # a second signal must not cut the recording of this one
        ctx.watching = False  # from here on this rank records its end; the watchdog must not cut that short
        exc = distributed.attribute(ctx, exc)  # rank 0: a failed or vanished rank becomes the run's error
        distributed.report_end(ctx, *end_status(exc, ctx))
        if writer is not None:
            _record_end(writer, exc, ctx, args.history)
        raise exc
    ctx.watching = False
    distributed.report_end(ctx, "completed")
    if writer is None:
        signals.settle()
        return 0  # rank 0 has this rank's record and writes the result
    # The run is complete and recorded: the gate, the history row and the summary follow. Whatever stops them
    # (a signal, a --history locked too long) leaves the run's files and its status completed as they are.
    try:
        code = after_run(writer, baseline, args.history, args.history_wait_s)  # exit 0 or 1
    except (KeyboardInterrupt, BenchmarkError) as exc:
        if isinstance(exc, KeyboardInterrupt):
            signals.caught()
        exc.add_note(f"the run had completed: its files and status completed are kept in {output_dir}"
                     + ("" if args.history is None else "; its --history row may be missing"))
        raise
    signals.settle()  # a signal from now on (the scheduler's, at exit) no longer changes the exit code
    return code


# -------------------------------------------------------------------------------------- before the run


def _sink(ctx: distributed.Dist, writer: Any, nothing: Any) -> Any:
    """Where this rank reports: the writer (one process), rank 0's gathering writer, or rank 0 (another rank)."""
    if not ctx.active:
        return writer or nothing
    return distributed.GatheringSink(ctx, writer) if writer is not None else distributed.PostingSink(ctx)


def _toolkit(vendor: Any, config: Any) -> Any:
    """The configured toolkit, one instance for the run; in the reference scenario with the reference's semantics
    (lazy compile and its warm-up rule inside the pass: benchmarks.harness.toolkits.reference_toolkit), which a
    toolkit without them refuses here."""
    from .harness.toolkits import reference_toolkit
    from .registry import get_toolkit

    toolkit = get_toolkit(vendor, config.run.compiler, config.vendor)
    if config.scenario != scenarios.REFERENCE:
        return toolkit
    return reference_toolkit(type(toolkit))(config.vendor, vendor)


def _reference_compiler(config: Any, vendor: Any, vendor_name: str) -> Any:
    """The reference's `compiler` (configurations.yaml: inductor) as this vendor's compiling toolkit, whatever
    its name (benchmarks.toolkits.reference_compiler); config_sources says so when it was renamed."""
    import dataclasses

    from .harness.toolkits import reference_compiler
    from .registry import vendor_call

    factories = vendor_call(vendor_name, "its toolkits()", "toolkits()", vendor.toolkits)
    name = reference_compiler(factories, config.run.compiler)
    if name == config.run.compiler:
        return config
    sources = {**config.sources, "compiler": f"{scenarios.SOURCE} (vendor {vendor_name}'s compiling toolkit for "
                                             f"the reference's {config.run.compiler!r})"}
    return dataclasses.replace(config, run=dataclasses.replace(config.run, compiler=name), sources=sources)


def _resolved(path: Path, what: str) -> Path:
    """path.resolve(), a symlink loop named as such (exit 2) instead of a RuntimeError."""
    from .guard.safe_io import check_path, shown

    check_path(path, what)
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:
        raise BenchmarkError(f"{what} {shown(path)}: cannot resolve it ({one_line(exc)}); fix the links or give "
                             "the real path") from None


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


# ----------------------------------------------------------------------------------------- the end


def stop_requested(ctx: distributed.Dist) -> bool:
    """A SIGINT/SIGTERM asked this process to stop (not the data-parallel watchdog stopping a rank because a
    peer failed: that run failed, and distributed.attribute names the rank)."""
    return signals.requested() is not None and not ctx.stopped_by


def interrupted(exc: BaseException, ctx: distributed.Dist) -> bool:
    """An interruption: a KeyboardInterrupt, or any failure after a stop was requested (a signal that cut an
    import deep inside a library turns into that library's error, not into ours)."""
    if isinstance(exc, (distributed.RankFailed, distributed.PeerFailed)):
        return False
    return isinstance(exc, KeyboardInterrupt) or stop_requested(ctx)


def one_line_with_notes(exc: BaseException, limit: int = 1000) -> str:
    """The exception's message on one line, with the notes the run adds (where the partial result is)."""
    text = one_line(exc, limit)
    notes = [" ".join(str(n).split()) for n in getattr(exc, "__notes__", ())]
    return "; ".join([text, *notes]) if text else "; ".join(notes)


def end_status(exc: BaseException, ctx: distributed.Dist) -> tuple[str, str, int]:
    """How this rank ended, for the others: (status, error, exit code)."""
    text = f"{type(exc).__name__}: {one_line_with_notes(exc, 500)}"
    if isinstance(exc, distributed.PeerFailed) or (isinstance(exc, KeyboardInterrupt) and ctx.stopped_by):
        return "stopped", ctx.stopped_by or one_line(exc, 500), EXIT_RUN_FAILED
    if isinstance(exc, BenchmarkError):
        return "usage", f"error: {one_line_with_notes(exc, 500)}", EXIT_USAGE
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", text, EXIT_INTERRUPTED
    return "failed", text, EXIT_RUN_FAILED


def _record_end(writer: Any, exc: BaseException, ctx: distributed.Dist, history_path: Path | None) -> None:
    """A failed or interrupted run in result.json (status, error, what it finished) and, with --history, as a
    history row too; each adds a note to the run's error line saying where it is (or that it could not be)."""
    status = "interrupted" if interrupted(exc, ctx) else "failed"
    error = f"{type(exc).__name__}: {one_line(exc, 1000)}"
    ranks_at_end = distributed.end_states(ctx) if ctx.active else None
    try:
        where = _shielded(lambda: writer.end(status, error, ranks_at_end))
    except OSError as err:
        exc.add_note(str(err))
        return
    runlog.file_only(logging.ERROR, "run %s: %s", status, error)
    exc.add_note(f"status {status} recorded in {where}")
    if history_path is not None:
        _history_row_of_end(history_path, writer, exc)


def _history_row_of_end(history_path: Path, writer: Any, exc: BaseException) -> None:
    """A failed or interrupted night is a --history row too (status, error line, run folder), so a report's
    latest night is the one that really ran last. A row that cannot be appended is a note, never the error."""
    from .reporting import history

    def append() -> None:
        data, folder = writer.result.as_dict(), str(writer.output_dir)
        if any(r.get("result_dir") == folder and r.get("start_time") == data.get("start_time")
               for r in _history_rows(history_path)):
            return  # the completed row went in before the interruption; the report shows the run's folder
        history.append_history(history_path, data, writer.output_dir)
        exc.add_note(f"{writer.result.status} night recorded in {history_path}")

    try:
        _shielded(append)
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - never instead of the run's own error
        exc.add_note(f"history row NOT appended to {history_path} ({type(err).__name__}: {one_line(err, 300)})")


def _history_rows(path: Path) -> list[dict[str, Any]]:
    from .reporting import history

    try:
        return history.read_history(path) if path.is_file() else []
    except BenchmarkError:
        return []


def _shielded(write: Callable[[], Any]) -> Any:
    """`write()` with SIGINT/SIGTERM held off, so a second signal cannot lose what it records."""
    if threading.current_thread() is not threading.main_thread():  # embedded: no handlers to hold
        return write()
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return write()
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
