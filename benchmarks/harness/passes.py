"""One timed pass over the workload: per forward, synchronize, time it, synchronize (core); the whole loop,
host-to-device copies and scoring included, is `whole`. A forward is one prompt (the reference), or with
`pack_tokens` > 0 a pack of consecutive prompts of at most that many tokens (see `plan_packs`).

Token ids live in one host buffer (pinned when the device is not the CPU) so copies are asynchronous;
predictions and the non-finite count stay on the device until the end of the pass, so the loop adds no
host syncs beyond the two the reference timing rule needs.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import torch

from ..measure.records import PassRecord
from .faults import PromptOutOfMemory, is_out_of_memory
from ..contracts import ModelFn, hooks

log = logging.getLogger("benchmarks")


def plan_packs(lengths: Sequence[int], pack_tokens: int) -> list[tuple[int, int]]:
    """Consecutive prompts [i, j) per forward: greedily as many as fit in pack_tokens tokens (a longer prompt
    goes alone); pack_tokens 0 means one prompt per forward. Order is kept, so results map back 1:1."""
    if pack_tokens <= 0:
        return [(i, i + 1) for i in range(len(lengths))]
    plan, start, used = [], 0, 0
    for i, n in enumerate(lengths):
        if i > start and used + n > pack_tokens:
            plan.append((start, i))
            start, used = i, 0
        used += n
    if start < len(lengths):
        plan.append((start, len(lengths)))
    return plan


class HostBatch:
    """All prompts' token ids in one (pinned) host tensor, sliced per prompt without copies."""

    def __init__(self, prompts: Sequence[Sequence[int]], device: torch.device):
        self.lengths = [len(p) for p in prompts]
        self.offsets = [0]
        for n in self.lengths:
            self.offsets.append(self.offsets[-1] + n)
        flat = torch.tensor([t for p in prompts for t in p], dtype=torch.int64)
        last = torch.tensor([n - 1 for n in self.lengths], dtype=torch.int64)
        self.pinned = False
        if device.type != "cpu":
            try:
                flat, last = flat.pin_memory(), last.pin_memory()
                self.pinned = True
            except RuntimeError:  # no pinned memory on this backend: copies are then synchronous
                pass
        self.flat, self.last = flat, last
        self.device = device

    def __len__(self) -> int:
        return len(self.lengths)

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.get_call(i, i + 1, self.last)

    def pack_last(self, plan: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Each prompt's last position within its forward's input, for `get_call` (host, pinned like flat)."""
        local = torch.tensor([self.offsets[k + 1] - self.offsets[i] - 1 for i, j in plan for k in range(i, j)],
                             dtype=torch.int64)
        return local.pin_memory() if self.pinned else local

    def get_call(self, i: int, j: int, local_last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts [i, j) as one input [1, T] (a view: they are contiguous in flat) and their last positions."""
        ids = self.flat[self.offsets[i] : self.offsets[j]].view(1, -1)
        last = local_last[i:j]
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
    pack_tokens: int = 0,
    # the forwards as [i, j) prompt ranges, when the caller planned them already (plan_packs(lengths, pack_tokens))
    plan: Sequence[tuple[int, int]] | None = None,
) -> PassRecord:
    n = len(batch)
    plan = plan_packs(batch.lengths, pack_tokens) if plan is None else plan
    local_last = batch.pack_last(plan) if pack_tokens > 0 else batch.last
    streamed = 0
    device = batch.device
    preds = torch.empty(n, dtype=torch.int64, device=device)
    choices = torch.tensor(list(choice_ids), dtype=torch.int64, device=device) if choice_ids else None
    choice_preds = torch.empty(n, dtype=torch.int64, device=device) if choice_ids else None
    nonfinite = torch.zeros(n, dtype=torch.bool, device=device)
    core_each = [0.0] * n
    tokens = sum(batch.lengths)
    tokens_done = 0
    # A callable that runs untimed work inside a call (the reference toolkit's warm-up forwards) reports its
    # seconds through take_untimed_s(): subtracted from that call's core time, kept in whole.
    take_untimed_s = hooks.untimed_seconds(fn)
    synchronize()
    whole_start = time.perf_counter()
    with torch.inference_mode():
        for i, j in plan:
            ids, last = batch.get_call(i, j, local_last)
            synchronize()
            t0 = time.perf_counter()
            try:  # free in the loop (zero-cost try); names the question and its length on OOM
                logits = fn(ids, last)
                synchronize()
            except (torch.OutOfMemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc):
                    raise
                raise PromptOutOfMemory(name, i, n, ids.shape[1], exc, prompts=j - i) from exc
            elapsed = time.perf_counter() - t0
            if take_untimed_s is not None:
                elapsed -= take_untimed_s()
            call_tokens = batch.offsets[j] - batch.offsets[i]
            for k in range(i, j):
                core_each[k] = elapsed * batch.lengths[k] / call_tokens
            # Scoring: argmax over the whole vocabulary (the reference rule), kept on the device.
            preds[i:j] = logits.argmax(-1)
            nonfinite[i:j] = ~torch.isfinite(logits).all(-1)
            if choices is not None:
                choice_preds[i:j] = choices[logits[:, choices].argmax(-1)]
            chunk_done = j // log_freq > i // log_freq or j == n
            tokens_done += call_tokens
            if progress is not None:
                progress(j, n, time.perf_counter() - whole_start, tokens_done)
            elif chunk_done:
                log.info("%s: %d/%d questions", name, j, n)
            if stream is not None and chunk_done:
                # One small device-to-host copy per log_freq questions; the loop syncs per forward anyway.
                stream(streamed, preds[streamed:j].tolist())
                streamed = j
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
        forwards=len(plan),
        pack_tokens=pack_tokens,
        max_prompts_per_forward=max((j - i for i, j in plan), default=0),
    )
