"""Peak device memory of one CUDA device, sampled from NVML on a background thread.

`NvmlMemoryMonitor` implements `benchmarks.interfaces.MemoryMonitor`. While the run is inside its
with-block it samples, every `interval_s` seconds, the memory in use on the device (all processes) and
this process's own usage, and keeps the peaks. At exit it also reads torch's allocator peaks. The
metric `mem_used_gib` is the NVML device-level peak, the number `nvidia-smi` would show at its worst
moment, read from the API instead of scraped from CLI text.

Failures never end the run: when NVML cannot start, the report falls back to torch's
`max_memory_reserved` (source "torch:max_reserved"); when an NVML call fails mid-run, sampling stops,
the peak so far is reported with source "nvml:device:partial", and the error is kept in `errors`.
"""
from __future__ import annotations

import importlib
import os
import threading
import time
from typing import Any, Callable, Mapping

import torch

from benchmarks.interfaces import MemoryReport

GIB = float(1 << 30)

# Newest first. pynvml's unversioned name is v1 (old), v2 or v3 (nvidia-ml-py >= 12) depending on its
# version, and a versioned name can be missing from an old driver's libnvidia-ml: try each in turn.
_PROCESS_LISTERS = (
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlDeviceGetComputeRunningProcesses_v2",
    "nvmlDeviceGetComputeRunningProcesses",
)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def pci_bus_key(bus_id: str | bytes) -> tuple[int, int, int]:
    """(domain, bus, device) of a PCI bus id as NVML or CUDA print it ('00000000:3B:00.0',
    '0000:3b:00.0', '3B:00.0'), so that differently padded or cased forms compare equal."""
    text = bus_id.decode() if isinstance(bus_id, bytes) else bus_id
    parts = text.strip().partition(".")[0].split(":")
    if len(parts) == 2:
        parts.insert(0, "0")
    try:
        domain, bus, device = (int(part, 16) for part in parts)
    except ValueError:
        raise ValueError(f"not a PCI bus id: {bus_id!r}") from None
    return domain, bus, device


def _visible_devices(value: str) -> list[str]:
    """CUDA_VISIBLE_DEVICES as CUDA reads it: the list ends at the first entry it cannot parse."""
    entries = []
    for entry in (e.strip() for e in value.split(",")):
        if entry.startswith(("GPU-", "MIG-")) or entry.isdigit():
            entries.append(entry)
        else:
            break
    return entries


def _handle_by_uuid(nvml: Any, uuid: str) -> Any:
    try:
        return nvml.nvmlDeviceGetHandleByUUID(uuid)
    except Exception:
        # CUDA also accepts a unique prefix of the UUID; NVML wants it whole.
        matches = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            full = nvml.nvmlDeviceGetUUID(handle)
            full = full.decode() if isinstance(full, bytes) else full
            if full.startswith(uuid):
                matches.append(handle)
        if len(matches) != 1:
            raise
        return matches[0]


def nvml_handle_for(torch_index: int, nvml: Any, props: Any = None,
                    env: Mapping[str, str] = os.environ) -> Any:
    """The NVML handle of the device torch calls `cuda:torch_index`.

    torch counts only the visible devices (CUDA_VISIBLE_DEVICES, in CUDA_DEVICE_ORDER); NVML counts all
    of them in PCI order. The PCI bus id names the same card in both, so it is used when `props`
    (torch.cuda.get_device_properties) carry it. Otherwise the CUDA_VISIBLE_DEVICES entry is mapped: a
    GPU UUID by UUID, an integer as an NVML index (right when CUDA enumerates in PCI order, i.e.
    CUDA_DEVICE_ORDER=PCI_BUS_ID). Without the variable, torch's index is taken as NVML's.
    Raises ValueError for an index that is not visible and for MIG instances (not supported).
    """
    if torch_index < 0:
        raise ValueError(f"torch device index must be >= 0, got {torch_index}")
    bus, device = getattr(props, "pci_bus_id", None), getattr(props, "pci_device_id", None)
    if isinstance(bus, int) and isinstance(device, int):
        domain = getattr(props, "pci_domain_id", 0) or 0
        bus_id = f"{domain:04X}:{bus:02X}:{device:02X}.0"
        handle = nvml.nvmlDeviceGetHandleByPciBusId(bus_id)
        if hasattr(nvml, "nvmlDeviceGetPciInfo"):
            found = nvml.nvmlDeviceGetPciInfo(handle).busId
            if pci_bus_key(found) != pci_bus_key(bus_id):
                raise RuntimeError(f"NVML returned device {found!r} for PCI bus id {bus_id}")
        return handle
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return nvml.nvmlDeviceGetHandleByIndex(torch_index)
    entries = _visible_devices(visible)
    if torch_index >= len(entries):
        raise ValueError(f"torch device {torch_index} is not visible: "
                         f"CUDA_VISIBLE_DEVICES={visible!r} names {len(entries)} device(s)")
    entry = entries[torch_index]
    if entry.startswith("MIG-"):
        raise ValueError(f"MIG instance {entry!r}: NVML memory monitoring of MIG instances is unsupported")
    if entry.startswith("GPU-"):
        return _handle_by_uuid(nvml, entry)
    return nvml.nvmlDeviceGetHandleByIndex(int(entry))


class NvmlSession:
    """What the NVML samplers (this monitor, telemetry.NvmlTelemetry) share: the sampling thread's loop and
    the thread's stop and the shutdown. A subclass sets `_nvml`, `_initialized`, `_stop` (threading.Event),
    `_thread`, `interval_s`, `errors`."""

    def _shutdown_nvml(self) -> None:
        if self._initialized:
            self._initialized = False
            try:
                self._nvml.nvmlShutdown()
            except Exception as error:
                self.errors.append(f"nvmlShutdown: {_describe(error)}")

    def _stop_thread(self, name: str) -> bool:
        """Stop the sampling thread (`_thread`); True when it stopped. One stuck inside an NVML call is left
        running, and NVML loaded under it: nvmlShutdown would pull the library from under that call."""
        self._stop.set()
        self._thread.join(timeout=max(5.0, 20 * self.interval_s))
        if self._thread.is_alive():
            self.errors.append(f"{name} did not stop; NVML left initialized")
            self._initialized = False
            return False
        return True

    def _sample_on_grid(self, sample: Callable[[], bool | None]) -> None:
        """sample() every interval_s until stopped or it returns False. Deadlines on a fixed grid, so the time a
        sample takes does not lower the rate."""
        deadline = time.monotonic()
        while True:
            deadline = max(deadline + self.interval_s, time.monotonic())
            if self._stop.wait(deadline - time.monotonic()) or sample() is False:
                return


class NvmlMemoryMonitor(NvmlSession):
    """Samples NVML at `1 / interval_s` per second over the with-block; `report()` after it.

    `nvml` is the pynvml module (imported at enter when None); tests pass a fake. `errors` lists what
    went wrong (NVML missing, a failed call, a torch counter that could not be read); `notes` what was
    unavailable without being an error (e.g. this PID hidden from NVML by a container's PID namespace).
    """

    def __init__(self, torch_device_index: int, interval_s: float = 0.05, nvml: Any = None) -> None:
        if not 0 < interval_s <= 0.1:
            raise ValueError(f"interval_s must be in (0, 0.1] (at least 10 samples/s), got {interval_s}")
        self.torch_device_index = torch_device_index
        self.interval_s = interval_s
        self.errors: list[str] = []
        self.notes: list[str] = []
        self._nvml = nvml
        self._initialized = False  # nvmlInit succeeded, so nvmlShutdown is due
        self._handle: Any = None
        self._list_processes: Callable[[Any], Any] | None = None
        self._process_listing = True
        self._pid = os.getpid()
        self._pid_value_missing = False  # our PID was listed with usedGpuMemory None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampling_failed = False
        self._state = "new"  # -> "running" -> "done"
        self._props: Any = None
        self._baseline: int | None = None
        self._total: int | None = None
        self._device_peak: int | None = None
        self._process_peak: int | None = None
        self._samples = 0
        self._torch_peaks: dict[str, float] = {}

    # -- context manager -------------------------------------------------------------------------

    def __enter__(self) -> "NvmlMemoryMonitor":
        if self._state != "new":
            raise RuntimeError("an NvmlMemoryMonitor monitors one span; make a new one")
        self._state = "running"
        index = self.torch_device_index
        try:
            torch.cuda.reset_peak_memory_stats(index)
        except Exception as error:
            self.errors.append(f"torch.cuda.reset_peak_memory_stats: {_describe(error)}")
        try:
            self._props = torch.cuda.get_device_properties(index)
        except Exception as error:
            self.errors.append(f"torch.cuda.get_device_properties: {_describe(error)}")
        try:
            self._start_nvml()
        except Exception as error:
            self.errors.append(f"NVML unavailable, reporting torch counters: {_describe(error)}")
            self._device_peak = self._process_peak = self._baseline = self._total = None
            self._samples = 0
            self._shutdown_nvml()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._thread is not None and self._stop_thread("NVML sampling thread") and not self._sampling_failed:
                self._sample_or_stop()  # the state at exit
        finally:
            self._shutdown_nvml()
            self._read_torch_peaks()
            if self._process_listing and self._process_peak is None and self._device_peak is not None:
                why = ("is listed with usedGpuMemory unavailable" if self._pid_value_missing
                       else "is not in NVML's process list (a container's PID namespace hides it)")
                self.notes.append(f"no per-process peak: pid {self._pid} {why}")
            self._state = "done"

    def report(self) -> MemoryReport:
        if self._state != "done":
            raise RuntimeError("report() is valid after the monitor's with-block has exited")
        details: dict[str, float] = {}
        if self._process_peak is not None:
            details["process_peak_gib"] = self._process_peak / GIB
        details.update(self._torch_peaks)
        if self._device_peak is not None:
            assert self._baseline is not None and self._total is not None
            details["baseline_used_gib"] = self._baseline / GIB
            source = "nvml:device:partial" if self._sampling_failed else "nvml:device"
            return MemoryReport(self._device_peak / GIB, self._total / GIB, source, details,
                                self._samples)
        reserved = self._torch_peaks.get("torch_max_reserved_gib")
        if reserved is None:
            raise RuntimeError("no memory measurement (neither NVML nor torch counters): "
                               + "; ".join(self.errors))
        total = getattr(self._props, "total_memory", None)
        return MemoryReport(reserved, None if total is None else total / GIB, "torch:max_reserved",
                            details, 0)

    # -- NVML ------------------------------------------------------------------------------------

    def _start_nvml(self) -> None:
        if self._nvml is None:
            self._nvml = importlib.import_module("pynvml")
        self._nvml.nvmlInit()
        self._initialized = True
        self._handle = nvml_handle_for(self.torch_device_index, self._nvml, self._props)
        memory = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
        self._baseline, self._total = memory.used, memory.total
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"nvml-memory-cuda:{self.torch_device_index}")
        self._thread.start()

    def _run(self) -> None:
        self._sample_on_grid(self._sample_or_stop)

    def _sample_or_stop(self) -> bool:
        try:
            self._sample()
            return True
        except Exception as error:
            self._sampling_failed = True
            self.errors.append(f"NVML sampling stopped after {self._samples} samples: {_describe(error)}")
            return False

    def _sample(self) -> None:
        used = self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used
        self._device_peak = used if self._device_peak is None else max(self._device_peak, used)
        own = self._own_usage() if self._process_listing else None
        if own is not None:
            self._process_peak = own if self._process_peak is None else max(self._process_peak, own)
        self._samples += 1

    def _own_usage(self) -> int | None:
        """Bytes this process holds on the device, None when NVML does not say."""
        try:
            processes = self._processes()
        except Exception as error:  # per-process numbers are extra: keep sampling the device
            self._process_listing = False
            self.errors.append(f"NVML process list unavailable: {_describe(error)}")
            return None
        mine = [p.usedGpuMemory for p in processes if p.pid == self._pid]
        if not mine:
            return None
        if any(m is None for m in mine):  # e.g. Windows WDDM, some vGPU setups
            self._pid_value_missing = True
            return None
        return sum(mine)

    def _processes(self) -> Any:
        if self._list_processes is not None:
            return self._list_processes(self._handle)
        failure: Exception = AttributeError("the nvml module has no nvmlDeviceGetComputeRunningProcesses")
        for name in _PROCESS_LISTERS:
            lister = getattr(self._nvml, name, None)
            if lister is None:
                continue
            try:
                processes = lister(self._handle)
            except Exception as error:
                failure = error
                continue
            self._list_processes = lister
            return processes
        raise failure

    # -- torch -----------------------------------------------------------------------------------

    def _read_torch_peaks(self) -> None:
        for key, counter in (("torch_max_allocated_gib", "max_memory_allocated"),
                             ("torch_max_reserved_gib", "max_memory_reserved")):
            try:
                self._torch_peaks[key] = getattr(torch.cuda, counter)(self.torch_device_index) / GIB
            except Exception as error:
                self.errors.append(f"torch.cuda.{counter}: {_describe(error)}")
