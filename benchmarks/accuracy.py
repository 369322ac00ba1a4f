"""Accuracy detail from the recorded predictions: per subject, per category, choice-restricted, agreement.

Two scorings per pass: `acc` (argmax over the whole vocabulary equals the label: the reference rule) and
`choice_acc` (argmax over only the answer-choice ids equals the label: the hendrycks / lm-eval rule).
Groups are micro averages: correct answers / questions of the group. The case supplies the subject ->
category mapping (`CASE.categories`); the harness knows no subject names.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

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


def agreement(a: Sequence[int] | None, b: Sequence[int] | None) -> tuple[float | None, int | None]:
    """Share of questions where two prediction lists agree, and how many differ (None if one is missing)."""
    if a is None or b is None:
        return None, None
    assert len(a) == len(b), "prediction lists of different lengths"
    differ = sum(x != y for x, y in zip(a, b))
    return ((len(a) - differ) / len(a) if a else None), differ


def detail(subjects: Sequence[str], labels: Sequence[int], passes: Mapping[str, Any],
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


def from_rows(rows: Iterable[Mapping[str, Any]], categories: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The same report from predictions.jsonl rows (subject, label, pred_val/infer, choice_val/infer)."""
    rows = list(rows)
    passes: dict[str, PassPredictions] = {}
    for key in PASSES:
        preds = [r.get(f"pred_{key}") for r in rows]
        if rows and all(p is not None for p in preds):
            choice = [r.get(f"choice_{key}") for r in rows]
            passes[key] = PassPredictions(preds, choice if all(c is not None for c in choice) else None)
    return detail([r["subject"] for r in rows], [r["label"] for r in rows], passes, categories)
