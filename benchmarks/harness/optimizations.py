"""The harness's side of named optimizations: which of a case's declared optimizations a config switches
on, and what follows from them (packed forwards, labels, memory hints). The harness loops over the
declarations (benchmarks.interfaces.Optimization) and never names one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..config import Config
from ..contracts import Optimization, OptimizationContext


@dataclass(frozen=True)
class Active:
    """One optimization the run switches on, with its options."""

    opt: Optimization
    options: Any


def active(declared: Sequence[Optimization], config: Config) -> list[Active]:
    """The declared optimizations the config switches on, in declaration order; one whose `needs` are not
    all on is inert and left out."""
    precision = config.run.effective_precision
    on = {o.name for o in declared if o.switched_on(config.optimizations[o.name], precision)}
    return [Active(o, config.optimizations[o.name]) for o in declared if o.name in on and set(o.needs) <= on]


def pack_tokens(run_active: Sequence[Active]) -> int:
    """Tokens per packed forward of the inference pass (0: one prompt per forward)."""
    return max((a.opt.pack_tokens(a.options) for a in run_active), default=0)


def apply_all(model: Any, run_active: Sequence[Active], ctx: OptimizationContext) -> None:
    """Switch each on in the built model, in declaration order (after the validation pass)."""
    for a in run_active:
        a.opt.apply(model, a.options, ctx)


def labels(run_active: Sequence[Active]) -> list[str]:
    return [label for a in run_active for label in a.opt.labels(a.options)]


def memory_hints(run_active: Sequence[Active]) -> list[str]:
    return [hint for a in run_active for hint in a.opt.memory_hints(a.options)]


def off_without_compiler(run_active: Sequence[Active]) -> list[str]:
    """The --set switches that must go with --set compiler=none (the config refuses them uncompiled)."""
    return [a.opt.off_setting() for a in run_active if a.opt.needs_compiler]
