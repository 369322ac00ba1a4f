"""The files of a run folder, each written atomically:

run folder:  result.json  result.md  result.csv  predictions.jsonl  throughput_vs_length.png  run.log
             predictions.partial.jsonl while a pass runs (each chunk of predictions as it is produced, so an
             interrupted pass keeps what it answered; removed once predictions.jsonl holds both passes)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from . import history, plots
from .atomic import atomic_write_text, write_json, write_jsonl
from .markdown import markdown
from .record import RunResult

RESULT_FILES = ("result.json", "result.md", "result.csv", "predictions.jsonl", "throughput_vs_length.png", "run.log")
STREAM_FILE = "predictions.partial.jsonl"


def save_result(output_dir: Path, result: RunResult) -> None:
    """result.json alone: the partial result after every phase."""
    write_json(output_dir / "result.json", result.as_dict())


def save_all(output_dir: Path, result: RunResult) -> None:
    """result.json, result.md and result.csv (the files the gate rewrites)."""
    data = result.as_dict()
    write_json(output_dir / "result.json", data)
    atomic_write_text(output_dir / "result.md", markdown(data))
    history.write_result_csv(output_dir / "result.csv", data)


def write_run_files(output_dir: Path, result: RunResult) -> None:
    """save_all, then throughput_vs_length.png (skipped with a warning if it cannot be drawn)."""
    save_all(output_dir, result)
    data = result.throughput_by_length
    if isinstance(data, dict) and data.get("tokens_per_s"):
        title = f"{result.case}: {result.environment.get('device_name', '?')}, {result.precision}, {result.toolkit}"
        plots.plot_throughput_by_length(output_dir / "throughput_vs_length.png", data, title)


def write_predictions(output_dir: Path, samples: Sequence[Any], val: Any, infer: Any) -> None:
    """predictions.jsonl: one row per question with both passes' predictions (null for a pass not run)."""
    rows = []
    for i, s in enumerate(samples):
        rows.append({"subject": s.subject, "index": s.index, "n_tokens": len(s.input_ids), "label": s.label,
                     "pred_val": val.predictions[i] if val else None,
                     "pred_infer": infer.predictions[i] if infer else None,
                     "choice_val": val.choice_predictions[i] if val and val.choice_predictions else None,
                     "choice_infer": infer.choice_predictions[i] if infer and infer.choice_predictions else None})
    write_jsonl(output_dir / "predictions.jsonl", rows)


def prediction_stream(output_dir: Path, pass_name: str, samples: Sequence[Any]) -> Callable[[int, list[int]], None]:
    """A pass's `stream` callback: appends each chunk of predictions to predictions.partial.jsonl."""
    path = output_dir / STREAM_FILE

    def write(first: int, preds: list[int]) -> None:
        with path.open("a", encoding="utf-8") as f:
            for k, pred in enumerate(preds, start=first):
                s = samples[k]
                f.write(json.dumps({"pass": pass_name, "subject": s.subject, "index": s.index, "pred": pred}) + "\n")
            f.flush()

    return write


def drop_stream(output_dir: Path) -> None:
    (output_dir / STREAM_FILE).unlink(missing_ok=True)
