"""The NVIDIA vendor: CUDA device, NVML memory sampling, the datasheet peak table, and torch.compile."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from benchmarks.config import doc
from benchmarks.errors import BenchmarkError
from benchmarks.interfaces import PRECISIONS, PeakFlops
from benchmarks.toolkits import Eager, InductorOptions

from .inductor import CudaInductor
from .memory import NvmlMemoryMonitor
from .peaks import lookup_peak
from .ragged import KERNELS, select
from .telemetry import NvmlTelemetry


@dataclass(frozen=True)
class NvidiaOptions(InductorOptions):
    peak_flops: float | None = doc("override the peak FLOP/s of the table (e.g. for a card it lacks)", default=None)
    memory_sample_interval_s: float = doc("NVML memory sampling interval (<= 0.1 for >= 10 samples/s)", default=0.05)
    telemetry_interval_s: float = doc("NVML power/clock/temperature sampling interval in s, (0, 1]; energy per phase "
                                      "comes from the energy counter read at each phase boundary", default=0.1)
    idle_power_s: float = doc("seconds the idle power is measured before the run (reported, not subtracted; 0: none)",
                              default=3.0)
    device_index: int = doc("torch CUDA device index to run on", default=0, bounds=(0, 1023, "0..1023"))
    sdpa_cudnn: bool = doc(
        "let SDPA use cuDNN attention; cuDNN builds a plan per new sequence length, which made the eager pass "
        "run at a third of its steady speed on lengths it had not seen (docs/results/README.md)",
        default=True,
    )
    compiled_sdpa_cudnn: bool | None = doc(
        "cuDNN attention inside the compiled model only (traced with it, its plans built during warm-up); "
        "null: same as sdpa_cudnn. Not yet measured on a full run (docs/results/README.md)",
        default=None,
    )
    packed_attention: str = doc(
        "attention kernel of packed prompts at fp16/bf16/fp8 (fp32 has one: memory-efficient attention): 'flash' "
        "(flash attention 2, variable length), 'fa4' (FlashAttention-4's variable-length forward, Hopper or newer, "
        "the optional flash-attn-4 package: requirements-fa4.txt) or 'cudnn' (cuDNN's ragged SDPA)",
        default="flash",
    )
    expandable_segments: bool = doc(
        "CUDA caching allocator with expandable segments (PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True): "
        "segments grow in place, so less memory is reserved beyond what is allocated when forwards change shape",
        default=False,
    )


    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.telemetry_interval_s <= 1.0:
            raise BenchmarkError(f"config key 'telemetry_interval_s': got {self.telemetry_interval_s}; expected a "
                                 "number of seconds in (0, 1], e.g. 0.1")
        if not 0 <= self.idle_power_s <= 600:
            raise BenchmarkError(f"config key 'idle_power_s': got {self.idle_power_s}; expected seconds in "
                                 "[0, 600], e.g. 3")
        if self.packed_attention not in KERNELS:
            raise BenchmarkError(f"config key 'packed_attention': got {self.packed_attention!r}; expected one of "
                                 + ", ".join(KERNELS))


def set_allocator_settings(setting: str) -> None:
    """The caching allocator's settings, applied to segments made from now on (torch >= 2.9 names the call
    torch._C._accelerator_setAllocatorSettings; older ones torch.cuda.memory._set_allocator_settings)."""
    fn = getattr(torch._C, "_accelerator_setAllocatorSettings", None)
    (fn or torch.cuda.memory._set_allocator_settings)(setting)


class NvidiaVendor:
    name = "nvidia"
    Options = NvidiaOptions

    def __init__(self) -> None:
        self.options = NvidiaOptions()

    def configure(self, options: NvidiaOptions) -> None:
        self.options = options
        torch.backends.cuda.enable_cudnn_sdp(options.sdpa_cudnn)
        if options.expandable_segments:
            set_allocator_settings("expandable_segments:True")

    def is_available(self) -> bool:
        return torch.cuda.is_available()

    def device(self) -> torch.device:
        return torch.device("cuda", self.options.device_index)

    def device_name(self) -> str:
        return torch.cuda.get_device_name(self.device())

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device())

    def supports(self, precision: str) -> bool:
        if precision == "bf16":
            return torch.cuda.is_bf16_supported()
        if precision == "fp8":  # e4m3 tensor cores and torch._scaled_mm: Ada (8.9) and Hopper (9.0) onwards
            return torch.cuda.is_available() and torch.cuda.get_device_capability(self.device()) >= (8, 9)
        return precision in PRECISIONS

    def memory_monitor(self) -> NvmlMemoryMonitor:
        return NvmlMemoryMonitor(self.options.device_index, interval_s=self.options.memory_sample_interval_s)

    def telemetry(self) -> NvmlTelemetry:
        return NvmlTelemetry(self.options.device_index, interval_s=self.options.telemetry_interval_s,
                             idle_s=self.options.idle_power_s)

    def peak_flops(self, precision: str, tf32: bool) -> PeakFlops:
        if self.options.peak_flops:
            return PeakFlops(self.options.peak_flops, "vendor YAML peak_flops")
        return lookup_peak(self.device_name(), precision, tf32)

    def ragged_attention(self, precision: str) -> Any:
        return select(self.options.packed_attention, precision)

    def toolkits(self) -> Mapping[str, Any]:
        return {"none": Eager, "inductor": CudaInductor}

    def environment(self) -> Mapping[str, Any]:
        env: dict[str, Any] = {"device_count": torch.cuda.device_count(), "cuda": torch.version.cuda,
                               "cudnn": torch.backends.cudnn.version()}
        try:
            import pynvml

            pynvml.nvmlInit()
            try:
                driver = pynvml.nvmlSystemGetDriverVersion()
                env["driver"] = driver.decode() if isinstance(driver, bytes) else driver
            finally:
                pynvml.nvmlShutdown()
        except Exception as exc:  # NVML is optional for the run; record why it is missing
            env["driver"] = f"unknown ({type(exc).__name__})"
        return env


VENDOR = NvidiaVendor()
