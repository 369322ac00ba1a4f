"""The CPU vendor: runs the whole case on the host; memory is the process's peak RSS."""
from __future__ import annotations

import functools
import os
import platform
import resource
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from benchmarks.config import doc
from benchmarks.interfaces import PRECISIONS, MemoryReport, PeakFlops
from benchmarks.toolkits import TOOLKITS, InductorOptions

GIB = 1024**3


@dataclass(frozen=True)
class CpuOptions(InductorOptions):
    peak_flops: float | None = doc("peak FLOP/s of this CPU for MFU (null: unknown, MFU not reported)", default=None)


class RssMonitor:
    """Peak resident set size of this process (getrusage), which is what a CPU run holds in memory."""

    def __enter__(self) -> "RssMonitor":
        self._report: MemoryReport | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
        self._report = MemoryReport(used_gib=peak_kib * 1024 / GIB, total_gib=total, source="rss:process_peak")

    def report(self) -> MemoryReport:
        assert self._report is not None, "report() is valid after the monitor's with-block"
        return self._report


@functools.cache
def host_scaled_mm() -> bool:
    """Whether this torch runs float8 GEMMs on the host (torch._scaled_mm with per-row scales; the CPU build of
    torch 2.13 does), which precision fp8 needs."""
    try:
        a = torch.zeros(16, 16, dtype=torch.float8_e4m3fn)
        torch._scaled_mm(a, a.t(), scale_a=torch.ones(16, 1), scale_b=torch.ones(1, 16), out_dtype=torch.float16)
        return True
    except (AttributeError, RuntimeError, TypeError, NotImplementedError):
        return False


class CpuVendor:
    name = "cpu"
    Options = CpuOptions

    def __init__(self) -> None:
        self.options: CpuOptions | None = None

    def configure(self, options: CpuOptions) -> None:
        self.options = options

    def is_available(self) -> bool:
        return True

    def device(self) -> torch.device:
        return torch.device("cpu")

    def device_name(self) -> str:
        return platform.processor() or platform.machine()

    def synchronize(self) -> None:
        pass  # CPU kernels run synchronously: a returned op has finished.

    def supports(self, precision: str) -> bool:
        if precision == "fp8":
            return host_scaled_mm()
        return precision in PRECISIONS

    def memory_monitor(self) -> RssMonitor:
        return RssMonitor()

    def peak_flops(self, precision: str, tf32: bool) -> PeakFlops:
        if self.options is not None and self.options.peak_flops:
            return PeakFlops(self.options.peak_flops, "vendor YAML peak_flops")
        return PeakFlops(None, "CPU peak FLOP/s unknown: set peak_flops in the cpu vendor YAML")

    def toolkits(self) -> Mapping[str, Any]:
        return TOOLKITS

    def environment(self) -> Mapping[str, Any]:
        return {"device_count": 1, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}


VENDOR = CpuVendor()
