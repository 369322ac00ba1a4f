"""Every reported number is computed here, from recorded counts and times, and nowhere else.

Names of the reference metrics are kept as they are (e2e_time, p_val_whole, ... in seconds and tokens/s).
Besides the headline `Metrics`: the accuracy detail (per subject and category, two scorings per pass:
`acc`, argmax over the whole vocabulary equals the label, the reference rule; `choice_acc`, argmax over
only the answer-choice ids, the hendrycks / lm-eval rule; groups are micro averages), core throughput per
prompt-length bin, the figures of packed forwards, and the spread of `--repeat` runs. The energy figures
(joules per phase, tokens per joule, power) are computed in benchmarks.measure.energy, re-exported here.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .energy import ENERGY_METRICS, energy_block, energy_metrics  # noqa: F401  (the energy part of the metrics)
from ..contracts import MemoryReport, PeakFlops

if TYPE_CHECKING:  # PassRecord is a plain record; importing passes would import torch
    from .records import PassRecord

GIB = 1024**3
BIN_TOKENS = 64
# Repeated runs compare the passes themselves: run 1's whole also holds the warm-up and compile, later ones don't.
THROUGHPUTS = ("p_val_pass", "p_val_core", "p_infer_pass", "p_infer_core")
REPEAT_DESIGN = ("the validation and inference passes are repeated on the model built and compiled once; "
                 "init and compile are not repeated; metrics are those of run 1; at a lossy precision (fp8) only "
                 "the inference pass is repeated (the plain model's weights were replaced after run 1's validation)")


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    assert len(predictions) == len(labels)
    return sum(int(p == y) for p, y in zip(predictions, labels)) / len(labels) if labels else 0.0


def throughput(tokens: int, seconds: float) -> float | None:
    return tokens / seconds if seconds > 0 else None


def agreement(a: Sequence[int] | None, b: Sequence[int] | None) -> tuple[float | None, int | None]:
    """Share of questions where two prediction lists agree, and how many differ (None if one is missing)."""
    if a is None or b is None:
        return None, None
    assert len(a) == len(b), "prediction lists of different lengths"
    differ = sum(x != y for x, y in zip(a, b))
    return ((len(a) - differ) / len(a) if a else None), differ


@dataclass(frozen=True)
class Metrics:
    """The headline numbers. Reference names and definitions: *_whole counts the pass's wall time plus what
    the reference counts with it (the validation warm-up; the toolkit's compile and warm-up), *_pass the
    pass's wall time alone, *_core the summed forward times. mfu is the reference's (`flops` per token x
    p_infer_core / peak); mfu_executed counts the FLOPs the configured path really executes."""

    e2e_time: float
    p_val_whole: float | None
    p_val_core: float | None
    p_infer_whole: float | None
    p_infer_core: float | None
    mfu: float | None
    mfu_reason: str | None
    val_acc: float | None
    infer_acc: float | None
    mem_used_gib: float | None
    mem_total_gib: float | None
    compile_time: float | None
    val_warmup_time: float | None
    agreement: float | None
    p_val_pass: float | None = None
    p_infer_pass: float | None = None
    mfu_executed: float | None = None
    executed_flops_per_token: float | None = None  # the inference pass's real prompts, padding excluded
    padding_flops_share: float | None = None  # padding's FLOPs / the real prompts' (toolkit right-padding)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compute(
    *,
    e2e_s: float,
    val: PassRecord | None,
    infer: PassRecord | None,
    labels: Sequence[int],
    flops_per_token: float,
    peak: PeakFlops,
    memory: MemoryReport | None,
    compile_s: float | None,
    val_warmup_s: float | None,
    executed_flops: float | None = None,
    padding_flops: float | None = None,
    prepare_in_whole: bool = True,
    nominal_unfit: str | None = None,
) -> Metrics:
    """executed_flops: FLOPs of the inference pass's forwards over the real prompts (the case model's
    forward_flops), padding_flops: the extra FLOPs of the toolkit's padding; None when the model cannot tell.
    prepare_in_whole: p_infer_whole counts `compile_s` (benchmarks.config.scenarios.prepare_in_whole).
    nominal_unfit: why `flops_per_token` does not describe this run's model (then mfu is null, with it)."""
    p_infer_core = throughput(infer.tokens, infer.core_s) if infer else None
    if p_infer_core is None:
        mfu, reason = None, "no inference pass"
    elif not peak.value:
        mfu, reason = None, peak.source
    elif nominal_unfit:
        mfu, reason = None, nominal_unfit
    else:
        mfu, reason = flops_per_token * p_infer_core / peak.value, None
    mfu_executed = (executed_flops / infer.core_s / peak.value
                    if infer and executed_flops and peak.value and infer.core_s > 0 else None)
    same = agreement(val.predictions, infer.predictions)[0] if val and infer else None
    return Metrics(
        e2e_time=e2e_s,
        # The reference counts its validation warm-up (none) and its compile + warm-up (inside its pass) in whole.
        p_val_whole=throughput(val.tokens, val.whole_s + (val_warmup_s or 0.0)) if val else None,
        p_val_core=throughput(val.tokens, val.core_s) if val else None,
        p_infer_whole=throughput(infer.tokens, infer.whole_s + ((compile_s or 0.0) if prepare_in_whole else 0.0))
        if infer else None,
        p_infer_core=p_infer_core,
        p_val_pass=throughput(val.tokens, val.whole_s) if val else None,
        p_infer_pass=throughput(infer.tokens, infer.whole_s) if infer else None,
        mfu_executed=mfu_executed,
        executed_flops_per_token=executed_flops / infer.tokens if infer and executed_flops else None,
        padding_flops_share=padding_flops / executed_flops if executed_flops and padding_flops is not None else None,
        mfu=mfu,
        mfu_reason=reason,
        val_acc=accuracy(val.predictions, labels) if val else None,
        infer_acc=accuracy(infer.predictions, labels) if infer else None,
        mem_used_gib=memory.used_gib if memory else None,
        mem_total_gib=memory.total_gib if memory else None,
        compile_time=compile_s,
        val_warmup_time=val_warmup_s,
        agreement=same,
    )


def partial(passes: Iterable[PassRecord | None], labels: Sequence[int]) -> dict[str, Any]:
    """The throughputs and accuracies of the passes finished so far (result.json `metrics_partial`)."""
    out: dict[str, Any] = {}
    for rec in passes:
        if rec is not None:
            key = "val" if rec.name == "validation" else "infer"
            out[f"p_{key}_whole"] = throughput(rec.tokens, rec.whole_s)
            out[f"p_{key}_core"] = throughput(rec.tokens, rec.core_s)
            out[f"{key}_acc"] = accuracy(rec.predictions, labels)
            out[f"{key}_nonfinite_questions"] = rec.nonfinite_questions
    return out


def forwards(rec: PassRecord) -> dict[str, Any]:
    """How a pass called the model: forwards, prompts per forward (mean and max)."""
    return {"forwards": rec.forwards, "prompts_per_forward_mean": rec.n_questions / rec.forwards if rec.forwards else None,
            "prompts_per_forward_max": rec.max_prompts_per_forward}


def packing(infer: PassRecord | None, val: PassRecord | None, required_same: float) -> dict[str, Any] | None:
    """Figures of packed forwards: forwards, prompts and tokens per forward, and the share of inference
    predictions equal to the validation pass's (batch 1, plain model). None without packs."""
    if infer is None or not infer.pack_tokens:
        return None
    same = agreement(val.predictions, infer.predictions)[0] if val is not None else None
    return {"pack_tokens": infer.pack_tokens, "forwards": infer.forwards,
            "prompts_per_forward": infer.n_questions / infer.forwards, "tokens_per_forward": infer.tokens / infer.forwards,
            "same_predictions_as_validation": same, "required_same_predictions": required_same}


# ------------------------------------------------------------------------------------------ accuracy


PASSES = ("val", "infer")  # key prefixes, as in metrics: val_acc, infer_acc


@dataclass(frozen=True)
class PassPredictions:
    """What the accuracy report needs from one pass (a PassRecord has the same two attributes)."""

    predictions: Sequence[int]
    choice_predictions: Sequence[int] | None = None


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _block(idx: Sequence[int], labels: Sequence[int], passes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"questions": len(idx)}
    for key in PASSES:
        rec = passes.get(key)
        preds = getattr(rec, "predictions", None)
        choice = getattr(rec, "choice_predictions", None)
        correct = sum(preds[i] == labels[i] for i in idx) if preds is not None else None
        c_correct = sum(choice[i] == labels[i] for i in idx) if choice is not None else None
        out[f"{key}_correct"] = correct
        out[f"{key}_acc"] = None if correct is None else _rate(correct, len(idx))
        out[f"{key}_choice_correct"] = c_correct
        out[f"{key}_choice_acc"] = None if c_correct is None else _rate(c_correct, len(idx))
    return out


def accuracy_detail(subjects: Sequence[str], labels: Sequence[int], passes: Mapping[str, Any],
           categories: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`passes` maps "val"/"infer" to an object with `predictions` and `choice_predictions` (or None)."""
    assert len(subjects) == len(labels)
    categories = categories or {}
    by_subject_idx: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(subjects):
        by_subject_idx[s].append(i)
    by_category_idx: dict[str, list[int]] = defaultdict(list)
    by_category_subjects: dict[str, int] = defaultdict(int)
    uncategorized = []
    for s in sorted(by_subject_idx):
        cat = categories.get(s)
        if cat is None:
            uncategorized.append(s)
            continue
        by_category_idx[cat].extend(by_subject_idx[s])
        by_category_subjects[cat] += 1
    val, infer = passes.get("val"), passes.get("infer")
    pred_agree, pred_differ = agreement(getattr(val, "predictions", None), getattr(infer, "predictions", None))
    choice_agree, choice_differ = agreement(getattr(val, "choice_predictions", None),
                                            getattr(infer, "choice_predictions", None))
    return {
        "overall": _block(range(len(labels)), labels, passes),
        "agreement": {"pred": pred_agree, "pred_differing": pred_differ,
                      "choice": choice_agree, "choice_differing": choice_differ},
        # categories in the order the case lists them
        "by_category": {c: {"subjects": by_category_subjects[c], **_block(by_category_idx[c], labels, passes)}
                        for c in dict.fromkeys(categories.values()) if c in by_category_idx},
        "by_subject": {s: {"category": categories.get(s), **_block(idx, labels, passes)}
                       for s, idx in sorted(by_subject_idx.items())},
        "uncategorized_subjects": uncategorized if categories else [],
    }


def accuracy_from_rows(rows: Iterable[Mapping[str, Any]], categories: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The same report from predictions.jsonl rows (subject, label, pred_val/infer, choice_val/infer)."""
    rows = list(rows)
    passes: dict[str, PassPredictions] = {}
    for key in PASSES:
        preds = [r.get(f"pred_{key}") for r in rows]
        if rows and all(p is not None for p in preds):
            choice = [r.get(f"choice_{key}") for r in rows]
            passes[key] = PassPredictions(preds, choice if all(c is not None for c in choice) else None)
    return accuracy_detail([r["subject"] for r in rows], [r["label"] for r in rows], passes, categories)


# ----------------------------------------------------------------------------------- prompt lengths


def throughput_by_length(lengths: Sequence[int], passes: Mapping[str, Sequence[float] | None],
                         bin_tokens: int = BIN_TOKENS) -> dict[str, Any]:
    """Core tokens/s per prompt-length bin [lo, lo + bin_tokens): sum(tokens) / sum(core seconds) of its prompts."""
    bins: dict[int, list[int]] = defaultdict(list)
    for i, n in enumerate(lengths):
        bins[n // bin_tokens * bin_tokens].append(i)
    los = sorted(bins)
    out: dict[str, Any] = {"bin_tokens": bin_tokens, "bin_start": los,
                           "questions": [len(bins[lo]) for lo in los], "tokens_per_s": {}}
    for name, each in passes.items():
        if each is None:
            continue
        assert len(each) == len(lengths)
        rates = []
        for lo in los:
            secs = sum(each[i] for i in bins[lo])
            rates.append(sum(lengths[i] for i in bins[lo]) / secs if secs > 0 else None)
        out["tokens_per_s"][name] = rates
    return out


# ---------------------------------------------------------------------------------------- --repeat


def repeat_run(k: int, val: PassRecord | None, infer: PassRecord, first_val: PassRecord | None,
               first_infer: PassRecord) -> dict[str, Any]:
    """One run of `--repeat`: its throughputs, non-finite counts, and predictions differing from run 1."""
    out: dict[str, Any] = {"run": k, "nonfinite_questions": {}, "predictions_differ": {}}
    for key, rec, first in (("val", val, first_val), ("infer", infer, first_infer)):
        out[f"p_{key}_pass"] = throughput(rec.tokens, rec.whole_s) if rec else None
        out[f"p_{key}_core"] = throughput(rec.tokens, rec.core_s) if rec else None
        if rec is not None:
            out["nonfinite_questions"][rec.name] = rec.nonfinite_questions
            out["predictions_differ"][rec.name] = agreement(rec.predictions, first.predictions)[1]
    return out


def spread(values: Sequence[float | None]) -> dict[str, float | None] | None:
    """min/median/max/mean and CV (sample standard deviation / mean) of the values; None when there are none."""
    xs = [v for v in values if v is not None]
    if not xs:
        return None
    mean = statistics.fmean(xs)
    cv = statistics.stdev(xs) / mean if len(xs) > 1 and mean else None
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "mean": mean, "cv": cv}


def summarize_repeats(runs: Sequence[Mapping[str, Any]], requested: int) -> dict[str, Any]:
    """The `repeat` block of result.json from per-run dicts (throughputs, nonfinite counts, agreement)."""
    return {
        "requested": requested,
        "completed": len(runs),
        "design": REPEAT_DESIGN,
        "runs": [dict(r) for r in runs],
        "spread": {key: spread([r.get(key) for r in runs]) for key in THROUGHPUTS},
    }


# The reference's final record ("Finish Info" of FlagPerf's inference/run_inference.py), keys in its order.
REFERENCE_RECORD_KEYS = ("vendor", "compiler", "precision", "batchsize", "flops", "e2e_time(second)",
                         "p_validation_whole(qps)", "p_validation_core(qps)", "p_inference_whole(qps)",
                         "*p_inference_core(qps)", "val_average_acc", "infer_average_acc")


def reference_record(*, vendor: str, compiler: str, precision: str, batch_size: int, flops_per_token: float,
                     e2e_s: float, val: PassRecord | None, infer: PassRecord | None,
                     labels: Sequence[int], computed: Metrics | None = None) -> dict[str, Any]:
    """The reference's final record, computed as the reference computes it: throughputs are prompt tokens per
    second (its "qps") rounded to 3 decimals (its cal_perf), accuracies fractions rounded to 3 decimals,
    e2e_time seconds rounded to 3 decimals, and `flops` the achieved FLOP/s: the configured FLOPs per token
    x *p_inference_core (x p_validation_core without an inference pass). A missing pass gives None (the
    reference's value for a pass it skipped). Only plain numbers, strings and None: the line
    `Finish Info: {...}` is read back with ast.literal_eval by FlagPerf's result collector. `computed`: the
    run's Metrics, whose *_whole already count what the reference's whole counts (its warm-up and compile)."""

    def rounded(value: float | None) -> float | None:
        return round(value, 3) if value is not None and value == value and value != float("inf") else None

    def rate(tokens: int, seconds: float) -> float | None:
        return rounded(throughput(tokens, seconds))

    def acc(p: PassRecord | None) -> float | None:
        return round(accuracy(p.predictions, labels), 3) if p is not None and labels else None

    p_val_whole = rounded(computed.p_val_whole) if computed else rate(val.tokens, val.whole_s) if val else None
    p_val_core = rate(val.tokens, val.core_s) if val else None
    p_infer_whole = rounded(computed.p_infer_whole) if computed else rate(infer.tokens, infer.whole_s) if infer else None
    p_infer_core = rate(infer.tokens, infer.core_s) if infer else None
    per_s = p_infer_core if p_infer_core is not None else p_val_core
    values = (vendor, compiler, precision, batch_size, None if per_s is None else flops_per_token * per_s,
              round(float(e2e_s), 3), p_val_whole, p_val_core, p_infer_whole, p_infer_core, acc(val), acc(infer))
    return dict(zip(REFERENCE_RECORD_KEYS, values))
