"""PNG charts (matplotlib, Agg backend): core tokens/s against prompt length, and a history over time.

matplotlib is imported lazily: a run without it logs a warning and skips its chart; the `plot` subcommand
fails with a one-line error instead.
"""
from __future__ import annotations

import datetime as _dt
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import BenchmarkError, printable

log = logging.getLogger("benchmarks")

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def run_chart(path: Path, draw: Callable[[Any], Any]) -> Path | None:
    """A chart of a run: `draw(plt)` returns the figure, saved to `path`. Never fails the run that measured it:
    without matplotlib, or on any plotting problem, a warning and None."""
    try:
        plt = _pyplot()
    except ImportError:
        log.warning("matplotlib is not installed: %s not written (pip install matplotlib)", path.name)
        return None
    try:
        fig = draw(plt)
        _save(fig, path)
        plt.close(fig)
        return path
    except Exception as exc:  # noqa: BLE001 - a chart must never fail the run that measured it
        log.warning("could not write %s: %s: %s", path.name, type(exc).__name__, exc)
        return None


def plot_throughput_by_length(path: Path, data: Mapping[str, Any], title: str) -> Path | None:
    """Core tokens/s per prompt-length bin, one line per pass (see run_chart for failures)."""

    def draw(plt: Any) -> Any:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        centers = [lo + data["bin_tokens"] / 2 for lo in data["bin_start"]]
        for name, rates in data["tokens_per_s"].items():
            pts = [(x, y) for x, y in zip(centers, rates) if y is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=name)
        ax.set_xlabel(f"prompt length, tokens ({data['bin_tokens']}-token bins)")
        ax.set_ylabel("core tokens/s")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        _finish_axes(ax)
        fig.tight_layout()
        return fig

    return run_chart(path, draw)


def _finish_axes(ax: Any) -> None:
    """y from 0 (a cut axis makes a 2% change look like a cliff), a legend, or "no data" on an empty chart."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
        ax.set_ylim(bottom=0)
    else:
        ax.set_ylim(0, 1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=16, color="0.4")


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def workload_flags(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What makes these runs other than the full case: smoke, synthetic weights, --limit (for chart titles)."""
    flags = []
    if any(_flag(r.get("smoke")) for r in rows):
        flags.append("smoke")
    if any(_flag(r.get("synthetic_weights")) for r in rows):
        flags.append("synthetic weights")
    limits = sorted({int(float(r["limit"])) for r in rows if r.get("limit") not in (None, "")})
    if limits:
        flags.append("--limit " + "/".join(map(str, limits)))
    return flags


def workload_series(r: Mapping[str, Any]) -> str:
    """The series a history row belongs to: runs of one comparable workload (device, precision, scenario,
    smoke, --limit, synthetic weights); a smoke run is never joined to a full run."""
    limit = r.get("limit")
    parts = [str(r.get("device_name") or "?"), str(r.get("precision") or "?"), str(r.get("scenario") or "optimized")]
    if _flag(r.get("smoke")):
        parts.append("smoke")
    if limit not in (None, ""):
        parts.append(f"limit {int(float(limit))}")
    if _flag(r.get("synthetic_weights")):
        parts.append("synthetic")
    return " ".join(parts)


def _save(fig: Any, path: Path) -> None:
    """The PNG drawn in memory, then written like every file (benchmarks.guard.safe_write: atomic, no symlink)."""
    import io

    from .atomic import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())


def _when(value: str) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


# (file name, title, y label, [(column, legend suffix)], scale)
HISTORY_CHARTS = (
    ("throughput.png", "core throughput", "tokens/s", [("p_infer_core", "infer"), ("p_val_core", "val")], 1.0),
    ("mfu.png", "MFU", "MFU, %", [("mfu", "")], 100.0),
    ("accuracy.png", "accuracy", "accuracy, %", [("infer_acc", "infer"), ("val_acc", "val")], 100.0),
)


# How a night that did not complete is drawn: a mark on the x axis at its start time, in every chart.
ENDED_STYLE = {"failed": {"marker": "x", "color": "tab:red"}, "interrupted": {"marker": "|", "color": "0.35"}}


def plot_history(rows: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Path]:
    """One PNG per chart of HISTORY_CHARTS; one line per comparable workload (`workload_series`); failed and
    interrupted nights as marks on the x axis (ENDED_STYLE), so a gap in a line is never silent. matplotlib's
    own warnings (a legend too wide for tight_layout) are not the user's business: the charts are drawn anyway."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _plot_history(rows, out_dir)


def _plot_history(rows: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Path]:
    try:
        plt = _pyplot()
    except ImportError:
        raise BenchmarkError("plot needs matplotlib: pip install matplotlib") from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchmarkError(f"--out {out_dir}: cannot create it ({exc.strerror}); choose another folder") from None
    series: dict[str, list[tuple[_dt.datetime, Mapping[str, Any]]]] = defaultdict(list)
    ended: dict[str, list[_dt.datetime]] = defaultdict(list)  # failed / interrupted nights: marks on the axis
    for r in rows:
        when = _when(r.get("start_time", ""))
        if when is not None and str(r.get("status") or "completed") != "completed":
            ended[str(r.get("status"))].append(when)
        elif when is not None:
            series[workload_series(r)].append((when, r))
    flags = workload_flags(rows)
    written = []
    for name, title, ylabel, columns, scale in HISTORY_CHARTS:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for label, points in sorted(series.items()):
            points.sort(key=lambda p: p[0])
            for col, suffix in columns:
                pts = [(t, scale * r[col]) for t, r in points if r.get(col) is not None]
                if pts:  # a label drawn from history cells: control characters escaped, cut to fit the legend
                    ax.plot(*zip(*pts), marker="o", markersize=4, label=printable(f"{label} {suffix}".strip())[:80])
        for status, times in sorted(ended.items()):
            ax.plot(sorted(times), [0] * len(times), linestyle="none", clip_on=False, markersize=10,
                    **ENDED_STYLE.get(status, ENDED_STYLE["failed"]), label=f"{status} night")
        ax.set_title(f"{title} over time ({len(rows)} runs" + "".join(f"; {f}" for f in flags) + ")")
        ax.set_xlabel("run start (UTC)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        _finish_axes(ax)
        fig.autofmt_xdate()
        fig.tight_layout()
        try:
            _save(fig, out_dir / name)
        except OSError as exc:
            raise BenchmarkError(f"--out {out_dir}: cannot write {name} ({exc.strerror}); choose another folder") from None
        finally:
            plt.close(fig)
        written.append(out_dir / name)
    return written
