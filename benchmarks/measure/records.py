"""The records a run measures, as plain serializable data (no torch): what one timed pass recorded. Produced by
benchmarks.harness, read by the metrics, the verdict, the aggregate of a data-parallel run and the writers."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PassRecord:
    """What one pass measured. Times in seconds; `core_s_each[i]` is prompt i's forward time (in a pack, the
    pack's time shared out by token count)."""

    name: str
    n_questions: int
    tokens: int
    core_s: float
    whole_s: float
    predictions: tuple[int, ...]
    core_s_each: tuple[float, ...]
    nonfinite_questions: int
    # argmax over only the answer-choice ids (hendrycks/lm-eval scoring), when the case names them
    choice_predictions: tuple[int, ...] | None = None
    forwards: int = 0  # model calls: n_questions at batch 1, the number of packs when packing
    pack_tokens: int = 0
    max_prompts_per_forward: int = 1
