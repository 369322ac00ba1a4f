"""The files of a run folder, each written atomically:

run folder:  result.json  result.md  result.csv  predictions.jsonl  throughput_vs_length.png  timeline.png
             telemetry.csv (with vendor telemetry)  run.log
             predictions.partial.jsonl while a pass runs (each chunk of predictions as it is produced, so an
             interrupted pass keeps what it answered; removed once predictions.jsonl holds both passes)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from ..guard import safe_io, safe_write
from . import history, plots, timeline as _timeline
from . import atomic  # by module, so a test can make its writes fail
from .markdown import markdown
from .record import RunResult

RESULT_FILES = ("result.json", "result.md", "result.csv", "predictions.jsonl", "throughput_vs_length.png", "timeline.png",
                "telemetry.csv", "run.log")
STREAM_FILE = "predictions.partial.jsonl"


def _record_files(output_dir: Path, result: RunResult, *writing: str) -> None:
    """result.json's `files`: the run's files in its folder (those there now and those about to be written), so
    that --overwrite later removes exactly these and nothing of the user's (benchmarks.safe_io)."""
    result.files = sorted({"result.json", "run.log", *safe_io.files_present(output_dir), *writing})


def save_result(output_dir: Path, result: RunResult) -> None:
    """result.json alone: the partial result after every phase. While the run goes on, `files` also names what
    it is about to write (the predictions and their stream), so a kill in the middle leaves them recorded."""
    _record_files(output_dir, result, *(("predictions.jsonl", STREAM_FILE) if result.status == "running" else ()))
    atomic.write_json(output_dir / "result.json", result.as_dict())


def save_all(output_dir: Path, result: RunResult) -> None:
    """result.json, result.md and result.csv (the files the gate rewrites)."""
    _record_files(output_dir, result, "result.md", "result.csv")
    data = result.as_dict()
    atomic.write_json(output_dir / "result.json", data)
    atomic.atomic_write_text(output_dir / "result.md", markdown(data))
    history.write_result_csv(output_dir / "result.csv", data)


def write_run_files(output_dir: Path, result: RunResult, timeline: Any = None) -> None:
    """save_all, then throughput_vs_length.png, and with the run's `timeline` (benchmarks.run_telemetry)
    timeline.png and telemetry.csv (charts are skipped with a warning if they cannot be drawn)."""
    save_all(output_dir, result)
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


def write_predictions(output_dir: Path, samples: Sequence[Any], val: Any, infer: Any) -> None:
    """predictions.jsonl: one row per question with both passes' predictions (null for a pass not run)."""
    rows = []
    for i, s in enumerate(samples):
        rows.append({"subject": s.subject, "index": s.index, "n_tokens": len(s.input_ids), "label": s.label,
                     "pred_val": val.predictions[i] if val else None,
                     "pred_infer": infer.predictions[i] if infer else None,
                     "choice_val": val.choice_predictions[i] if val and val.choice_predictions else None,
                     "choice_infer": infer.choice_predictions[i] if infer and infer.choice_predictions else None})
    atomic.write_jsonl(output_dir / "predictions.jsonl", rows)


def prediction_stream(output_dir: Path, pass_name: str, samples: Sequence[Any],
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


def drop_stream(output_dir: Path) -> None:
    safe_write.remove(output_dir / STREAM_FILE)
