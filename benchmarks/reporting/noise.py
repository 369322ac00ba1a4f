"""The gate's noise rule: a throughput drop is a regression only when it exceeds the noise the repeats and the
history show, after the host's load is taken out. docs/baselines.md ("Noise") states the rule for users; this
module is it.

Judged this way: the higher-is-better throughputs, MFU and tokens per joule (JUDGED), when both sides have a
number.

1. A night's *figure*. Each run's value (run 1's as recorded; --repeat's runs 2..N; a whole throughput as
   tokens / (that run's pass time + run 1's one-time warm-up and compile); MFU as run 1's scaled by each run's
   p_infer_core) is corrected for the host's load during that run: x / (1 - c), c the share of runnable time
   the pass's threads waited for a CPU (benchmarks.measure.host_cpu; 0 where not recorded): the throughput the run
   would have had on an idle host. The figure is the median over the runs when both sides ran --repeat (one
   disturbed run moves it little), else run 1's; a --history row keeps it (`<metric>_figure`).
2. The reference and the noise sigma (relative):
   a. a result.json baseline and at least HISTORY_MIN good nights of this workload in --history (completed, no
      regression; the last HISTORY_NIGHTS), TorchBench's way: the reference is the median of their figures (a
      baseline is one night; the median of ten is the better estimate of this machine's normal);
      sigma = 1.4826 x MAD / median x sqrt(1 + pi / (2 n)), one night around a median of n;
   b. a YAML baseline (stated expectations) with such a history: its value; sigma = 1.4826 x MAD / median;
   c. otherwise the baseline's figure; sigma = sqrt(se_run^2 + se_base^2) from the repeats, se the standard
      error of a side's median (1.4826 x MAD / median x sqrt(pi / (2 n)); a side without repeats counts as
      noisy as the other); and while the history is short, with repeats on a side, the allowed drop is at least
      BOOTSTRAP x the tolerance: the night-to-night noise is not known yet.
   The load correction is surer the idler the host: LOAD_UNCERTAINTY x c of the run (and of a baseline
   figure) is added to sigma in quadrature. A baseline measured on a busier host than the run's never makes a
   regression through its correction: the smaller of the corrected and the measured drop counts.
3. The verdict, drop = the relative shortfall of the run's figure against the reference: drop <= tol: ok
   (better when it gains more than tol); drop > max(floor, Z x sigma): REGRESSION; otherwise `noisy`, "noise too
   high to judge" (gate status NOISY, exit 0).
Without repeats, history or host record on either side, sigma is 0, nothing is corrected, and the rule is the
fixed tolerance it always was.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Callable, Mapping, Sequence

from ..measure.host_cpu import run_shares

Z = 3.0  # a drop must exceed Z sigma: about one false alarm in 700 nights per metric for normal noise
HISTORY_NIGHTS = 10  # the last K good nights of the workload in --history
HISTORY_MIN = 5  # fewer than this: the history says nothing about the noise
MAD_TO_SIGMA = 1.4826  # MAD x this = the standard deviation, for normal noise
BOOTSTRAP = 2.0  # repeats but a short history: a drop under this x tolerance is not judged
# The load correction's own error, per unit of wait share: up to ~0.25 c measured on a shared 2-core VM at
# waits of 25-67% (shared caches, memory bandwidth and SMT siblings cost what the wait does not show).
LOAD_UNCERTAINTY = 0.15

# metric -> (the pass its runs are, how its --repeat samples are made, whether run 1 includes the compile span)
JUDGED: Mapping[str, tuple[str, str, bool]] = {
    "p_val_core": ("validation", "as_recorded", False), "p_val_pass": ("validation", "as_recorded", False),
    "p_infer_core": ("inference", "as_recorded", False), "p_infer_pass": ("inference", "as_recorded", False),
    "p_val_whole": ("validation", "whole", False), "p_infer_whole": ("inference", "whole", True),
    "mfu": ("inference", "mfu", False),
    "tokens_per_joule_whole": ("inference", "none", True), "tokens_per_joule_core": ("inference", "none", False),
}


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _runs(result: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return [r for r in (((result or {}).get("repeat") or {}).get("runs") or []) if isinstance(r, Mapping)]


def samples(result: Mapping[str, Any] | None, metric: str) -> list[float]:
    """The metric's value in each --repeat run of `result` (run 1 first), as measured; [] without repeats."""
    runs = _runs(result)
    if metric not in JUDGED or len(runs) < 2:
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


def waits(result: Mapping[str, Any] | None, metric: str, runs: int) -> list[float]:
    """The host's wait share of each of the first `runs` runs behind `metric` (0.0 where not recorded)."""
    pass_name, _, with_compile = JUDGED[metric]
    shares = run_shares((result or {}).get("host_cpu_wait"), pass_name, runs, with_compile)
    return [min(max(c or 0.0, 0.0), 0.99) for c in shares]


def figure(result: Mapping[str, Any] | None, metric: str, value: float, median: bool) -> dict[str, Any]:
    """A side's figure for `metric`: `value` (its recorded number), or the median over its --repeat runs when
    `median`, each run corrected for the host's load, x / (1 - c). Also the wait share behind it and the
    figure as measured (uncorrected)."""
    xs = samples(result, metric) if median else []
    if not xs:
        c = waits(result, metric, 1)[0]
        return {"figure": value / (1 - c), "wait": c, "measured": value, "median": False}
    cs = waits(result, metric, len(xs))
    return {"figure": statistics.median(x / (1 - c) for x, c in zip(xs, cs)), "wait": statistics.median(cs),
            "measured": statistics.median(xs), "median": True}


def night_figure(result: Mapping[str, Any], metric: str) -> float | None:
    """A history row's figure of a night (its --repeat median, load-corrected), for the gate's later nights."""
    value = (result.get("metrics") or {}).get(metric)
    if metric not in JUDGED or not _positive(value):
        return None
    return figure(result, metric, float(value), median=len(_runs(result)) > 1)["figure"]


def night_wait(result: Mapping[str, Any]) -> float | None:
    """A night's host load for the history: the larger of its validation and inference passes' median waits."""
    if not isinstance(result.get("host_cpu_wait"), Mapping) or not result["host_cpu_wait"].get("available"):
        return None
    n = max(len(_runs(result)), 1)
    return max(statistics.median(waits(result, m, n)) for m in ("p_val_core", "p_infer_core"))


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
    """The figures of the last HISTORY_NIGHTS nights of `series` (and case) that completed without a regression
    (each night's `<metric>_figure`, else its recorded value)."""
    good = []
    for r in rows:
        if (r.get("status") != "completed" or str(r.get("gate") or "").upper() == "REGRESSION"
                or r.get("case") != case or series_of(r) != series):
            continue
        value = r.get(f"{metric}_figure") if _positive(r.get(f"{metric}_figure")) else r.get(metric)
        if _positive(value):
            good.append((str(r.get("start_time") or ""), float(value)))
    good.sort(key=lambda t: t[0])
    return [v for _, v in good[-HISTORY_NIGHTS:]]


def _corrected_se(result: Mapping[str, Any] | None, metric: str) -> float | None:
    xs = samples(result, metric)
    cs = waits(result, metric, len(xs)) if xs else []
    return standard_error([x / (1 - c) for x, c in zip(xs, cs)])


def judge(row: dict[str, Any], tol: float, run: Mapping[str, Any], base: Mapping[str, Any] | None,
          history: Sequence[float]) -> list[str]:
    """Re-judge one gate row (a JUDGED metric, numbers on both sides) by the rule above; returns notes."""
    metric, notes = row["metric"], []
    floor, spread, sources = tol, None, []
    both_repeat = bool(samples(run, metric)) and bool(samples(base, metric))
    if len(history) >= HISTORY_MIN:
        mine = figure(run, metric, row["now"], median=bool(samples(run, metric)))
        share = _mad_share(history)
        sources.append(f"{len(history)} nights of --history")
        if base is not None:  # a result.json baseline: the nights' median instead of that one night
            reference = {"figure": statistics.median(history), "wait": None, "measured": None, "median": True}
            spread = None if share is None else share * math.sqrt(1 + math.pi / (2 * len(history)))
            own = figure(base, metric, row["baseline"], median=bool(samples(base, metric)))["figure"]
            row["reference"] = f"median of the last {len(history)} nights"
            limit = max(tol, Z * (spread or 0.0))
            if abs(own - reference["figure"]) / reference["figure"] > limit:
                notes.append(f"{metric}: the baseline's {own:,.6g} is {100 * (own / reference['figure'] - 1):+.1f}% "
                             f"off the last {len(history)} nights' median {reference['figure']:,.6g}, which the "
                             "gate compares with; remake the baseline if this machine's normal has changed")
        else:  # a YAML baseline states the expected value: the history gives the noise
            reference = {"figure": row["baseline"], "wait": None, "measured": row["baseline"], "median": False}
            spread = share
    else:
        mine = figure(run, metric, row["now"], median=both_repeat)
        reference = figure(base, metric, row["baseline"], median=both_repeat) if base is not None else \
            {"figure": row["baseline"], "wait": None, "measured": row["baseline"], "median": False}
        se_run, se_base = _corrected_se(run, metric), _corrected_se(base, metric)
        if se_run is not None or se_base is not None:
            se_run = se_run if se_run is not None else se_base
            se_base = se_base if se_base is not None else se_run
            spread = math.hypot(se_run, se_base)
            sources.append("repeats")
            floor = BOOTSTRAP * tol
            sources.append(f"history of {len(history)} < {HISTORY_MIN} nights: at least {BOOTSTRAP:g} x tolerance")
    load = math.hypot(LOAD_UNCERTAINTY * (mine["wait"] or 0.0), LOAD_UNCERTAINTY * (reference["wait"] or 0.0))
    if load > 0:
        sources.append("the host's load")
    sigma = math.hypot(spread or 0.0, load) if spread is not None or load > 0 else None
    allowed = max(floor, Z * sigma) if sigma is not None else floor
    ref, now = reference["figure"], mine["figure"]
    change = (now - ref) / abs(ref) if ref else 0.0
    if reference["measured"] and reference["wait"] and (reference["wait"] or 0) > (mine["wait"] or 0):
        # a baseline measured on a busier host: its correction may only excuse the run, never accuse it
        change = max(change, (mine["measured"] - reference["measured"]) / abs(reference["measured"]))
    drop = -change
    row.update(baseline=ref, now=now, statistic="median" if mine["median"] else row["statistic"], change=change,
               noise=sigma, noise_from=sources, allowed=allowed,
               host_wait={"run": mine["wait"], "baseline": reference["wait"]},
               measured={"run": mine["measured"], "baseline": reference["measured"]})
    if drop <= tol + 1e-12:
        row["verdict"] = "better" if -drop > tol + 1e-12 else "ok"
    elif drop > allowed + 1e-12:
        row["verdict"] = "REGRESSION"
    else:
        row["verdict"] = "noisy"
    if (mine["wait"] or 0.0) >= 0.01 or (reference["wait"] or 0.0) >= 0.01:
        notes.append(f"{metric}: figures corrected for the host's load (threads waited for a CPU "
                     f"{100 * (mine['wait'] or 0.0):.0f}% of their runnable time, reference "
                     f"{'n/a' if reference['wait'] is None else format(100 * reference['wait'], '.0f') + '%'}): "
                     f"measured {mine['measured']:,.6g}, {now:,.6g} on an idle host")
    return notes


def why_noisy(row: Mapping[str, Any]) -> str:
    """One phrase: why a `noisy` row could not be judged."""
    sigma = "" if row.get("noise") is None else f"sigma {100 * row['noise']:.1f}% "
    return (f"{row['metric']} {100 * row['change']:+.1f}%: its noise ({sigma}from {'; '.join(row['noise_from'])}) "
            f"lets only a drop beyond {100 * row['allowed']:.1f}% be judged")
