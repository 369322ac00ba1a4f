"""The gate's noise rule: a throughput drop is a regression only when neither the measurement's noise nor the
host's load explains it. docs/baselines.md ("Noise") states the rule for users; this module is it.

Judged this way: the higher-is-better throughputs, MFU and tokens per joule (JUDGED), when both sides have a
number. A night's *figure* is the median over its --repeat runs (a whole throughput as tokens / (that run's
pass time + run 1's one-time warm-up and compile), so it is a median of N measurements too; MFU as run 1's
scaled by each run's p_infer_core), else its value; a --history row keeps it (`<metric>_median`).

1. Reference and noise sigma (relative):
   a. a result.json baseline and at least HISTORY_MIN good nights of this workload in --history (completed, no
      regression, a host not busy; the last HISTORY_NIGHTS of them), TorchBench's way: the reference is the median of their
      figures (the baseline is a single night, the median of ten a far better estimate of this machine's
      normal); sigma = 1.4826 x MAD / median x sqrt(1 + pi / (2 n)), one night's noise around a median of n;
   b. a YAML baseline (stated expectations) with such a history: its value; sigma = 1.4826 x MAD / median;
   c. otherwise the baseline's figure; sigma = sqrt(se_run^2 + se_base^2) from the repeats, se the standard
      error of a side's median (1.4826 x MAD / median x sqrt(pi / (2 n)); a side without repeats counts as
      noisy as the other); and while the history is short, with repeats on a side, the allowed drop is at least
      BOOTSTRAP x the tolerance: the night-to-night noise is not known yet.
2. The host's load: c, the share of runnable time the passes' threads waited for a CPU (benchmarks.host_cpu);
   explained = 1 - (1 - c_run) / (1 - c_base) (a baseline without the record, or the history, counts as idle),
   never negative: the load excuses a drop, it never makes one. Over HOST_BUSY the host was oversubscribed and
   slows a run by more than the wait (caches, memory bandwidth, SMT siblings): nothing is judged, and such a
   night stays out of the history's nights.
3. The verdict, drop = the relative shortfall against the reference:
   drop <= tol: ok (better when it gains more than tol); c_run > HOST_BUSY: noisy;
   drop - explained > max(floor, Z x sigma): REGRESSION; otherwise `noisy`: "noise too high to judge" (gate
   status NOISY, exit 0).
Without repeats, history or host record on either side, sigma and explained are 0 and the rule is the fixed
tolerance it always was.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Callable, Mapping, Sequence

from ..host_cpu import wait_share

Z = 3.0  # a drop must exceed Z sigma: about one false alarm in 700 nights per metric for normal noise
HISTORY_NIGHTS = 10  # the last K good nights of the workload in --history
HISTORY_MIN = 5  # fewer than this: the history says nothing about the noise
MAD_TO_SIGMA = 1.4826  # MAD x this = the standard deviation, for normal noise
BOOTSTRAP = 2.0  # repeats but a short history: a drop under this x tolerance is not judged
# A host this busy (the passes' threads waited for a CPU this share of their runnable time) slows a run by more
# than the wait itself (shared caches, memory bandwidth, SMT siblings): its throughputs are not judged, and
# such a night does not enter the history's estimate of this machine's normal.
HOST_BUSY = 0.10

# metric -> (pass prefixes of its host wait share, how its --repeat samples are made)
JUDGED: Mapping[str, tuple[tuple[str, ...], str]] = {
    "p_val_core": (("validation",), "as_recorded"), "p_val_pass": (("validation",), "as_recorded"),
    "p_infer_core": (("inference",), "as_recorded"), "p_infer_pass": (("inference",), "as_recorded"),
    "p_val_whole": (("validation",), "whole"), "p_infer_whole": (("inference", "compile"), "whole"),
    "mfu": (("inference",), "mfu"),
    "tokens_per_joule_whole": (("inference", "compile"), "none"),
    "tokens_per_joule_core": (("inference",), "none"),
}


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def samples(result: Mapping[str, Any] | None, metric: str) -> list[float]:
    """The metric's value in each --repeat run of `result` (run 1 first); [] without repeats."""
    if not result or metric not in JUDGED:
        return []
    runs = [r for r in ((result.get("repeat") or {}).get("runs") or []) if isinstance(r, Mapping)]
    if len(runs) < 2:
        return []
    how = JUDGED[metric][1]
    m = result.get("metrics") or {}
    if how == "as_recorded":
        out = [r.get(metric) for r in runs]
    elif how == "whole":  # run 1's extra time per token (warm-up, compile) added to each run's pass time
        key = metric.replace("_whole", "_pass")
        whole, first = m.get(metric), m.get(key)
        if not _positive(whole) or not _positive(first):
            return []
        extra = 1 / whole - 1 / first
        out = [1 / (1 / r[key] + extra) if _positive(r.get(key)) else None for r in runs]
    elif how == "mfu":
        mfu, first = m.get("mfu"), runs[0].get("p_infer_core")
        if not _positive(mfu) or not _positive(first):
            return []
        out = [mfu * r["p_infer_core"] / first if _positive(r.get("p_infer_core")) else None for r in runs]
    else:
        return []
    return [float(x) for x in out] if all(_positive(x) for x in out) else []


def _mad_share(xs: Sequence[float]) -> float | None:
    """1.4826 x MAD / median: a robust relative standard deviation."""
    med = statistics.median(xs)
    return MAD_TO_SIGMA * statistics.median(abs(x - med) for x in xs) / med if med > 0 else None


def standard_error(xs: Sequence[float]) -> float | None:
    """The relative standard error of a side's median over its repeats (MAD, not the range: one disturbed run
    of three moves neither the median nor it)."""
    if len(xs) < 2:
        return None
    share = _mad_share(xs)
    return None if share is None else share * math.sqrt(math.pi / 2 / len(xs))


def history_figures(rows: Sequence[Mapping[str, Any]], series: str, case: Any, metric: str,
                    series_of: Callable[[Mapping[str, Any]], str]) -> list[float]:
    """The figures of the last HISTORY_NIGHTS nights of `series` (and case) that completed without a regression:
    each night's --repeat median when it has one, else its value."""
    good = []
    for r in rows:
        if (r.get("status") != "completed" or str(r.get("gate") or "").upper() == "REGRESSION"
                or r.get("case") != case or series_of(r) != series or (r.get("host_wait_share") or 0.0) > HOST_BUSY):
            continue
        value = r.get(f"{metric}_median") if _positive(r.get(f"{metric}_median")) else r.get(metric)
        if _positive(value):
            good.append((str(r.get("start_time") or ""), float(value)))
    good.sort(key=lambda t: t[0])
    return [v for _, v in good[-HISTORY_NIGHTS:]]


def explained_share(c_run: float | None, c_base: float | None) -> float:
    """The share of the reference's throughput the host's extra load took from the run (never negative)."""
    if c_run is None:
        return 0.0
    base = c_base or 0.0
    return max(0.0, 1 - (1 - c_run) / (1 - base)) if base < 1 else 0.0


def judge(row: dict[str, Any], tol: float, run: Mapping[str, Any], base: Mapping[str, Any] | None,
          history: Sequence[float]) -> list[str]:
    """Re-judge one gate row (a JUDGED metric, numbers on both sides) by the rule above; returns notes."""
    metric, notes = row["metric"], []
    run_s, base_s = samples(run, metric), samples(base, metric)
    now = statistics.median(run_s) if run_s else row["now"]
    statistic = "median" if run_s else row["statistic"]
    floor, sigma, sources = tol, None, []
    if len(history) >= HISTORY_MIN and base is not None:  # a result.json baseline: the nights' median instead
        reference = statistics.median(history)
        share = _mad_share(history)
        sigma = None if share is None else share * math.sqrt(1 + math.pi / (2 * len(history)))
        sources.append(f"{len(history)} nights of --history")
        own = statistics.median(base_s) if base_s else row["baseline"]
        row.update(reference=f"median of the last {len(history)} nights")
        if sigma is not None and abs(own - reference) / reference > max(tol, Z * sigma):
            notes.append(f"{metric}: the baseline's {own:,.6g} is {100 * (own / reference - 1):+.1f}% off the "
                         f"last {len(history)} nights' median {reference:,.6g}, which the gate compares with; "
                         "remake the baseline if this machine's normal has changed")
    elif len(history) >= HISTORY_MIN:  # a YAML baseline states the expected value: the history gives the noise
        reference = row["baseline"]
        sigma = _mad_share(history)
        sources.append(f"{len(history)} nights of --history")
    else:
        reference = statistics.median(base_s) if run_s and base_s else row["baseline"]
        if not (run_s and base_s):
            now, statistic = row["now"], row["statistic"]  # medians only when both sides have them
        se_run, se_base = standard_error(run_s), standard_error(base_s)
        if se_run is not None or se_base is not None:
            se_run = se_run if se_run is not None else se_base
            se_base = se_base if se_base is not None else se_run
            sigma = math.hypot(se_run, se_base)
            sources.append("repeats")
            floor = BOOTSTRAP * tol
            sources.append(f"history of {len(history)} < {HISTORY_MIN} nights: at least {BOOTSTRAP:g} x tolerance")
    prefixes = JUDGED[metric][0]
    c_run = wait_share(run.get("host_cpu_wait"), prefixes)
    against_baseline = row.get("reference", "baseline") == "baseline"
    c_base = wait_share((base or {}).get("host_cpu_wait"), prefixes) if against_baseline else None
    explained = explained_share(c_run, c_base)
    allowed = max(floor, Z * sigma) if sigma is not None else floor
    change = (now - reference) / abs(reference) if reference else 0.0
    drop = -change
    row.update(baseline=reference, now=now, statistic=statistic,
               change=change, noise=sigma, noise_from=sources, allowed=allowed,
               host_wait={"run": c_run, "baseline": c_base}, explained=explained or None)
    if drop <= tol + 1e-12:
        row["verdict"] = "better" if -drop > tol + 1e-12 else "ok"
    elif (c_run or 0.0) > HOST_BUSY:
        row["verdict"] = "noisy"  # the host was oversubscribed: no drop can be told from its load
    elif drop - explained > allowed + 1e-12:
        row["verdict"] = "REGRESSION"
    else:
        row["verdict"] = "noisy"
    return notes


def why_noisy(row: Mapping[str, Any]) -> str:
    """One phrase: why a `noisy` row could not be judged."""
    parts = []
    if row["allowed"] > row["tolerance"] + 1e-12:
        sigma = "" if row.get("noise") is None else f"sigma {100 * row['noise']:.1f}% "
        parts.append(f"its noise ({sigma}from {'; '.join(row['noise_from'])}) lets only a drop beyond "
                     f"{100 * row['allowed']:.1f}% be judged")
    hw = row.get("host_wait") or {}
    if (hw.get("run") or 0.0) > HOST_BUSY:
        parts.append(f"the host was busy: the passes' threads waited for a CPU {100 * hw['run']:.0f}% of their "
                     f"runnable time (over {100 * HOST_BUSY:.0f}%, a drop cannot be told from the load)")
    elif row.get("explained"):
        base = "n/a" if hw.get("baseline") is None else f"{100 * hw['baseline']:.0f}%"
        parts.append(f"the host's load explains {100 * row['explained']:.1f}% (threads waited for a CPU "
                     f"{100 * hw['run']:.0f}% of the time, reference {base})")
    return f"{row['metric']} {100 * row['change']:+.1f}%: " + ("; ".join(parts) or "within the noise")
