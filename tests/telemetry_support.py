"""A scripted NVML for the telemetry tests (CPU only): power follows a script of (from_s, watts) steps, the
energy counter is that script's exact integral (mJ, from `counter_start_mj`, wrapping at `wrap_mj`), the
clock-limit reason bits follow their own script. Time is whatever `clock` says (a FakeClock or
time.monotonic), measured from the fake's creation.

Also `check_telemetry`: the Telemetry contract, shared by tests/contract (any vendor) and the unit tests.
"""
from __future__ import annotations

import bisect
import time
from types import SimpleNamespace
from typing import Any, Callable, Sequence

from benchmarks.contracts import CLOCK_LIMITS, IDLE_PHASE, Telemetry, TelemetryRecord

GIB = float(1 << 30)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class NotSupported(Exception):
    pass


class ScriptedNvml:
    def __init__(self, clock: Callable[[], float], power: Sequence[tuple[float, float]] = ((0.0, 300.0),),
                 reasons: Sequence[tuple[float, int]] = ((0.0, 0),), energy_counter: bool = True,
                 counter_start_mj: int = 5_000_000, wrap_mj: int = 2**64, sm_mhz: float = 1860.0,
                 mem_mhz: float = 2619.0, temp_c: float = 60.0, used_gib: float = 12.0) -> None:
        self.clock, self.t0 = clock, clock()
        self.power_steps = sorted(power)
        self.reason_steps = sorted(reasons)
        self.energy_counter = energy_counter
        self.counter_start_mj, self.wrap_mj = counter_start_mj, wrap_mj
        self.sm_mhz, self.mem_mhz, self.temp_c, self.used = sm_mhz, mem_mhz, temp_c, int(used_gib * GIB)
        self.inits = self.shutdowns = 0

    def _t(self) -> float:
        return self.clock() - self.t0

    @staticmethod
    def _at(steps: Sequence[tuple[float, Any]], t: float) -> Any:
        return steps[max(bisect.bisect_right([s for s, _ in steps], t) - 1, 0)][1]

    def power_w(self, t: float) -> float:
        return self._at(self.power_steps, t)

    def energy_j(self, t0: float, t1: float) -> float:
        """The script's exact joules over [t0, t1] (seconds since creation)."""
        total, edges = 0.0, [s for s, _ in self.power_steps] + [float("inf")]
        for (start, watts), end in zip(self.power_steps, edges[1:]):
            lo, hi = max(start, t0), min(end, t1)
            if hi > lo:
                total += watts * (hi - lo)
        return total

    # -- the pynvml functions NvmlTelemetry calls ----------------------------------------------

    def nvmlInit(self) -> None:
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return ("handle", index)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        if not self.energy_counter:
            raise NotSupported("Not Supported")
        return int(self.counter_start_mj + 1000 * self.energy_j(0.0, self._t())) % self.wrap_mj

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return int(1000 * self.power_w(self._t()))

    def nvmlDeviceGetClockInfo(self, handle: Any, which: int) -> int:
        return int(self.sm_mhz if which == 1 else self.mem_mhz)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        return int(self.temp_c)

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        return SimpleNamespace(used=self.used, total=int(80 * GIB), free=int(80 * GIB) - self.used)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return self._at(self.reason_steps, self._t())


def check_telemetry(telemetry: Telemetry, work: Callable[[], None] = lambda: time.sleep(0.25)) -> TelemetryRecord:
    """The promises of `benchmarks.interfaces.Telemetry`, on a fresh telemetry; returns its record."""
    assert isinstance(telemetry, Telemetry)
    assert telemetry.__enter__() is telemetry
    try:
        for phase in ("validation", "inference"):
            telemetry.mark(phase)
            work()
            telemetry.mark(None)
    finally:
        assert not telemetry.__exit__(None, None, None)
    record = telemetry.report()
    assert telemetry.report() == record  # the same record, however often asked
    assert isinstance(record, TelemetryRecord) and record.source and record.interval_s > 0
    phases = [m.phase for m in record.marks]
    assert phases[:2] == [IDLE_PHASE, None] and phases[2:] == ["validation", None, "inference", None], phases
    times = [m.t_s for m in record.marks]
    assert times == sorted(times) and times[0] >= 0
    samples = [s.t_s for s in record.samples]
    assert samples == sorted(samples) and record.samples, "no samples"
    for s in record.samples:
        assert s.power_w is None or s.power_w >= 0
        assert s.limits is None or set(s.limits) <= set(CLOCK_LIMITS)
    if record.counter_missing is None:
        assert all(m.energy_j is not None for m in record.marks), "a counter reading is missing at a mark"
    else:
        assert isinstance(record.counter_missing, str) and record.counter_missing
    return record
