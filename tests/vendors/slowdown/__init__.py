"""A test vendor for measuring the regression gate: the cpu vendor whose toolkits make every forward of the
inference pass slower by a known fraction of its own time (`slowdown: 0.15` = 15% more time per forward).

Test-only by construction: it lives under tests/vendors/ (found through $LLAMA_BENCH_VENDOR_PATH, as
tools/gate_noise_check.sh and the tests set it), and the key `slowdown` is declared by this vendor's Options
alone, so any other vendor's YAML or `--set slowdown=...` on another vendor is refused as an unknown key.
The wait (a busy wait: it costs a core, as a slower forward would) is proportional to the forward just measured, so the slowdown is the same fraction whatever the
machine's load; the validation pass (the plain model) is untouched.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from benchmarks.config import doc
from benchmarks.interfaces import ModelFn
from benchmarks.toolkits import Eager, Inductor
from vendors.cpu import CpuOptions, CpuVendor


@dataclass(frozen=True)
class SlowdownOptions(CpuOptions):
    slowdown: float = doc("test only: each inference forward waits this fraction of its own time (0: off)",
                          default=0.0, bounds=(0.0, 10.0, "a fraction between 0 and 10"))


class Slowed(torch.nn.Module):
    """The toolkit's callable, then a wait of `fraction` x the time that call took."""

    def __init__(self, fn: ModelFn, fraction: float):
        super().__init__()
        self.fn, self.fraction = fn, fraction

    def forward(self, input_ids: torch.Tensor, last_pos: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.fn(input_ids, last_pos)
        now = time.perf_counter()
        until = now + self.fraction * (now - start)
        while now < until:  # a busy wait: time.sleep overshoots by ~0.1 ms, near the smoke forward's 2 ms
            now = time.perf_counter()
        return out


class _Slow:
    """Mixin for a toolkit class: its prepared callable is wrapped in Slowed when `slowdown` is on."""

    def __init__(self, options: SlowdownOptions, vendor: Any):
        super().__init__(options, vendor)
        self.fraction = options.slowdown

    def prepare(self, model_fn: ModelFn, warmup_calls: Sequence[Sequence[int]]) -> ModelFn:
        fn = super().prepare(model_fn, warmup_calls)
        return Slowed(fn, self.fraction) if self.fraction > 0 else fn


class SlowEager(_Slow, Eager):
    pass


class SlowInductor(_Slow, Inductor):
    pass


class SlowdownVendor(CpuVendor):
    name = "slowdown"
    Options = SlowdownOptions

    def toolkits(self) -> Mapping[str, Any]:
        return {"none": SlowEager, "inductor": SlowInductor}


VENDOR = SlowdownVendor()
