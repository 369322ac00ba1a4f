"""The vendor contract: one accelerator family (device, synchronize, memory monitor, peak FLOP/s, toolkits)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, runtime_checkable

from .toolkit import Toolkit

if TYPE_CHECKING:
    import torch

# Attention over prompts packed back to back (ragged batches), offered by a vendor that has a fast kernel:
# fn(q [Tq, H, D], k [Tk, Hkv, D], v [Tk, Hkv, D], cu_q int32 [P+1], cu_k int32 [P+1], max_q, max_k,
#    causal: bool, scale: float | None) -> [Tq, H, D].
# Query block i (rows cu_q[i]..cu_q[i+1]-1) attends only to key block i; causal: the blocks are the same
# tokens, each row sees itself and earlier rows of its block. max_q / max_k bound the longest block (a
# kernel may launch tiles for that length; a bound below a block's length leaves rows unwritten). Hkv may
# divide H (grouped-query attention).
RaggedAttention = Callable[..., "torch.Tensor"]



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
    """A context manager around the whole run (model load, both passes, compile); used once.

    `__enter__` starts measuring (e.g. a sampling thread, or resetting the allocator's peak counters) and
    returns the monitor. `__exit__` stops all background work (threads, library handles), also when the
    body raised, and never swallows the exception (returns None/False). `report()` is valid after
    `__exit__`, may be called several times and returns the same peak: `used_gib` > 0, and
    `used_gib <= total_gib` when the total is known.
    """

    def __enter__(self) -> "MemoryMonitor": ...

    def __exit__(self, *exc: object) -> None: ...

    def report(self) -> MemoryReport: ...


@dataclass(frozen=True)
class PeakFlops:
    """Dense peak FLOP/s for one device and precision; value None when unknown (MFU is then null).

    value: FLOP/s > 0 (never 0 and never a guess for another device), or None.
    source: never empty: where the number comes from (datasheet, YAML key), or why there is none.
    """

    value: float | None
    source: str



# What `Vendor.toolkits()` maps names to: called as factory(vendor_options, vendor).
ToolkitFactory = Callable[[Any, "Vendor"], Toolkit]


@runtime_checkable
class Vendor(Protocol):
    """One accelerator family: `VENDOR`, an instance, in `vendors/<name>/__init__.py` (or an entry point).

    Methods other than `configure` must not change state the run depends on; all may be called more than
    once. Copy vendors/template/ for a minimal, working implementation.
    """

    # The vendor's name: the folder / entry-point name it is registered under, written into result.json.
    name: str
    # A frozen dataclass: the keys this vendor accepts in its vendor YAML, on top of the harness keys
    # (benchmarks.config.RunConfig). Every field has a default (`Options()` constructs) and is documented
    # with `benchmarks.config.doc`; no field may share a name with a harness or case key. Inherit
    # `benchmarks.toolkits.InductorOptions` to offer the inductor toolkit (or use config.NoOptions).
    Options: type

    def configure(self, options: Any) -> None:
        """Receive the merged, frozen `Options` instance (vendor YAML + --set), once, before the run.

        Called by the CLI right after the config is loaded, before `is_available` and everything else.
        Keep the options for later members and apply process-wide settings here (backend flags, the
        device index, thread counts); do not allocate device memory yet.
        """
        ...

    def is_available(self) -> bool:
        """True when this machine has a usable device for the vendor; never raises.

        The CLI refuses to run a vendor whose device is missing, and the contract tests skip it.
        """
        ...

    def device(self) -> "torch.device":
        """The torch device the case builds the model on and the harness copies token ids to.

        The same device on every call (after `configure`); the harness never picks a device itself.
        """
        ...

    def device_name(self) -> str:
        """Human name of the device, e.g. 'NVIDIA H100 80GB HBM3'; recorded in the result (non-empty)."""
        ...

    def synchronize(self) -> None:
        """Block the host until all work queued on `device()` has finished (torch.cuda.synchronize, ...).

        The harness calls it before and after every timed forward: a no-op on an asynchronous device
        would time kernel launches, not the work. On a synchronous device (CPU) a no-op is correct.
        """
        ...

    def supports(self, precision: str) -> bool:
        """Whether the device can run the model in `precision`; answers (never raises) for all PRECISIONS.

        The runner refuses a configured precision the vendor does not support, naming the vendor.
        """
        ...

    def memory_monitor(self) -> MemoryMonitor:
        """A new, unentered `MemoryMonitor` per call; the harness wraps the whole run in it.

        Its `used_gib` is the peak device memory in use over the run (`mem_used_gib`): device memory on
        an accelerator, the process's resident memory where the device is the host.
        """
        ...

    def peak_flops(self, precision: str, tf32: bool) -> PeakFlops:
        """Dense (no sparsity) peak FLOP/s of `device_name()` at `precision`, for MFU.

        For fp32 with tf32=True the TF32 tensor-core peak; `tf32` does not matter for fp16/bf16. Unknown
        device or precision: `PeakFlops(None, "why")`, never 0 and never another device's number. The
        table must be consistent: fp16 and bf16 >= fp32, and fp32 with TF32 >= fp32 without, when known.
        """
        ...

    def toolkits(self) -> Mapping[str, ToolkitFactory]:
        """The toolkits this vendor offers, by the name the config key `compiler` selects.

        E.g. {'none': Eager, 'inductor': Inductor} from `benchmarks.toolkits`. Offer 'none' (the plain
        model) so every vendor can run eager; an unknown `compiler` fails listing these names.
        """
        ...

    def environment(self) -> Mapping[str, Any]:
        """Facts for result.json's `environment`: driver/runtime versions, device count, ...

        JSON-serializable values; when an optional library is missing, record why instead of raising.
        """
        ...
