"""VALID, SPEED-ONLY or INVALID, with a reason for every rule a run breaks and notes for what a reader should know.

VALID means "this is the case": the whole workload, the case's model and data (the case says how a run
deviates, `Case.deviations`), real weights, plausible numbers, nothing compiled or recorded inside the timed
pass, and the inference predictions checked against the plain model's. A run with random weights can at best
be SPEED-ONLY: its throughput is the case's, its accuracy is not. All rules live here, one function each;
`judge` runs them over the `Evidence` the runner collected. A rule yields `reason(...)` (makes the run
INVALID) or `note(...)` (informs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from .interfaces import PeakFlops
from .metrics import Metrics
from .passes import PassRecord

# With a named optimization on, the inference pass must give the plain model's prediction on at least this
# share of questions: with real weights (rounding flips near-ties only), and with random weights, whose
# near-ties flip far more often (97.9-98.5% measured on the H200).
PACKING_MIN_SAME = 0.999
RANDOM_WEIGHTS_MIN_SAME = 0.97


def agreement_floor(random_weights: bool) -> float:
    return RANDOM_WEIGHTS_MIN_SAME if random_weights else PACKING_MIN_SAME


@dataclass(frozen=True)
class Evidence:
    """What the rules look at: the run's settings, what the toolkit reported, the passes and metrics."""

    smoke: bool
    limit: int | None
    synthetic_weights: bool
    recompiles: int
    compile_fallback: str | None
    passes: Sequence[PassRecord]  # the passes of run 1 that happened (validation, inference)
    metrics: Metrics
    peak: PeakFlops
    reference_accuracy: float | None = None
    accuracy_tolerance: float = 0.0
    packing: Mapping[str, Any] | None = None  # metrics.packing(...)
    repeat_runs: Sequence[Mapping[str, Any]] = field(default_factory=tuple)  # metrics.repeat_run(...) of runs 2..N
    deviations: Sequence[str] = ()  # Case.deviations(...): how this run's model, data or settings are not the case
    optimizations: Sequence[str] = ()  # labels of the named optimizations in effect
    graph_recordings: int | None = None  # CUDA graphs recorded inside the timed pass (ToolkitReport)
    scenario: str = "optimized"
    peak_source: str | None = None  # where an overridden peak FLOP/s came from (None: the vendor's table)
    energy: Mapping[str, Any] | None = None  # metrics.energy_block(...): telemetry per phase
    ranks: Sequence[Mapping[str, Any]] = ()  # a data-parallel run: every rank's figures (runner._rank_figures)
    flops_override: str | None = None  # `flops` (FLOPs per token of the reference's MFU) given by --set: its text


Finding = tuple[bool, str]  # (invalidates the run?, text)


def reason(text: str) -> Finding:
    return True, text


def note(text: str) -> Finding:
    return False, text


def not_the_case(e: Evidence) -> Iterator[Finding]:
    """Settings under which the case measures something else (e.g. a shrunk model), as the case names them."""
    for text in e.deviations:
        yield reason(text)


def smoke_run(e: Evidence) -> Iterator[Finding]:
    if e.smoke:
        yield reason("smoke run on a tiny generated model and data")


def partial_workload(e: Evidence) -> Iterator[Finding]:
    if e.limit is not None:
        yield reason(f"partial workload: --limit {e.limit} questions per subject")


def recompiled(e: Evidence) -> Iterator[Finding]:
    """The optimized scenario compiles and records everything before its timed pass; the reference scenario
    compiles lazily inside it, as the reference did, so there the counts are reported, not judged."""
    judged = reason if e.scenario == "optimized" else note
    if e.recompiles:
        yield judged(f"{e.recompiles} recompilation(s) during the timed inference pass")
    if e.graph_recordings:
        yield judged(f"{e.graph_recordings} CUDA graph recording(s) during the timed inference pass")


def compile_fallback(e: Evidence) -> Iterator[Finding]:
    if e.compile_fallback:
        yield reason(f"toolkit failed and the plain model was used: {e.compile_fallback}")


def nonfinite_logits(e: Evidence) -> Iterator[Finding]:
    for rec in e.passes:
        if rec.nonfinite_questions:
            yield reason(f"{rec.nonfinite_questions} question(s) with non-finite logits in the {rec.name} pass")


def repeat_runs(e: Evidence) -> Iterator[Finding]:
    for run in e.repeat_runs:
        for name, count in run["nonfinite_questions"].items():
            if count:
                yield reason(f"{count} question(s) with non-finite logits in the {name} pass of repeat run {run['run']}")
        for name, count in run["predictions_differ"].items():
            if count:
                yield note(f"repeat run {run['run']}: {count} {name} prediction(s) differ from run 1")


def checked_predictions(e: Evidence) -> Iterator[Finding]:
    """Named optimizations change how the inference pass computes, not what: with any of them on, its
    predictions must equal the plain model's (the validation pass, batch 1)."""
    if not e.optimizations and not e.packing:
        return
    what = ", ".join(e.optimizations) or "packed forwards"
    same = e.metrics.agreement
    if same is None:
        yield note(f"{what}: predictions not compared with the plain model (no validation pass)")
        return
    floor = agreement_floor(e.synthetic_weights or e.smoke)
    text = (f"{what}: {100 * same:.2f}% of inference predictions equal the validation pass's (batch 1, plain "
            f"model); required {100 * floor:.1f}%" + (" with random weights (near-ties flip)" if floor < PACKING_MIN_SAME
                                                      else ""))
    yield note(text) if same >= floor else reason(text)


def accuracy_band(e: Evidence) -> Iterator[Finding]:
    if e.synthetic_weights:
        yield note("synthetic (random) weights: accuracy is not meaningful")
        return
    if e.smoke or e.limit is not None or e.deviations or e.reference_accuracy is None:
        return
    ref, tol = e.reference_accuracy, e.accuracy_tolerance
    for key in ("infer_acc", "val_acc"):
        acc = getattr(e.metrics, key)
        if acc is not None and abs(acc - ref) > tol:
            yield reason(f"{key} {acc:.3f} is outside the reference {ref} +- {tol}")


def plausible_numbers(e: Evidence) -> Iterator[Finding]:
    """An MFU above 1 or at 0 is a wrong peak or a wrong timer, not a fast card; core time is part of whole."""
    for key in ("mfu", "mfu_executed"):
        value = getattr(e.metrics, key)
        if value is not None and not 0 < value <= 1:
            yield reason(f"{key} {value:.4g} is impossible (expected 0 < {key} <= 1): check the peak FLOP/s ({e.peak.source})")
    for rec in e.passes:
        if rec.core_s > rec.whole_s:
            yield reason(f"{rec.name} pass: core time {rec.core_s:.3f} s exceeds its wall time {rec.whole_s:.3f} s")
    if e.peak_source is not None:
        yield note(f"peak FLOP/s overridden ({e.peak.value:.4g} from {e.peak_source}), not the vendor's table")


def flops_overridden(e: Evidence) -> Iterator[Finding]:
    """MFU is the reference's: its `flops` per token is part of the case's configurations.yaml (a vendor may not
    set it). Another value from --set scales MFU by the same factor, so the run is not the case's MFU."""
    if e.flops_override is not None:
        yield reason(f"flops overridden with --set ({e.flops_override}): MFU is scaled by it and is not the "
                     "reference's; remove --set flops")


RANK_SAME = (("config_sha256", "config"), ("fingerprint", "weights and data fingerprint"),
             ("device_type", "device type"), ("device_name", "device name"))


def ranks_agree(e: Evidence) -> Iterator[Finding]:
    """A data-parallel run measures one workload: every rank had the same config, inputs and kind of device."""
    if not e.ranks:
        return
    first = e.ranks[0]
    for key, what in RANK_SAME:
        differ = [r["rank"] for r in e.ranks if r.get(key) != first.get(key)]
        if differ:
            yield reason(f"ranks {differ} saw another {what} than rank {first['rank']}: {key} differs")
    hosts = sorted({r["host"] for r in e.ranks})
    yield note(f"data parallel: {len(e.ranks)} ranks on {len(hosts)} host(s); system throughput = all tokens / "
               "the slowest rank's time, MFU against the peak of all devices")


def mfu_reported(e: Evidence) -> Iterator[Finding]:
    if e.peak.value is None:
        yield note(f"MFU not reported: {e.peak.source}")


def slowed_down(e: Evidence) -> Iterator[Finding]:
    """Thermal or hardware slowdown during a timed pass: its numbers are reported, a reader should know."""
    phases = (e.energy or {}).get("phases") or {}
    for name in ("validation", "inference"):
        shares = (phases.get(name) or {}).get("limit_shares") or {}
        found = [f"{what} on {100 * shares[key]:.0f}% of samples" for key, what in
                 (("thermal", "thermal slowdown"), ("hw_slowdown", "HW slowdown")) if shares.get(key)]
        if found:
            yield note(f"{name} pass: {' and '.join(found)} (clocks held down; numbers still reported)")


def energy_source(e: Evidence) -> Iterator[Finding]:
    if e.energy and e.energy.get("note"):
        yield note(e.energy["note"])


RULES: tuple[Callable[[Evidence], Iterator[Finding]], ...] = (
    smoke_run, partial_workload, not_the_case, recompiled, compile_fallback, nonfinite_logits, repeat_runs,
    checked_predictions, accuracy_band, plausible_numbers, ranks_agree, mfu_reported, slowed_down, energy_source,
    flops_overridden,
)


def judge(e: Evidence) -> dict[str, Any]:
    """result.json's `verdict`: status, reasons, notes, and whether accuracy means anything."""
    findings = [f for rule in RULES for f in rule(e)]
    reasons = [text for bad, text in findings if bad]
    status = "INVALID" if reasons else "SPEED-ONLY" if e.synthetic_weights else "VALID"
    return {"status": status, "reasons": reasons,
            "notes": [text for bad, text in findings if not bad],
            "accuracy_meaningful": not (e.synthetic_weights or e.smoke or e.deviations)}
