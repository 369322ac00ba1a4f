"""All reported numbers are computed here, from recorded counts and times, and nowhere else.

Names of the reference metrics are kept as they are (e2e_time, p_val_whole, ... in seconds and tokens/s).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from . import accuracy as _accuracy
from .interfaces import MemoryReport, PeakFlops
from .passes import PassRecord

GIB = 1024**3


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    assert len(predictions) == len(labels)
    return sum(int(p == y) for p, y in zip(predictions, labels)) / len(labels) if labels else 0.0


def throughput(tokens: int, seconds: float) -> float | None:
    return tokens / seconds if seconds > 0 else None


@dataclass(frozen=True)
class Metrics:
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
) -> Metrics:
    p_infer_core = throughput(infer.tokens, infer.core_s) if infer else None
    if p_infer_core is None:
        mfu, reason = None, "no inference pass"
    elif not peak.value:
        mfu, reason = None, peak.source
    else:
        mfu, reason = flops_per_token * p_infer_core / peak.value, None
    agreement = _accuracy.agreement(val.predictions, infer.predictions)[0] if val and infer else None
    return Metrics(
        e2e_time=e2e_s,
        p_val_whole=throughput(val.tokens, val.whole_s) if val else None,
        p_val_core=throughput(val.tokens, val.core_s) if val else None,
        p_infer_whole=throughput(infer.tokens, infer.whole_s) if infer else None,
        p_infer_core=p_infer_core,
        mfu=mfu,
        mfu_reason=reason,
        val_acc=accuracy(val.predictions, labels) if val else None,
        infer_acc=accuracy(infer.predictions, labels) if infer else None,
        mem_used_gib=memory.used_gib if memory else None,
        mem_total_gib=memory.total_gib if memory else None,
        compile_time=compile_s,
        val_warmup_time=val_warmup_s,
        agreement=agreement,
    )
