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

from ..contracts import PeakFlops, is_lossy, validation_precision
from .metrics import Metrics
from .records import PassRecord

# With a named optimization on, the inference pass must give the plain model's prediction on at least this
# share of questions: with real weights (rounding flips near-ties only), and with random weights, whose
# near-ties flip far more often (97.9-98.5% measured on the H200).
PACKING_MIN_SAME = 0.999
RANDOM_WEIGHTS_MIN_SAME = 0.97
# A lossy precision (fp8: the inference pass's decoder GEMMs in e4m3) is judged by MLPerf Inference's rule with
# real weights: its accuracy at least this share of the same run's validation accuracy (the plain model at the
# validation precision). Its predictions are not required to equal the plain model's.
LOSSY_MIN_RELATIVE_ACCURACY = 0.99
# With random weights accuracy means nothing, so a lossy precision is held to an agreement floor with the plain
# model's predictions instead. Measured (docs/results/README.md, session 8): random Llama-2-7B weights on an H200,
# 1,710 questions, fp8 predictions (argmax over 32,000 tokens) equal the fp16 validation pass's on 16.8% (67% of
# the letters-only choices): random weights leave every question a near-tie of thousands of logits, which 32
# layers of e4m3 rounding reorder; the 2-layer smoke model agrees on 95.6%. A broken fp8 path (a wrong scale, a
# transposed weight) agrees at chance, 1 in 32,000: this floor tells the two apart with room for the spread
# between subsets. With real weights the MLPerf rule above applies instead.
LOSSY_RANDOM_WEIGHTS_MIN_SAME = 0.10


def agreement_floor(random_weights: bool, precision: str = "fp16") -> float | None:
    """The share of inference predictions that must equal the validation pass's; None when none is required
    (a lossy precision with real weights: the accuracy rule applies instead)."""
    if is_lossy(precision):
        return LOSSY_RANDOM_WEIGHTS_MIN_SAME if random_weights else None
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
    ranks: Sequence[Mapping[str, Any]] = ()  # a data-parallel run: every rank's figures (aggregate.rank_figures)
    disagreements: Sequence[str] = ()  # what ranks that must agree did not (aggregate.disagreements)
    precision: str = "fp16"  # the run's precision (a lossy one is validated at validation_precision)
    compile_cache: str | None = None  # ToolkitReport.compile_cache's state: cold, warm, partial, none
    inference_skipped: bool = False  # no inference pass (compiler none in the reference scenario)
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
    predictions must equal the plain model's (the validation pass, batch 1). A lossy precision changes what
    it computes: lossy_precision judges it."""
    if is_lossy(e.precision):
        yield from lossy_precision(e)
        return
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


def lossy_precision(e: Evidence) -> Iterator[Finding]:
    """MLPerf Inference's rule for a lower precision: with real weights the inference pass's accuracy is at least
    99% of the plain model's (the same run's validation pass); with random weights, where accuracy means nothing,
    its predictions agree with the plain model's on at least the measured floor. Both numbers are shown."""
    base = validation_precision(e.precision)
    m = e.metrics
    if m.agreement is None or m.val_acc is None:
        yield reason(f"precision {e.precision}: no {base} validation pass to check the inference pass against")
        return
    same = (f"{100 * m.agreement:.2f}% of inference predictions equal the {base} validation pass's")
    floor = agreement_floor(e.synthetic_weights or e.smoke, e.precision)
    if floor is not None:
        text = f"precision {e.precision}: {same}; required {100 * floor:.0f}% with random weights (near-ties flip)"
        yield note(text) if m.agreement >= floor else reason(text)
        return
    need = LOSSY_MIN_RELATIVE_ACCURACY * m.val_acc
    ratio = f"{100 * m.infer_acc / m.val_acc:.2f}%" if m.val_acc else "n/a"
    text = (f"precision {e.precision}: infer_acc {100 * m.infer_acc:.2f}% is {ratio} of the {base} validation "
            f"pass's {100 * m.val_acc:.2f}%; required >= {100 * LOSSY_MIN_RELATIVE_ACCURACY:.0f}% (MLPerf "
            f"Inference's rule); {same}")
    yield note(text) if m.infer_acc >= need else reason(text)


def accuracy_band(e: Evidence) -> Iterator[Finding]:
    if e.synthetic_weights:
        yield note("synthetic (random) weights: accuracy is not meaningful")
        return
    if e.smoke or e.limit is not None or e.deviations or e.reference_accuracy is None:
        return
    ref, tol = e.reference_accuracy, e.accuracy_tolerance
    # A lossy precision's inference accuracy is judged against its own validation pass (lossy_precision).
    for key in ("val_acc",) if is_lossy(e.precision) else ("infer_acc", "val_acc"):
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


def ranks_agree(e: Evidence) -> Iterator[Finding]:
    """A data-parallel run measures one workload: every rank had the same config, inputs and kind of device (the
    aggregate lists what differed, benchmarks.parallel.aggregate.SAME)."""
    if not e.ranks:
        return
    for text in e.disagreements:
        yield reason(text)
    hosts = sorted({r["host"] for r in e.ranks})
    yield note(f"data parallel: {len(e.ranks)} ranks on {len(hosts)} host(s); system throughput = all tokens / "
               "the slowest rank's time, energy = all ranks' joules, MFU against the peak of all devices")


def warm_compile_cache(e: Evidence) -> Iterator[Finding]:
    """Compile time counts in p_infer_whole (as the reference counts it): a cache an earlier run left makes it
    smaller, which a reader comparing runs must know."""
    if e.compile_cache in ("warm", "partial"):
        yield note(f"compile cache {e.compile_cache}: the compile reused artifacts of an earlier run, so compile_time "
                   "and p_infer_whole do not include a cold compile (compile_cache_dir: an empty folder gives one)")


def mfu_reported(e: Evidence) -> Iterator[Finding]:
    if e.peak.value is None:
        yield note(f"MFU not reported: {e.peak.source}")
    elif e.metrics.mfu is None and e.metrics.mfu_reason:
        yield note(f"MFU not reported: {e.metrics.mfu_reason}")


def inference_pass_ran(e: Evidence) -> Iterator[Finding]:
    """The case is measured by its inference pass: a run without one (compiler none in the reference
    scenario, as the reference without a compiler) reports the validation pass only."""
    if e.inference_skipped:
        yield reason("no inference pass (compiler none in the reference scenario: the reference runs none "
                     "without a compiler); p_infer_* and infer_acc are null")


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
    checked_predictions, accuracy_band, plausible_numbers, ranks_agree, warm_compile_cache, mfu_reported,
    slowed_down, energy_source, inference_pass_ran, flops_overridden,
)


def judge(e: Evidence) -> dict[str, Any]:
    """result.json's `verdict`: status, reasons, notes, and whether accuracy means anything."""
    findings = [f for rule in RULES for f in rule(e)]
    reasons = [text for bad, text in findings if bad]
    status = "INVALID" if reasons else "SPEED-ONLY" if e.synthetic_weights else "VALID"
    return {"status": status, "reasons": reasons,
            "notes": [text for bad, text in findings if not bad],
            "accuracy_meaningful": not (e.synthetic_weights or e.smoke or e.deviations)}
