"""Energy and telemetry of one CUDA device from NVML: `NvmlTelemetry` implements
`benchmarks.interfaces.Telemetry`.

Per phase mark (called by the harness after synchronizing the device) it reads the hardware energy counter
(`nvmlDeviceGetTotalEnergyConsumption`, mJ since the driver loaded), so a phase's energy is the counter's
delta, not integrated power. A background thread samples, every `interval_s`: power
(`nvmlDeviceGetPowerUsage`), the energy counter, SM and memory clocks, temperature, memory in use, and the
current clock-limit reasons (`nvmlDeviceGetCurrentClocksEventReasons`, older drivers
`...ThrottleReasons`). It records raw readings only; benchmarks.measure.energy computes every figure.

Failures never end the run: a reading that fails is switched off for the rest of the run and the error is
kept in the record; a device without the energy counter (pre-Volta, some vGPU setups) is recorded with the
reason, and the energy is then integrated from the sampled power.
"""
from __future__ import annotations

import importlib
import threading
import time
from typing import Any, Callable

from benchmarks.interfaces import IDLE_PHASE, TelemetryMark, TelemetryRecord, TelemetrySample

from .memory import GIB, NvmlSession, _describe, nvml_handle_for

# NVML's clock-limit ("throttle", since 12.x "clocks event") reason bits, grouped as CLOCK_LIMITS.
SW_POWER_CAP = 0x4
HW_SLOWDOWN = 0x8
SW_THERMAL = 0x20
HW_THERMAL = 0x40
HW_POWER_BRAKE = 0x80
LIMIT_BITS = (("power_cap", SW_POWER_CAP), ("thermal", SW_THERMAL | HW_THERMAL),
              ("hw_slowdown", HW_SLOWDOWN | HW_POWER_BRAKE))
NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0  # pynvml's constants, fixed by the C API
COUNTER_WRAP_MJ = 2**64  # an unsigned long long in mJ
_REASON_READERS = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")


def limits_of(bits: int) -> tuple[str, ...]:
    return tuple(name for name, mask in LIMIT_BITS if bits & mask)


class NvmlTelemetry(NvmlSession):
    """NVML telemetry over the with-block; `report()` after it.

    `nvml` is the pynvml module (imported at enter when None); tests pass a fake. `clock` and `sleep` are
    time.monotonic and time.sleep (tests pass a scripted clock); `thread=False` takes no background samples
    (a test then calls `sample()` itself). `counter_wrap_mj`: the counter's modulus.
    """

    def __init__(self, torch_device_index: int, interval_s: float = 0.1, idle_s: float = 3.0, nvml: Any = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 thread: bool = True, counter_wrap_mj: int = COUNTER_WRAP_MJ) -> None:
        if not 0 < interval_s <= 1.0:
            raise ValueError(f"interval_s must be in (0, 1], got {interval_s}")
        if idle_s < 0:
            raise ValueError(f"idle_s must be >= 0, got {idle_s}")
        self.torch_device_index = torch_device_index
        self.interval_s, self.idle_s = interval_s, idle_s
        self._nvml, self._clock, self._sleep, self._threaded = nvml, clock, sleep, thread
        self._wrap_mj = counter_wrap_mj
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._samples: list[TelemetrySample] = []
        self._marks: list[TelemetryMark] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: Any = None
        self._initialized = False
        self._off: set[str] = set()  # readings switched off after a failure
        self._counter_missing: str | None = None
        self._start = 0.0
        self._state = "new"  # -> "running" -> "done"
        self._record: TelemetryRecord | None = None

    # -- context manager -------------------------------------------------------------------------

    def __enter__(self) -> "NvmlTelemetry":
        if self._state != "new":
            raise RuntimeError("an NvmlTelemetry records one run; make a new one")
        self._state = "running"
        self._start = self._clock()
        try:
            self._start_nvml()
        except Exception as error:
            self.errors.append(f"NVML unavailable: {_describe(error)}")
            self._shutdown_nvml()
            return self
        self.mark(IDLE_PHASE)
        self.sample()
        if self._threaded:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"nvml-telemetry-cuda:{self.torch_device_index}")
            self._thread.start()
        try:
            if self.idle_s > 0:
                self._sleep(self.idle_s)
        except BaseException:  # Ctrl-C during the idle baseline: stop the thread and NVML before leaving
            self.__exit__()
            raise
        self.mark(None)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._thread is not None:
                self._stop_thread("NVML telemetry thread")
            if self._handle is not None:
                self._sample_safely()  # the state at exit
        finally:
            self._shutdown_nvml()
            with self._lock:
                self._record = TelemetryRecord(
                    source="nvml", samples=tuple(self._samples), marks=tuple(self._marks),
                    interval_s=self.interval_s, start_monotonic=self._start,
                    counter_missing=self._counter_missing if self._handle is not None else "NVML unavailable",
                    counter_wrap_j=self._wrap_mj / 1000.0, errors=tuple(self.errors))
            self._state = "done"

    def report(self) -> TelemetryRecord:
        if self._state != "done" or self._record is None:
            raise RuntimeError("report() is valid after the telemetry's with-block has exited")
        return self._record

    def mark(self, phase: str | None) -> None:
        if self._state != "running" or self._handle is None:
            return
        t = self._clock() - self._start  # the clock, then the counter: the same order as in sample()
        energy = self._energy_j()
        with self._lock:
            self._marks.append(TelemetryMark(t, phase, energy))

    # -- NVML ------------------------------------------------------------------------------------

    def _start_nvml(self) -> None:
        if self._nvml is None:
            self._nvml = importlib.import_module("pynvml")
        self._nvml.nvmlInit()
        self._initialized = True
        props = None
        try:
            import torch

            props = torch.cuda.get_device_properties(self.torch_device_index)
        except Exception:  # no CUDA here (a test): the handle comes from the index / CUDA_VISIBLE_DEVICES
            pass
        self._handle = nvml_handle_for(self.torch_device_index, self._nvml, props)
        try:
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except Exception as error:
            self._counter_missing = f"nvmlDeviceGetTotalEnergyConsumption: {_describe(error)}"
            self._off.add("energy")

    def _run(self) -> None:
        self._sample_on_grid(self._sample_safely)

    def _sample_safely(self) -> None:
        try:
            self.sample()
        except Exception as error:  # never kill the thread: the run goes on without this sample
            self.errors.append(f"telemetry sample: {_describe(error)}")

    def _read(self, name: str, fn: Callable[[], Any]) -> Any:
        """One reading; a failure switches that reading off for the rest of the run (and is recorded)."""
        if name in self._off:
            return None
        try:
            return fn()
        except Exception as error:
            self._off.add(name)
            self.errors.append(f"{name} unavailable after {len(self._samples)} samples: {_describe(error)}")
            return None

    def _energy_j(self) -> float | None:
        mj = self._read("energy", lambda: self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        return None if mj is None else mj / 1000.0

    def _reasons(self) -> int:
        for name in _REASON_READERS:
            fn = getattr(self._nvml, name, None)
            if fn is not None:
                return fn(self._handle)
        raise AttributeError("the nvml module has no nvmlDeviceGetCurrentClocks{Event,Throttle}Reasons")

    def sample(self) -> None:
        """Read the device once and keep the sample (the thread calls it every interval_s)."""
        nvml, h = self._nvml, self._handle
        t = self._clock() - self._start
        power = self._read("power", lambda: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0)
        energy = self._energy_j()
        sm = self._read("sm_clock", lambda: float(nvml.nvmlDeviceGetClockInfo(h, NVML_CLOCK_SM)))
        mem = self._read("mem_clock", lambda: float(nvml.nvmlDeviceGetClockInfo(h, NVML_CLOCK_MEM)))
        temp = self._read("temperature", lambda: float(nvml.nvmlDeviceGetTemperature(h, NVML_TEMPERATURE_GPU)))
        used = self._read("memory", lambda: nvml.nvmlDeviceGetMemoryInfo(h).used / GIB)
        bits = self._read("clock_limits", self._reasons)
        with self._lock:
            self._samples.append(TelemetrySample(t, power, energy, sm, mem, temp, used,
                                                 limits_of(bits) if bits is not None else None))
