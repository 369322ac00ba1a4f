"""The contracts between the harness, the cases and the vendors.

A *vendor* is one object implementing `Vendor`: where tensors live, how to wait for the device, how to
measure its memory, its peak FLOP/s, and which toolkits (compilers/runtimes) it offers. A *toolkit* is one
class implementing `Toolkit`: it takes the case's plain model callable and returns an adapted callable with
the same contract, after compiling and warming it up.

The harness only talks to these Protocols and never branches on a vendor's name. Vendors are found by the
registry (`benchmarks.registry`): a folder `vendors/<name>/` (or one in $LLAMA_BENCH_VENDOR_PATH) whose
`__init__.py` defines `VENDOR`, or an installed package that declares an entry point in the group
`llama_bench.vendors`. Each vendor also needs its YAML, `configs/<case>/vendor_config/<name>_configurations.yaml`
or, shipped with the vendor, `<vendor folder>/configs/<case>/<name>_configurations.yaml`.

The order of calls in one run (benchmarks/cli.py, benchmarks/runner.py):
  registry: get_vendor(name) -> VENDOR (its members are checked against `VENDOR_MEMBERS`)
  cli:      load_config(..., vendor.Options) -> vendor.configure(options) -> vendor.is_available()
  runner:   vendor.supports(precision) -> toolkit = vendor.toolkits()[compiler](options, vendor)
            -> vendor.device_name(), vendor.environment() (result header)
            -> with vendor.memory_monitor(): build the model on vendor.device(); validation pass;
               toolkit.prepare(model, calls) (timed as compile); inference pass
               (vendor.synchronize() around every timed forward)
            -> toolkit.report(), vendor.peak_flops(precision, tf32), monitor.report()
Any vendor must pass `pytest tests/contract --vendor <name>`; docs/adding_a_vendor.md is the walk-through.
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
# With the run key pack_tokens > 0 the inference pass also calls it with a pack: input_ids [1, T] holding
# P > 1 prompts back to back, last_pos [P] the last position of each (the last is T - 1), logits [P, vocab]
# each as if its prompt ran alone. A toolkit that right-pads a pack appends the padding as more prompts,
# none longer than the run's longest prompt (benchmarks.toolkits.PadRight does): the model may assume no
# prompt of a pack is longer than that (the runner tells it so through the case model's enable_packing).
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


@dataclass(frozen=True)
class ToolkitReport:
    """What a toolkit did, for the result file.

    name: the toolkit name as configured. recompiles: compilations that happened after `prepare`
    returned (a count >= 0; anything but 0 makes the run INVALID). optimizations: the named
    optimizations in effect. details: anything else worth recording (compile options, graph counts);
    JSON-serializable, it goes into result.json.
    """

    name: str
    recompiles: int = 0
    optimizations: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Toolkit(Protocol):
    """Adapts the case's plain model callable for fast inference (compile, graphs, padding...).

    A toolkit is a class (a `ToolkitFactory`) constructed as `Toolkit(options, vendor)`: `options` is the
    vendor's configured `Options` instance (the same object `Vendor.configure` received) and `vendor` the
    Vendor, e.g. for `vendor.device()` and `vendor.synchronize()`. One instance serves one run.
    `benchmarks.toolkits` has `Eager` ('none') and `Inductor` ('inductor', torch.compile) for any PyTorch
    device; subclass them (see vendors/nvidia/inductor.py) rather than starting from scratch.
    """

    name: str  # the toolkit's name, as the config key `compiler` selects it

    def prepare(self, model_fn: ModelFn, warmup_calls: Sequence[Sequence[int]]) -> ModelFn:
        """Compile and warm up; return the adapted callable. Timed by the harness as `compile_time`.

        Called once, after the validation pass, with the plain model already on `vendor.device()`.
        `warmup_calls` lists every forward the timed pass will make, each as the prompt lengths it holds
        ((n,) for one prompt; several when packing). The returned callable keeps the `ModelFn` contract
        (logits of position last_pos, on the device, predictions equal to the plain model's up to
        precision) and must not compile anything new when called later with any of those calls
        (`benchmarks.toolkits.warmup_shapes` picks one call per distinct input shape). The timed pass calls
        it under torch.inference_mode with input tensors made there: warm up the same way (compiled graphs
        guard on it). Synchronize the device before returning, so queued warm-up work is not billed to
        the first timed prompt.
        """
        ...

    def report(self) -> ToolkitReport:
        """After the timed pass: recompiles since `prepare` returned, and the optimizations in effect."""
        ...


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

    def device(self) -> torch.device:
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


def protocol_members(proto: type) -> tuple[str, ...]:
    """The names a Protocol declares (its annotated attributes, then its public methods), in order."""
    names = list(vars(proto).get("__annotations__", {}))
    names += [k for k, v in vars(proto).items() if callable(v) and not k.startswith("_")]
    return tuple(dict.fromkeys(names))


# What the registry checks a VENDOR for (and the contract tests, in depth).
VENDOR_MEMBERS = protocol_members(Vendor)
TOOLKIT_MEMBERS = protocol_members(Toolkit)
