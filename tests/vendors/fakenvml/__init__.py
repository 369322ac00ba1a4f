"""A test vendor: the cpu vendor plus the real NVML telemetry (vendors/nvidia/telemetry.py) reading a scripted
NVML (tests/telemetry_support.py) on the real clock: power alternates 300 W / 320 W every 0.5 s, the power
cap is flagged all along and thermal slowdown every other 0.1 s (so every pass, however fast, sees some). Used by the e2e energy tests through
$LLAMA_BENCH_VENDOR_PATH; set FAKENVML_NO_COUNTER=1 for a device without the energy counter."""
from __future__ import annotations

import os
import time

from telemetry_support import ScriptedNvml
from vendors.cpu import CpuVendor
from vendors.nvidia.telemetry import SW_POWER_CAP, SW_THERMAL, NvmlTelemetry

STEPS_S = 0.5
THERMAL_STEPS_S = 0.1


class FakeNvmlVendor(CpuVendor):
    name = "fakenvml"

    def telemetry(self) -> NvmlTelemetry:
        steps = [(k * STEPS_S, 300.0 + 20.0 * (k % 2)) for k in range(2000)]
        reasons = [(k * THERMAL_STEPS_S, SW_POWER_CAP | (SW_THERMAL if k % 2 else 0)) for k in range(10000)]
        nvml = ScriptedNvml(time.monotonic, power=steps, reasons=reasons,
                            energy_counter=os.environ.get("FAKENVML_NO_COUNTER") != "1")
        return NvmlTelemetry(0, interval_s=0.02, idle_s=0.3, nvml=nvml)


VENDOR = FakeNvmlVendor()
