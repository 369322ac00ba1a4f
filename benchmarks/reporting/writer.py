"""The one writer of a run's folder: result.json from the header on, its phase updates, the predictions and their
stream, and at the end result.md, result.csv, the charts and telemetry.csv; a failed or interrupted run's status
too. Every write goes through benchmarks.guard.safe_write (atomically, never through a symlink).

The harness reports to it through `benchmarks.harness.sink.Sink` (phases, passes, the prediction stream); the CLI
gives it the system's summary at the end (`finish`) or the run's end (`end`). Rank 0 of a data-parallel run
writes; the other ranks have no writer (harness.sink.NullSink). The run folder's files: FILES.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import platform
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import BenchmarkError
from ..guard import safe_io, safe_write
from ..guard.safe_io import COMPLETED_ONLY, RUN_FILES, STREAM_FILE
from ..measure import metrics, provenance
from ..measure.records import PassRecord, RankRecord
from . import atomic  # by module, so a test can make its writes fail
from . import history, plots, timeline as _timeline
from .markdown import markdown
from .record import UNSET, RunResult

log = logging.getLogger("benchmarks")
# What the summary lists (the stream is gone once a run completes).
RESULT_FILES = tuple(name for name in RUN_FILES if name != STREAM_FILE)


def new_result(*, run_id: str, case: Any, vendor: Any, config: Any, scenario_load_path: str, limit: int | None,
               smoke: bool, command_line: Sequence[str], world_size: int,
               distributed: Mapping[str, Any] | None) -> RunResult:
    """The header of result.json: what is known before the run starts (environment, config and its hash)."""
    import torch
    import transformers

    cfg = config.run
    env = {"device_name": vendor.device_name(), "device_type": vendor.device().type, "device_count": None,
           "driver": None, "cuda": None, **dict(vendor.environment()),
           "torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version(), "os": platform.platform(), **provenance.git_state(),
           "command_line": list(command_line)}
    merged = config.as_dict()
    result = RunResult(
        run_id=run_id, case=case.name, scenario=config.scenario, load_path=scenario_load_path, vendor=vendor.name,
        toolkit=cfg.compiler, precision=cfg.effective_precision, tf32=cfg.tf32, batch_size=cfg.batch_size,
        synthetic_weights=cfg.synthetic_weights, limit=limit, smoke=smoke,
        start_time=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), environment=env,
        config=merged, config_sources=dict(config.sources),
        # sha256 of the merged config's canonical JSON: equal hashes + equal fingerprint = same measurement
        config_sha256=provenance.config_sha256(merged), world_size=world_size)
    if distributed is not None:
        result.distributed = dict(distributed)
    return result


class RunWriter:
    """Owns result.json and the other files of one run folder (see the module's docstring)."""

    def __init__(self, output_dir: Path, result: RunResult) -> None:
        self.output_dir, self.result = output_dir, result
        self.samples: list[Any] = []  # this rank's questions while the run goes on; all of them at `finish`
        self.passes: dict[str, PassRecord] = {}
        self.phases_s: dict[str, float] = {}

    # ------------------------------------------------------------------------ the Sink the harness calls

    def started(self) -> None:
        _save_result(self.output_dir, self.result)

    def workload(self, samples: Sequence[Any], shard: tuple[int, int], fingerprint: Mapping[str, str],
                 counts: Mapping[str, Any]) -> None:
        self.samples = list(samples[shard[0]:shard[1]])
        self.result.fingerprint = dict(fingerprint)
        self.result.counts = dict(counts)

    def stream(self, pass_name: str) -> Callable[[int, list[int]], None]:
        return _prediction_stream(self.output_dir, pass_name, self.samples, self.result.run_id)

    def pass_done(self, rec: PassRecord) -> None:
        self.passes[rec.name] = rec
        _write_predictions(self.output_dir, self.samples, self.passes.get("validation"),
                                self.passes.get("inference"))
        if rec.name == "inference":
            _drop_stream(self.output_dir)  # predictions.jsonl now holds both passes

    def times(self, phases_s: Mapping[str, float]) -> None:
        self.phases_s = dict(phases_s)

    def phase_done(self, name: str, phases_s: Mapping[str, float]) -> None:
        self.phases_s = dict(phases_s)
        self.result.phases_done.append(name)
        self.result.phases_s = dict(phases_s)
        self.result.metrics_partial = metrics.partial((self.passes.get("validation"), self.passes.get("inference")),
                                                      [s.label for s in self.samples])
        _save_result(self.output_dir, self.result)

    # ------------------------------------------------------------------------------------ the end of it

    def finish(self, system: RankRecord, fields: Mapping[str, Any], samples: Sequence[Any]) -> RunResult:
        """The completed run: the summary's fields into result.json, predictions.jsonl of every question, result.md,
        result.csv, the charts and telemetry.csv (rank 0's timeline)."""
        r = self.result
        for name, value in fields.items():
            if name == "distributed" and r.distributed is not UNSET:
                r.distributed = {**r.distributed, **value}
            else:
                setattr(r, name, value)
        self.samples, self.passes = list(samples), {p.name: p for p in system.passes()}
        _write_predictions(self.output_dir, self.samples, system.validation, system.inference)
        _drop_stream(self.output_dir)
        # run.log only: the summary prints the same line on stdout, also with --quiet (reporting.summary)
        log.info("Finish Info: %r", r.reference_record, extra={"file_only": True})
        _write_run_files(self.output_dir, r, system.timeline)
        return r

    def save_all(self) -> None:
        """result.json, result.md and result.csv again (after the gate)."""
        _save_all(self.output_dir, self.result)

    def end(self, status: str, error: str, ranks_at_end: Mapping[str, Any] | None = None) -> str:
        """A failed or interrupted run: its status and error into result.json with what it finished; the files only
        a completed run has are removed (beside this result.json they would contradict it). Returns where the
        status is recorded; raises OSError when it cannot be written."""
        r = self.result
        r.status, r.error = status, error
        r.phases_s = dict(self.phases_s)
        r.metrics_partial = metrics.partial((self.passes.get("validation"), self.passes.get("inference")),
                                            [s.label for s in self.samples])
        if ranks_at_end is not None and r.distributed is not UNSET:
            r.distributed["ranks_at_end"] = dict(ranks_at_end)
        for name in COMPLETED_ONLY:
            try:
                safe_write.remove(self.output_dir / name)
            except (OSError, BenchmarkError):  # what cannot be removed stays; the status below says the truth
                pass
        where = self.output_dir / "result.json"
        try:
            _save_result(self.output_dir, r)
        except OSError as first:  # disk full: no room for a second copy; overwrite the file's own blocks
            try:
                safe_io.rewrite_in_place(where, r.as_dict())
            except OSError as second:
                raise OSError(f"status {status} NOT recorded: cannot write {where} "
                              f"({first.strerror}; {second.strerror})") from None
        return str(where)


# ------------------------------------------------------------------------------------ the files


def _record_files(output_dir: Path, result: RunResult, *writing: str) -> None:
    """result.json's `files`: the run's files in its folder (those there now and those about to be written), so
    that --overwrite later removes exactly these and nothing of the user's (benchmarks.guard.safe_io)."""
    result.files = sorted({"result.json", "run.log", *safe_io.files_present(output_dir), *writing})


def _save_result(output_dir: Path, result: RunResult) -> None:
    """result.json alone: the partial result after every phase. While the run goes on, `files` also names what
    it is about to write (the predictions and their stream), so a kill in the middle leaves them recorded."""
    _record_files(output_dir, result, *(("predictions.jsonl", STREAM_FILE) if result.status == "running" else ()))
    atomic.write_json(output_dir / "result.json", result.as_dict())


def _save_all(output_dir: Path, result: RunResult) -> None:
    """result.json, result.md and result.csv (the files the gate rewrites)."""
    _record_files(output_dir, result, "result.md", "result.csv")
    data = result.as_dict()
    atomic.write_json(output_dir / "result.json", data)
    atomic.atomic_write_text(output_dir / "result.md", markdown(data))
    history.write_result_csv(output_dir / "result.csv", data)


def _write_run_files(output_dir: Path, result: RunResult, timeline: Any = None) -> None:
    """save_all, then throughput_vs_length.png, and with the run's `timeline` (benchmarks.measure.run_telemetry)
    timeline.png and telemetry.csv (charts are skipped with a warning if they cannot be drawn)."""
    _save_all(output_dir, result)
    data = result.throughput_by_length
    title = f"{result.case}: {result.environment.get('device_name', '?')}, {result.precision}, {result.toolkit}" \
        + "".join(f", {f}" for f in plots.workload_flags([result.as_dict()]))
    if isinstance(data, dict) and data.get("tokens_per_s"):
        plots.plot_throughput_by_length(output_dir / "throughput_vs_length.png", data, title)
    if timeline is not None:
        scenario = getattr(result, "scenario", None) or ("optimized" if result.optimizations else "plain")
        _timeline.write_telemetry_csv(output_dir / "telemetry.csv", timeline)
        _timeline.plot_timeline(output_dir / "timeline.png", timeline, f"{title}; scenario {scenario}",
                                result.energy if isinstance(result.energy, dict) else None)
    before = result.files
    _record_files(output_dir, result)
    if result.files != before:  # the charts and telemetry.csv, once they exist
        atomic.write_json(output_dir / "result.json", result.as_dict())


def _write_predictions(output_dir: Path, samples: Sequence[Any], val: Any, infer: Any) -> None:
    """predictions.jsonl: one row per question with both passes' predictions (null for a pass not run)."""
    rows = []
    for i, s in enumerate(samples):
        rows.append({"subject": s.subject, "index": s.index, "n_tokens": len(s.input_ids), "label": s.label,
                     "pred_val": val.predictions[i] if val else None,
                     "pred_infer": infer.predictions[i] if infer else None,
                     "choice_val": val.choice_predictions[i] if val and val.choice_predictions else None,
                     "choice_infer": infer.choice_predictions[i] if infer and infer.choice_predictions else None})
    atomic.write_jsonl(output_dir / "predictions.jsonl", rows)


def _prediction_stream(output_dir: Path, pass_name: str, samples: Sequence[Any],
                      run_id: str) -> Callable[[int, list[int]], None]:
    """A pass's `stream` callback: appends each chunk of predictions to predictions.partial.jsonl, whole (a
    full disk never leaves half a line), every row carrying the run's id."""
    path = output_dir / STREAM_FILE

    def write(first: int, preds: list[int]) -> None:
        rows = [json.dumps({"run_id": run_id, "pass": pass_name, "subject": samples[k].subject,
                            "index": samples[k].index, "pred": pred}) + "\n"
                for k, pred in enumerate(preds, start=first)]
        try:
            safe_write.append_lines(path, "".join(rows), "prediction stream")
        except OSError as exc:
            raise OSError(exc.errno, f"{exc.strerror}: cannot append to {path}") from exc

    return write


def _drop_stream(output_dir: Path) -> None:
    safe_write.remove(output_dir / STREAM_FILE)
