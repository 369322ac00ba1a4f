"""timeline.png and telemetry.csv of a run: throughput, power, SM clock and device memory over the run's wall
time, phases shaded and labelled (from benchmarks.measure.run_telemetry.Timeline).

The chart never fails a run: without matplotlib, or on any plotting problem, it is skipped with a warning.
Without telemetry (e.g. the cpu vendor) the throughput panel is still drawn and the other panels say why
they are empty.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping

from .atomic import atomic_write_text
from .plots import run_chart

TELEMETRY_COLUMNS = ("t_s", "phase", "power_w", "energy_counter_j", "sm_clock_mhz", "mem_clock_mhz", "temperature_c",
                     "mem_used_gib", "limits")
PHASE_COLORS = ("#dbe9f6", "#fde2c8", "#d9f0d3", "#eadcf0", "#f6e8b1", "#e0e0e0")


def throughput_series(timeline: Any) -> tuple[list[float], list[float], float]:
    """(bin centres s, tokens/s per bin, bin width s): tokens of the forwards ending in each bin / bin width.
    Bins of 1 s, or 1/30 of the run for runs shorter than 30 s."""
    ends = [(t, tok - prev) for pts in timeline.forwards.values() for (t, tok), prev in
            zip(pts, [0] + [tok for _, tok in pts[:-1]])]
    if not ends:
        return [], [], 1.0
    span = max(max(t for t, _ in ends), max((p[2] for p in timeline.phases), default=0.0))
    width = 1.0 if span >= 30 else max(span / 30, 1e-3)
    bins: dict[int, int] = defaultdict(int)
    for t, tokens in ends:
        bins[int(t // width)] += tokens
    first, last = min(bins), max(bins)
    xs = [(k + 0.5) * width for k in range(first, last + 1)]
    return xs, [bins.get(k, 0) / width for k in range(first, last + 1)], width


def _phase_at(timeline: Any, t: float) -> str:
    for name, t0, t1 in timeline.phases:
        if t0 <= t <= t1:
            return name
    return ""


def write_telemetry_csv(path: Path, timeline: Any) -> Path | None:
    """Every telemetry sample, on the timeline's clock, with the phase it fell in (only with telemetry)."""
    record = timeline.record
    if record is None:
        return None
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TELEMETRY_COLUMNS)
    for s in record.samples:
        t = s.t_s + timeline.offset_s
        w.writerow([f"{t:.4f}", _phase_at(timeline, t), *("" if v is None else repr(v) for v in
                    (s.power_w, s.energy_j, s.sm_clock_mhz, s.mem_clock_mhz, s.temperature_c, s.mem_used_gib)),
                    "" if s.limits is None else ";".join(s.limits)])
    atomic_write_text(path, buf.getvalue())
    return path


def plot_timeline(path: Path, timeline: Any, title: str, energy: Mapping[str, Any] | None = None) -> Path | None:
    """Four panels on one time axis (s since the run started): tokens/s, power W, SM clock MHz, memory GiB
    (see plots.run_chart for failures)."""

    def draw(plt: Any) -> Any:
        record = timeline.record
        fig, axes = plt.subplots(4, 1, figsize=(11, 9), sharex=True)
        xs, ys, width = throughput_series(timeline)
        panels = [(axes[0], "tokens/s" + (" (per 1 s)" if width == 1.0 else f" (per {width:.2g} s)"), xs, ys)]
        t, power, sm, mem = [], [], [], []
        if record is not None:
            for s in record.samples:
                t.append(s.t_s + timeline.offset_s)
                power.append(s.power_w)
                sm.append(s.sm_clock_mhz)
                mem.append(s.mem_used_gib)
        for ax, label, values in ((axes[1], "power, W", power), (axes[2], "SM clock, MHz", sm),
                                  (axes[3], "device memory used, GiB", mem)):
            pts = [(a, b) for a, b in zip(t, values) if b is not None]
            panels.append((ax, label, [a for a, _ in pts], [b for _, b in pts]))
        span = max([p[2] for p in timeline.phases] + [x for _, _, xs_, _ in panels for x in xs_] + [1e-3])
        legend = []
        for i, (ax, label, px, py) in enumerate(panels):
            for k, (name, t0, t1) in enumerate(timeline.phases):
                patch = ax.axvspan(t0, t1, color=PHASE_COLORS[k % len(PHASE_COLORS)], alpha=0.8, lw=0)
                if i == 0:
                    legend.append((patch, name))
                    # Short phases (idle, init, a warm-up: seconds of a 15-minute run) would print their names on
                    # top of each other: they are named in the legend only.
                    if t1 - t0 > span / 12:
                        ax.text((t0 + t1) / 2, 1.01, name, transform=ax.get_xaxis_transform(), ha="center",
                                va="bottom", fontsize=8)
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            if px:
                ax.plot(px, py, lw=1, color="C0" if i else "C3", drawstyle="steps-mid" if i == 0 else "default")
                ax.set_ylim(bottom=0, top=max(py) * 1.1 if max(py) > 0 else 1)
            else:
                why = "no forwards" if i == 0 else f"not measured: {timeline.reason or 'the device does not report it'}"
                ax.set_ylim(0, 1)
                ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.4",
                        wrap=True)
        if energy and energy.get("idle_power_w") is not None:
            axes[1].axhline(energy["idle_power_w"], color="0.3", ls="--", lw=1)
            axes[1].text(0.995, energy["idle_power_w"], f"idle {energy['idle_power_w']:.0f} W",
                         transform=axes[1].get_yaxis_transform(), ha="right", va="bottom", fontsize=8)
        axes[-1].set_xlim(0, span)
        axes[-1].set_xlabel("time since the run started, s")
        fig.suptitle(title)
        if legend:
            fig.legend([h for h, _ in legend], [n for _, n in legend], loc="upper center", ncol=len(legend),
                       bbox_to_anchor=(0.5, 0.965), fontsize=8, frameon=False, title="phases", title_fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 0.93 if legend else 1))
        return fig

    return run_chart(path, draw)
