"""VALID or INVALID, with a reason for every rule a run breaks and notes for what a reader should know.

All rules live here, one function each; `judge` runs them in order over the `Evidence` the runner
collected. A rule yields `reason(...)` (makes the run INVALID) or `note(...)` (informs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from .interfaces import PeakFlops
from .metrics import Metrics
from .passes import PassRecord

# A batching optimization must give the batch-1 prediction on at least this share of questions.
PACKING_MIN_SAME = 0.999


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
    deviations: Sequence[str] = ()  # Case.deviations(params): how the configured case differs from the case
    ranks: Sequence[Mapping[str, Any]] = ()  # a data-parallel run: every rank's figures (runner._rank_figures)


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
    if e.recompiles:
        yield reason(f"{e.recompiles} recompilation(s) during the timed inference pass")


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


def packed_predictions(e: Evidence) -> Iterator[Finding]:
    """Packs change GEMM shapes, not what is computed: they must give the batch-1 predictions."""
    if not e.packing:
        return
    n, same = e.packing["pack_tokens"], e.packing["same_predictions_as_validation"]
    if same is None:
        yield note(f"packs of <= {n} tokens: predictions not compared with batch 1 (no validation pass)")
        return
    text = (f"packs of <= {n} tokens: {100 * same:.2f}% of inference predictions equal the validation pass's "
            f"(batch 1, plain model); required {100 * PACKING_MIN_SAME:.1f}%")
    if same >= PACKING_MIN_SAME:
        yield note(text)
    elif e.synthetic_weights or e.smoke:
        yield note(text + " (not enforced: random weights make near-ties common)")
    else:
        yield reason(text)


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


RULES: tuple[Callable[[Evidence], Iterator[Finding]], ...] = (
    smoke_run, partial_workload, not_the_case, recompiled, compile_fallback, nonfinite_logits, repeat_runs, packed_predictions,
    accuracy_band, ranks_agree, mfu_reported,
)


def judge(e: Evidence) -> dict[str, Any]:
    """result.json's `verdict`: status, reasons, notes, and whether accuracy means anything."""
    findings = [f for rule in RULES for f in rule(e)]
    reasons = [text for bad, text in findings if bad]
    return {"status": "INVALID" if reasons else "VALID", "reasons": reasons,
            "notes": [text for bad, text in findings if not bad],
            "accuracy_meaningful": not (e.synthetic_weights or e.smoke or e.deviations)}
