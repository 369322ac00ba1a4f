"""The contracts between the harness, the cases and the vendors.

A *vendor* is one object implementing `Vendor`: where tensors live, how to wait for the device, how to
measure its memory, its peak FLOP/s, and which toolkits (compilers/runtimes) it offers. A *toolkit* is one
class implementing `Toolkit`: it takes the case's plain model callable and returns an adapted callable with
the same contract, after compiling and warming it up.

The harness only talks to these Protocols and never branches on a vendor's name. Vendors are found by the
registry (`benchmarks.registry`): a folder `vendors/<name>/` whose `__init__.py` defines `VENDOR`, or an
installed package that declares an entry point in the group `llama_bench.vendors`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import torch

PRECISIONS = ("fp16", "bf16", "fp32")
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

# The model callable of a case: (input_ids [B, L] int64, last_pos [B] int64) -> logits [B, vocab].
# Row b's logits are those of position last_pos[b]. The model is causal, so token ids to the right of
# last_pos (padding) do not change the result: a toolkit may right-pad lengths to reuse compiled shapes.
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MemoryReport:
    """Peak device memory over a monitored span.

    used_gib: the peak memory in use on the device over the span (the metric `mem_used_gib`).
    total_gib: the device's total memory, None when unknown.
    source: how `used_gib` was measured, e.g. "nvml:device", "rss".
    details: further named peaks in GiB (per-process, allocator counters, ...), for the result file.
    samples: how many samples the monitor took (0 for counter-based monitors).
    """

    used_gib: float
    total_gib: float | None
    source: str
    details: Mapping[str, float] = field(default_factory=dict)
    samples: int = 0


@runtime_checkable
class MemoryMonitor(Protocol):
    """A context manager around the whole run; `report()` is valid after `__exit__`.

    It must stop its background work (threads, handles) in `__exit__`, also when the body raised.
    """

    def __enter__(self) -> "MemoryMonitor": ...

    def __exit__(self, *exc: object) -> None: ...

    def report(self) -> MemoryReport: ...


@dataclass(frozen=True)
class PeakFlops:
    """Dense peak FLOP/s for one device and precision; value None when unknown (MFU is then null)."""

    value: float | None
    source: str  # where the number comes from, or why there is none


@dataclass(frozen=True)
class ToolkitReport:
    """What a toolkit did, for the result file.

    name: the toolkit name as configured. recompiles: compilations that happened after warm-up
    (must be 0 for a valid run; -1 when the toolkit cannot count them). optimizations: the named
    optimizations in effect. details: anything else worth recording (compile options, graph counts).
    """

    name: str
    recompiles: int = 0
    optimizations: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


class Toolkit(Protocol):
    """Adapts the case's plain model callable for fast inference (compile, graphs, padding...).

    Construction takes the merged, frozen config's toolkit options (a Mapping from the vendor YAML) and
    the vendor. `prepare` compiles and warms up; the harness times it as `compile_time`. After `prepare`,
    calling the returned function must not compile anything new for any length in `warmup_lengths`.
    """

    name: str

    def prepare(self, model_fn: ModelFn, warmup_lengths: Sequence[int]) -> ModelFn:
        """Return the adapted callable, compiled and warmed up for every length the run will see."""
        ...

    def report(self) -> ToolkitReport:
        """Call after the timed pass: recompile count and the optimizations in effect."""
        ...


@runtime_checkable
class Vendor(Protocol):
    """One accelerator family. Implementations live in `vendors/<name>/__init__.py` as `VENDOR`."""

    name: str
    # The dataclass of the keys this vendor accepts in its vendor YAML (on top of the harness keys);
    # inherit `benchmarks.toolkits.InductorOptions` to offer the inductor toolkit.
    Options: type

    def configure(self, options: Any) -> None:
        """Receive the merged, frozen `Options` instance before anything else is called."""
        ...

    def is_available(self) -> bool:
        """True when this machine has a usable device for the vendor (used for the --vendor default)."""
        ...

    def device(self) -> torch.device:
        """The torch device tensors and the model are placed on."""
        ...

    def device_name(self) -> str:
        """Human name of the device, e.g. 'NVIDIA H100 80GB HBM3'; used for the peak table."""
        ...

    def synchronize(self) -> None:
        """Block until all work queued on the device has finished. Core timing depends on it."""
        ...

    def supports(self, precision: str) -> bool:
        """Whether the device can run the model in `precision` (one of PRECISIONS)."""
        ...

    def memory_monitor(self) -> MemoryMonitor:
        """A fresh monitor; the harness wraps the whole run in it."""
        ...

    def peak_flops(self, precision: str, tf32: bool) -> PeakFlops:
        """Dense peak FLOP/s for this device at `precision` (fp32 with tf32=True: the TF32 peak)."""
        ...

    def toolkits(self) -> Mapping[str, Callable[[Mapping[str, Any], "Vendor"], Toolkit]]:
        """Toolkit factories by name, e.g. {'none': Eager, 'inductor': Inductor}."""
        ...

    def environment(self) -> Mapping[str, Any]:
        """Driver/runtime versions and device count, recorded in the result."""
        ...
