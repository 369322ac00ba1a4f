"""One timed pass over the workload: per prompt, synchronize, time the forward, synchronize (core);
the whole loop, host-to-device copies and scoring included, is `whole`.

Token ids live in one host buffer (pinned when the device is not the CPU) so copies are asynchronous;
predictions and the non-finite count stay on the device until the end of the pass, so the loop adds no
host syncs beyond the two the reference timing rule needs.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .faults import PromptOutOfMemory
from .interfaces import ModelFn

log = logging.getLogger("benchmarks")


@dataclass(frozen=True)
class PassRecord:
    """What one pass measured. Times in seconds; `core_s_each[i]` is prompt i's forward time."""

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


class HostBatch:
    """All prompts' token ids in one (pinned) host tensor, sliced per prompt without copies."""

    def __init__(self, prompts: Sequence[Sequence[int]], device: torch.device):
        self.lengths = [len(p) for p in prompts]
        self.offsets = [0]
        for n in self.lengths:
            self.offsets.append(self.offsets[-1] + n)
        flat = torch.tensor([t for p in prompts for t in p], dtype=torch.int64)
        last = torch.tensor([n - 1 for n in self.lengths], dtype=torch.int64)
        if device.type != "cpu":
            try:
                flat, last = flat.pin_memory(), last.pin_memory()
            except RuntimeError:  # no pinned memory on this backend: copies are then synchronous
                pass
        self.flat, self.last = flat, last
        self.device = device

    def __len__(self) -> int:
        return len(self.lengths)

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.flat[self.offsets[i] : self.offsets[i + 1]].view(1, -1)
        last = self.last[i : i + 1]
        if self.device.type == "cpu":
            # A view into the big buffer has a storage offset that compiled graphs guard on; a copy
            # (cheap next to a forward) looks like any other input.
            return ids.clone(), last.clone()
        return ids.to(self.device, non_blocking=True), last.to(self.device, non_blocking=True)


def run_pass(
    name: str,
    fn: ModelFn,
    batch: HostBatch,
    synchronize: Callable[[], None],
    log_freq: int = 100,
    # progress(questions_done, n, elapsed_s, tokens_done): host arithmetic only, no device sync
    progress: Callable[[int, int, float, int], None] | None = None,
    choice_ids: Sequence[int] | None = None,
    # stream(first_index, predictions): every `log_freq` questions, the new predictions, for a crash-safe log
    stream: Callable[[int, list[int]], None] | None = None,
) -> PassRecord:
    n = len(batch)
    streamed = 0
    device = batch.device
    preds = torch.empty(n, dtype=torch.int64, device=device)
    choices = torch.tensor(list(choice_ids), dtype=torch.int64, device=device) if choice_ids else None
    choice_preds = torch.empty(n, dtype=torch.int64, device=device) if choice_ids else None
    nonfinite = torch.zeros(n, dtype=torch.bool, device=device)
    core_each = [0.0] * n
    tokens = sum(batch.lengths)
    tokens_done = 0
    synchronize()
    whole_start = time.perf_counter()
    with torch.inference_mode():
        for i in range(n):
            ids, last = batch.get(i)
            synchronize()
            t0 = time.perf_counter()
            try:  # free in the loop (zero-cost try); names the question and its length on OOM
                logits = fn(ids, last)
                synchronize()
            except torch.OutOfMemoryError as exc:
                raise PromptOutOfMemory(name, i, n, batch.lengths[i], exc) from exc
            core_each[i] = time.perf_counter() - t0
            # Scoring: argmax over the whole vocabulary (the reference rule), kept on the device.
            preds[i] = logits[0].argmax()
            nonfinite[i] = ~torch.isfinite(logits[0]).all()
            if choices is not None:
                choice_preds[i] = choices[logits[0, choices].argmax()]
            chunk_done = (i + 1) % log_freq == 0 or i + 1 == n
            if progress is not None:
                tokens_done += batch.lengths[i]
                progress(i + 1, n, time.perf_counter() - whole_start, tokens_done)
            elif chunk_done:
                log.info("%s: %d/%d questions", name, i + 1, n)
            if stream is not None and chunk_done:
                # One small device-to-host copy per log_freq questions; the loop syncs per prompt anyway.
                stream(streamed, preds[streamed : i + 1].tolist())
                streamed = i + 1
        predictions = tuple(preds.tolist())
        bad = int(nonfinite.sum().item())
        choice_predictions = tuple(choice_preds.tolist()) if choice_preds is not None else None
    synchronize()
    whole = time.perf_counter() - whole_start
    return PassRecord(
        name=name,
        n_questions=n,
        tokens=tokens,
        core_s=sum(core_each),
        whole_s=whole,
        predictions=predictions,
        core_s_each=tuple(core_each),
        nonfinite_questions=bad,
        choice_predictions=choice_predictions,
    )
