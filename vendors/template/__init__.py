"""A copy-me vendor: the smallest complete implementation of `benchmarks.interfaces.Vendor`.

It runs the case on the host CPU, so a copy works as it is; then replace, member by member, what your
device does differently (docs/adding_a_vendor.md walks through it):

    cp -r vendors/template vendors/acme
    mv vendors/acme/configs/llama2_7b_mmlu/{template,acme}_configurations.yaml
    pytest tests/contract --vendor acme
    python run_benchmark.py --smoke --vendor acme

The registry skips the folder named `template` itself. Everything the harness needs from a vendor is here:
where tensors live, how to wait for the device, how to measure its memory, its peak FLOP/s, and which
toolkits it offers; the harness never branches on a vendor's name. The optional members (`ragged_attention`,
`telemetry` for energy and power) are left out: the run then reports energy as null with the reason
(docs/adding_a_vendor.md, "Optional").
"""
from __future__ import annotations

import os
import platform
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from benchmarks.config import doc
from benchmarks.interfaces import PRECISIONS, MemoryReport, PeakFlops, ToolkitFactory
from benchmarks.toolkits import Eager, Inductor, InductorOptions

GIB = 1024**3


@dataclass(frozen=True)
class Options(InductorOptions):
    """This vendor's YAML keys (the inductor toolkit's keys are inherited from InductorOptions).

    Every key has a default and a `doc` text; names may not repeat harness or case keys.
    """

    threads: int | None = doc("torch.set_num_threads for the run (null: torch's default)", default=None)


class RssMonitor:
    """Peak resident memory of this process: where the device is the host, that is the run's memory.

    A device vendor reads its device's counters instead (e.g. the allocator's peak, or a sampling thread
    started in __enter__ and stopped and joined in __exit__, also when the run raised).
    """

    def __enter__(self) -> "RssMonitor":
        self._report: MemoryReport | None = None
        return self

    def __exit__(self, *exc: object) -> None:  # returns None: an exception of the run propagates
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # KiB on Linux
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
        self._report = MemoryReport(used_gib=peak, total_gib=total, source="rss:process_peak")

    def report(self) -> MemoryReport:
        assert self._report is not None, "report() is valid after the monitor's with-block"
        return self._report


class TemplateVendor:
    # The registered name (written into result.json). A copied folder's name is the vendor's name, so a
    # copy needs no edit; a vendor installed through an entry point writes its name here, e.g. "acme".
    name = Path(__file__).resolve().parent.name
    Options = Options

    def __init__(self) -> None:
        self.options = Options()

    def configure(self, options: Options) -> None:
        self.options = options
        if options.threads:
            torch.set_num_threads(options.threads)

    def is_available(self) -> bool:
        return True  # e.g. torch.cuda.is_available(), or whether your torch extension finds a device

    def device(self) -> torch.device:
        return torch.device("cpu")  # e.g. torch.device("cuda", self.options.device_index)

    def device_name(self) -> str:
        return platform.processor() or platform.machine()

    def synchronize(self) -> None:
        # CPU ops run synchronously: when one returns, its work is done, so there is nothing to wait for.
        # An asynchronous device MUST block here until its queue is empty (torch.cuda.synchronize(...)).
        pass

    def supports(self, precision: str) -> bool:
        # fp8 needs float8 GEMMs (torch._scaled_mm) on the device: answer True for it only where they run
        # (vendors/cpu checks the host; vendors/nvidia the compute capability).
        return precision in PRECISIONS and precision != "fp8"

    def memory_monitor(self) -> RssMonitor:
        return RssMonitor()

    def peak_flops(self, precision: str, tf32: bool) -> PeakFlops:
        # A device vendor returns its datasheet's dense peak per precision, naming the source, e.g.
        # PeakFlops(989.4e12, "H100 SXM datasheet, bf16 dense"); unknown: None, never 0 or a guess.
        return PeakFlops(None, f"peak FLOP/s of {self.device_name()!r} unknown to vendor '{self.name}'")

    def toolkits(self) -> Mapping[str, ToolkitFactory]:
        return {"none": Eager, "inductor": Inductor}

    def environment(self) -> Mapping[str, Any]:
        return {"device_count": 1, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}


VENDOR = TemplateVendor()
