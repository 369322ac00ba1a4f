"""The contracts between the harness, the cases and the vendors.

A *case* is one object implementing `Case`: what is measured. It owns its parameters (parameters.yaml),
its data (a `Workload` of tokenized `Sample`s with labels), its model (a `ModelFn` module built on the
vendor's device), and its named optimizations (`Optimization`s the harness switches on between the
validation and the inference pass). Cases are registered by name in `benchmarks.registry`.

A *vendor* is one object implementing `Vendor`: where tensors live, how to wait for the device, how to
measure its memory, its peak FLOP/s, and which toolkits (compilers/runtimes) it offers. A *toolkit* is one
class implementing `Toolkit`: it takes the case's plain model callable and returns an adapted callable with
the same contract, after compiling and warming it up.

The harness only talks to these Protocols and never branches on a case's, vendor's or optimization's name.
Vendors are found by the registry (`benchmarks.registry`): a folder `vendors/<name>/` (or one in
$LLAMA_BENCH_VENDOR_PATH) whose `__init__.py` defines `VENDOR`, or an installed package that declares an
entry point in the group `llama_bench.vendors`. Each vendor also needs its YAML,
`configs/<case>/vendor_config/<name>_configurations.yaml` or, shipped with the vendor,
`<vendor folder>/configs/<case>/<name>_configurations.yaml`.

The order of calls in one run (benchmarks/cli.py, benchmarks/runner.py):
  registry: get_case(name) -> CASE, get_vendor(name) -> VENDOR (members checked against CASE_MEMBERS,
            VENDOR_MEMBERS)
  cli:      load_config(..., case, vendor.Options) -> vendor.configure(options) -> vendor.is_available()
            -> case.check_data(params, data_dir) (or case.smoke_data())
  runner:   vendor.supports(precision) -> toolkit = vendor.toolkits()[compiler](options, vendor)
            -> vendor.device_name(), vendor.environment() (result header)
            -> with vendor.memory_monitor(): case.load_workload(); case.build_model() on vendor.device();
               validation pass; each active optimization's apply(model, ...); toolkit.prepare(model, calls)
               (timed as compile); inference pass (vendor.synchronize() around every timed forward)
               (all of it inside the optional vendor.telemetry(), whose mark(phase) sees every phase)
            -> toolkit.report(), vendor.peak_flops(precision, tf32), monitor.report(), telemetry.report()
Any vendor must pass `pytest tests/contract --vendor <name>`, any case `pytest tests/contract --case <name>`;
docs/adding_a_vendor.md and docs/adding_a_case.md are the walk-throughs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # the contracts name torch types; importing them must not cost a torch import
    import torch

PRECISIONS = ("fp16", "bf16", "fp32", "fp8")

# A precision whose inference pass computes in a lower precision than the plain model can (fp8: the decoder's
# GEMMs in float8 e4m3) is validated against the plain model in this precision: the model is built and the
# validation pass runs in it, and the inference pass's lower-precision layers are switched on after it by the
# case's optimization for that precision (`Optimization.precisions`). Its predictions may then differ from the
# plain model's beyond rounding, so the verdict applies MLPerf's accuracy rule instead of the agreement rule.
VALIDATION_PRECISION = {"fp8": "fp16"}


def validation_precision(precision: str) -> str:
    """The precision of the plain model (and the validation pass) of a run at `precision`."""
    return VALIDATION_PRECISION.get(precision, precision)


def is_lossy(precision: str) -> bool:
    """Whether the inference pass at `precision` computes in lower precision than its validation pass."""
    return validation_precision(precision) != precision


def torch_dtype(precision: str) -> "torch.dtype":
    """The torch dtype the plain model is built in at a precision (one of PRECISIONS): fp8 runs build it in fp16."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[validation_precision(precision)]


# The model callable of a case: (input_ids [B, L] int64, last_pos [B] int64) -> logits [B, vocab].
# Row b's logits are those of position last_pos[b]. The model is causal, so token ids to the right of
# last_pos (padding) do not change the result: a toolkit may right-pad lengths to reuse compiled shapes.
# When an active optimization packs prompts (`Optimization.pack_tokens` > 0) the inference pass also calls
# it with a pack: input_ids [1, T] holding P > 1 prompts back to back, last_pos [P] the last position of
# each (the last is T - 1), logits [P, vocab] each as if its prompt ran alone. A toolkit that right-pads a
# pack appends the padding as more prompts, none longer than the run's longest prompt
# (benchmarks.toolkits.PadRight does): the model may assume no prompt of a pack is longer than that (the
# packing optimization's `apply` is told the longest prompt through `OptimizationContext`).
ModelFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]

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


@dataclass(frozen=True)
class ToolkitReport:
    """What a toolkit did, for the result file.

    name: the toolkit name as configured. recompiles: compilations that happened after `prepare`
    returned (a count >= 0; anything but 0 makes the run INVALID). graph_recordings: CUDA graphs recorded
    after `prepare` returned (None: none can be, or unknown; > 0 makes an optimized run INVALID). optimizations: the named
    optimizations in effect. details: anything else worth recording (compile options, graph counts);
    JSON-serializable, it goes into result.json.
    """

    name: str
    recompiles: int = 0
    optimizations: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    # CUDA graphs recorded after `prepare` returned; None when the toolkit records none or cannot tell.
    graph_recordings: int | None = None
    # Whether the compile found inductor's on-disk FX graph cache cold or warm (benchmarks.toolkits.cache_state:
    # "state" cold|warm|partial|none, the hit/miss counts, the cache folder); None when the toolkit compiles nothing.
    # A warm cache is reported, never hidden: compile time counts in p_infer_whole.
    compile_cache: Mapping[str, Any] | None = None


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


# Optional `Vendor` members: a vendor may leave them out; the harness then uses the case's own fallback.
#   ragged_attention(precision: str) -> RaggedAttention | None
#       the vendor's attention kernel for packed prompts at `precision` on its device (None: it has none,
#       the case falls back to its own, e.g. a masked dense attention). May raise BenchmarkError naming the
#       vendor key that selects an unusable kernel for this precision.
#   telemetry() -> Telemetry | None
#       a new, unentered `Telemetry` (energy counter, power, clocks, temperature, clock-limit reasons) per
#       call; None or no member: the device reports none, and the result's energy figures are null with
#       that reason.
OPTIONAL_VENDOR_MEMBERS = ("ragged_attention", "telemetry")


def ragged_attention_of(vendor: Any, precision: str) -> RaggedAttention | None:
    """The vendor's ragged attention kernel at `precision`, or None when it offers none."""
    offer = getattr(vendor, "ragged_attention", None)
    return offer(precision) if offer is not None else None


# ------------------------------------------------------------------------------------------ telemetry

# The phase a `Telemetry` marks itself in `__enter__`: the device idle before anything is loaded.
IDLE_PHASE = "idle"
# The clock-limit reasons a `TelemetrySample` may name (NVML's throttle / clock-event reasons, grouped):
# power_cap: the software power cap; thermal: software or hardware thermal slowdown; hw_slowdown: the
# hardware slowdown and power-brake signals.
CLOCK_LIMITS = ("power_cap", "thermal", "hw_slowdown")


@dataclass(frozen=True)
class TelemetrySample:
    """One reading of the device, taken by the telemetry's sampler. Any figure the device cannot give is None.

    t_s: seconds since the telemetry's `start_monotonic` (its `__enter__`).
    power_w: board power draw. energy_j: the raw reading of the device's cumulative energy counter (it may
    wrap, see `TelemetryRecord.counter_wrap_j`; None without a counter). sm_clock_mhz / mem_clock_mhz: the
    current SM and memory clocks. temperature_c: the GPU temperature. mem_used_gib: device memory in use
    (all processes). limits: which of CLOCK_LIMITS held the clocks down at this sample (() none; None: the
    device does not say).
    """

    t_s: float
    power_w: float | None = None
    energy_j: float | None = None
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    temperature_c: float | None = None
    mem_used_gib: float | None = None
    limits: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TelemetryMark:
    """A phase boundary: at `t_s` the phase `phase` starts (None: the open phase ends and none starts).
    energy_j: the energy counter read at that moment (None without a counter), so a phase's energy is the
    counter's delta between its marks, not integrated power."""

    t_s: float
    phase: str | None
    energy_j: float | None = None


@dataclass(frozen=True)
class TelemetryRecord:
    """What a `Telemetry` recorded: raw readings only; benchmarks.energy computes every figure from them.

    source: how it was read, e.g. "nvml". samples: in time order. marks: in time order, the first one
    IDLE_PHASE (from `__enter__`). interval_s: the sampling interval. start_monotonic: `time.monotonic()`
    at t_s = 0 (to line up other clocks of the same process). counter_missing: None when the device has an
    energy counter (then every mark and sample carries its reading), otherwise why not (energy is then
    integrated from the sampled power, and the result says so). counter_wrap_j: the counter's modulus in
    joules (it restarts at 0 after reaching it), None when unknown. errors: readings that failed.
    """

    source: str
    samples: Sequence[TelemetrySample]
    marks: Sequence[TelemetryMark]
    interval_s: float
    start_monotonic: float
    counter_missing: str | None = None
    counter_wrap_j: float | None = None
    errors: Sequence[str] = ()


@runtime_checkable
class Telemetry(Protocol):
    """A context manager around the whole run (after the idle baseline: model load, both passes, compile);
    used once. Optional (`Vendor.telemetry`).

    `__enter__` starts sampling (a background thread, at most every `interval_s`), marks IDLE_PHASE, waits
    its idle time (a few seconds, the device's idle power; may be 0) and ends that phase, then returns the
    telemetry. `mark(phase)` is called by the harness from the run's thread at every phase boundary (after
    the device was synchronized): it records a `TelemetryMark` with the energy counter read right then;
    it is cheap (no sleep) and never raises. `__exit__` stops all background work, also when the body
    raised, and never swallows the exception. `report()` is valid after `__exit__`, may be called several
    times and returns the same `TelemetryRecord`. Failures of single readings never end the run: they go
    to `TelemetryRecord.errors`.
    """

    def __enter__(self) -> "Telemetry": ...

    def __exit__(self, *exc: object) -> None: ...

    def mark(self, phase: str | None) -> None: ...

    def report(self) -> TelemetryRecord: ...


def telemetry_of(vendor: Any) -> Telemetry | None:
    """The vendor's new, unentered telemetry, or None when it offers none."""
    offer = getattr(vendor, "telemetry", None)
    return offer() if offer is not None else None


# ------------------------------------------------------------------------------------------------ cases


@dataclass(frozen=True)
class Sample:
    """One scored question of a workload.

    subject: the group it belongs to, for accuracy per group (MMLU: the subject); any non-empty string.
    index: its 0-based row within the group (with `subject`, a stable key across runs and files).
    input_ids: the whole prompt as token ids, as the model reads it (BOS included where the model wants it).
    label: the token id whose logit must be the largest (argmax over the whole vocabulary) for a correct
    answer.
    """

    subject: str
    index: int
    input_ids: tuple[int, ...]
    label: int


@dataclass(frozen=True)
class Workload:
    """What `Case.load_workload` returns.

    samples: every question of the run, in the case's order (the order of both passes and of the files).
    fingerprint: name -> hex digest of the inputs that define the measurement (data files, weights' config);
    two results with equal fingerprints (and config hashes) measured the same thing.
    notes: case figures for result.json's `counts` (e.g. truncated prompts); JSON-serializable.
    choice_ids: the token ids of the answer choices, for the choice-restricted accuracy (argmax over only
    these); () when the case has none.
    """

    samples: Sequence[Sample]
    fingerprint: Mapping[str, str]
    notes: Mapping[str, Any] = field(default_factory=dict)
    choice_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class OptimizationContext:
    """What `Optimization.apply` may use besides the model and its options.

    vendor: the run's vendor (e.g. for `ragged_attention_of(vendor, precision)`).
    precision: the run's precision (one of PRECISIONS).
    longest_prompt: the run's longest prompt in tokens; no prompt of a pack is longer (padding included).
    """

    vendor: Any
    precision: str
    longest_prompt: int


class Optimization:
    """A named optimization a case declares (`Case.optimizations`), for the inference pass only.

    A subclass sets `name` and `Options` and overrides `apply`; the rest has working defaults.
    - `Options`: a frozen dataclass of the optimization's config keys, each a `benchmarks.config.doc` field
      with a default that leaves it off. The keys are set in the vendor YAML or with --set, like the
      harness keys; the config validates their types and refuses unknown ones. No key may share a name with
      a harness, case or vendor key.
    - `needs`: names of other optimizations it acts through; without them it is inert (neither applied nor
      reported), e.g. a layer that only changes packed forwards.
    - `needs_compiler`: refused with compiler 'none' (it changes compiled graphs only).
    - `precisions`: an optimization that implements a precision (e.g. fp8 GEMMs): it is on exactly when the
      run's precision is one of these, whatever its keys (they only tune it), and off otherwise. Its
      predictions are judged by the verdict's rule for that precision (`is_lossy`), not the agreement rule.
    The harness applies the active optimizations in declaration order after the validation pass, which
    keeps the plain model.
    """

    name: str = ""
    Options: type = type(None)
    needs: tuple[str, ...] = ()
    needs_compiler: bool = False
    precisions: tuple[str, ...] = ()

    def is_on(self, options: Any) -> bool:
        """Whether the options switch it on (default: the first key is truthy)."""
        return bool(getattr(options, dataclasses.fields(options)[0].name))

    def switched_on(self, options: Any, precision: str) -> bool:
        """Whether it is on in a run at `precision` with these options (see `precisions`)."""
        return precision in self.precisions if self.precisions else self.is_on(options)

    def check(self, options: Any, run: Any, vendor: Any = None) -> None:
        """Checks across keys, when it is on: against the harness keys (`run`: benchmarks.config.RunConfig)
        when the config is loaded (vendor None), and again with the configured vendor before the run.
        Raise BenchmarkError naming the key, what was expected and the fix."""

    def pack_tokens(self, options: Any) -> int:
        """Opt into the harness's packed forwards: at most this many tokens of consecutive prompts per
        forward of the inference pass (the model must accept packs, see `ModelFn`). 0: one prompt each."""
        return 0

    def apply(self, model: Any, options: Any, ctx: OptimizationContext) -> None:
        """Switch it on in the built model (in place), after the validation pass, before compiling."""
        raise NotImplementedError(f"optimization {self.name!r} has no apply()")

    def labels(self, options: Any) -> list[str]:
        """How it is named in result.json's `optimizations` when active (its settings included)."""
        return [self.name]

    def memory_hints(self, options: Any) -> list[str]:
        """Settings that lower memory when it is active, e.g. '--set pack_tokens=4096 (...)'."""
        return []

    def off_setting(self) -> str:
        """The --set that switches it off (its first key back to its default), for one-line hints."""
        first = dataclasses.fields(self.Options)[0]
        return f"--set {first.name}={yaml_text(first.default)}"


def yaml_text(value: Any) -> str:
    """A value as YAML / --set spell it (false, null, 0)."""
    return "false" if value is False else "true" if value is True else "null" if value is None else str(value)


@runtime_checkable
class Case(Protocol):
    """What is measured: `CASE`, an instance, in `benchmarks/<case>/__init__.py` (or registered elsewhere).

    Methods must not change state the run depends on; all may be called more than once. The smallest
    complete example is tests/cases/parity/ (a hand-written model on a made-up 2-choice task).
    """

    # The case's name: its registry name, its configs/<name>/ folder, written into result.json.
    name: str
    # A frozen dataclass: the keys of configs/<name>/parameters.yaml (what is measured; vendors may not
    # set them). Every field documented with `benchmarks.config.doc`; no name shared with other keys.
    Params: type
    # The named optimizations it offers (may be empty); see `Optimization`.
    optimizations: Sequence[Optimization]
    # The accuracy a run with the real weights over the whole workload must reach, +- the tolerance;
    # None when the case has no reference (then no accuracy rule applies).
    reference_accuracy: float | None
    accuracy_tolerance: float
    # subject -> category, for accuracy per category; {} when the case has none.
    categories: Mapping[str, str]

    def check_data(self, params: Any, data_dir: Path, smoke_hint: str) -> None:
        """Before the run: raise BenchmarkError, naming the missing path and how to get it (or
        `smoke_hint`, the command of a smoke run), when `data_dir` lacks what the case reads."""
        ...

    def smoke_data(self) -> Path:
        """Make (or reuse) a tiny data_dir in the same layout as the real one; return it. Nothing is
        downloaded. The run then goes through the normal path on it."""
        ...

    def load_workload(self, params: Any, data_dir: Path, limit: int | None) -> Workload:
        """Read and tokenize the workload; `limit`: only the first N samples of every subject. Bad data is a
        BenchmarkError naming the file and row."""
        ...

    def build_model(self, params: Any, data_dir: Path, *, precision: str, device: "torch.device",
                    synthetic: bool, seed: int, load_path: str = "direct") -> Any:
        """The plain model on `device` in `precision`, eval mode: a torch.nn.Module implementing `ModelFn`.
        synthetic: random weights of the same architecture (speed-only runs), seeded with `seed`.
        load_path (recorded as result.json `load_path`): "direct", the case's own way (e.g. loaded straight in
        `precision`); "reference", what the reference implementation does, for the reference scenario
        (benchmarks.scenarios), e.g. loaded in fp32, moved to the device, then cast, and its plain call (logits of
        every position, the scored row returned). The ModelFn contract holds either way.

        Optional methods of the model the harness uses when present: `architecture() -> dict` (its shape, for
        result.json's `model` and the case's deviations), `forward_flops(prompt_lengths) -> float` (the matmul
        FLOPs one forward over these prompts executes in the model's current state, for `mfu_executed`)."""
        ...


# Optional `Case` members: a case may leave them out.
#   deviations(params, workload, model_architecture) -> list[str]
#       how this run measures something other than the case (another model, other data or prompts), one
#       verdict reason each; called after the run with the workload it loaded and the model's architecture().
#   model_parameters(params, data_dir, synthetic) -> int | None
#       the parameters of the model the run will build, for the host-memory check before a CPU run.
#   architecture: Mapping[str, int]
#       the shape of the case's own model (the keys its model's architecture() reports, e.g. layers, hidden,
#       vocab): when the run's model differs in any of them (a smoke or shrunk model), the configured `flops`
#       per token do not describe it and the nominal MFU is null, with the reason (mfu_executed still counts).
OPTIONAL_CASE_MEMBERS = ("deviations", "model_parameters", "architecture")


def protocol_members(proto: type) -> tuple[str, ...]:
    """The names a Protocol declares (its annotated attributes, then its public methods), in order."""
    names = list(vars(proto).get("__annotations__", {}))
    names += [k for k, v in vars(proto).items() if callable(v) and not k.startswith("_")]
    return tuple(dict.fromkeys(names))


# What the registry checks a VENDOR for (and the contract tests, in depth).
VENDOR_MEMBERS = protocol_members(Vendor)
CASE_MEMBERS = protocol_members(Case)
TOOLKIT_MEMBERS = protocol_members(Toolkit)
