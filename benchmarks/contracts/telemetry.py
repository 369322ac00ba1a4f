"""The optional telemetry contract (`Vendor.telemetry`): raw readings of energy counter, power, clocks and
temperatures; benchmarks.measure.energy computes every figure from them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

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
    """What a `Telemetry` recorded: raw readings only; benchmarks.measure.energy computes every figure from them.

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
