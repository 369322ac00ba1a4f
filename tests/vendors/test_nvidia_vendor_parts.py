"""The NVIDIA vendor's peak table and NVML memory monitor, on CPU: NVML is a scripted fake module and
torch's CUDA counters are monkeypatched."""
from __future__ import annotations

import os
import sys
import threading
import time
from types import SimpleNamespace

import pytest
import torch

from benchmarks.contracts import MemoryMonitor
from vendors.nvidia.memory import GIB, NvmlMemoryMonitor, NvmlSession, nvml_handle_for, pci_bus_key
from vendors.nvidia.peaks import lookup_peak

# (bus id as NVML prints it, UUID) of the fake host's GPUs, in NVML (PCI) order.
DEVICES = [
    ("00000000:07:00.0", "GPU-aaaa1111-0000-0000-0000-000000000000"),
    ("00000000:0F:00.0", "GPU-bbbb2222-0000-0000-0000-000000000000"),
    ("00000000:3B:00.0", "GPU-cccc3333-0000-0000-0000-000000000000"),
    ("00000000:BE:00.0", "GPU-dddd4444-0000-0000-0000-000000000000"),
]
OWN_PID = os.getpid()
OTHER_PID = OWN_PID + 1


class FakeNvmlError(Exception):
    pass


class FakeNvml:
    """The pynvml functions the monitor uses. `used_gib` is returned one value per memory query (the
    last one repeats); `own_gib` likewise for this process's entry in the process list, beside another
    process that holds more. `fail_after` memory queries, the next one raises."""

    def __init__(self, used_gib=(10.0,), own_gib=(1.0,), total_gib=80.0, fail_after=None,
                 init_error=None, has_v3=True):
        self.used = [int(g * GIB) for g in used_gib]
        self.own = [None if g is None else int(g * GIB) for g in own_gib]
        self.total = int(total_gib * GIB)
        self.fail_after = fail_after
        self.init_error = init_error
        self.memory_calls = 0
        self.process_calls = 0
        self.inits = self.shutdowns = 0
        if not has_v3:  # an old driver: the v3 symbol is missing
            self.nvmlDeviceGetComputeRunningProcesses_v3 = self._missing

    def nvmlInit(self):
        if self.init_error:
            raise self.init_error
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(DEVICES)

    def nvmlDeviceGetHandleByIndex(self, index):
        if not 0 <= index < len(DEVICES):
            raise FakeNvmlError("Invalid Argument")
        return ("handle", index)

    def nvmlDeviceGetHandleByPciBusId(self, bus_id):
        for index, (known, _) in enumerate(DEVICES):
            if pci_bus_key(known) == pci_bus_key(bus_id):
                return ("handle", index)
        raise FakeNvmlError("Not Found")

    def nvmlDeviceGetHandleByUUID(self, uuid):
        for index, (_, known) in enumerate(DEVICES):
            if known == uuid:
                return ("handle", index)
        raise FakeNvmlError("Not Found")

    def nvmlDeviceGetUUID(self, handle):
        return DEVICES[handle[1]][1]

    def nvmlDeviceGetPciInfo(self, handle):
        return SimpleNamespace(busId=DEVICES[handle[1]][0].encode())  # pynvml gives bytes here

    def nvmlDeviceGetMemoryInfo(self, handle):
        if self.fail_after is not None and self.memory_calls >= self.fail_after:
            raise FakeNvmlError("GPU is lost")
        used = self.used[min(self.memory_calls, len(self.used) - 1)]
        self.memory_calls += 1
        return SimpleNamespace(used=used, total=self.total, free=self.total - used)

    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle):
        return self._processes()

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle):
        return self._processes()

    def _processes(self):
        own = self.own[min(self.process_calls, len(self.own) - 1)]
        self.process_calls += 1
        return [SimpleNamespace(pid=OTHER_PID, usedGpuMemory=50 * int(GIB)),
                SimpleNamespace(pid=OWN_PID, usedGpuMemory=own)]

    def _missing(self, handle):
        raise FakeNvmlError("Function Not Found")


@pytest.fixture
def torch_cuda(monkeypatch):
    """torch.cuda as a CPU build cannot provide it: device 0 sits on PCI bus 0x3B (NVML index 2)."""
    calls = []
    props = SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=int(79.6 * GIB),
                            pci_domain_id=0, pci_bus_id=0x3B, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda i: calls.append(("reset", i)))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda i: int(13 * GIB))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda i: int(14 * GIB))
    return calls


def wait_for(condition, timeout=2.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


# -- memory monitor ---------------------------------------------------------------------------


def test_peaks_of_device_and_own_process(torch_cuda):
    nvml = FakeNvml(used_gib=[10, 12, 30, 20, 15], own_gib=[1, 4, None, 2], has_v3=False)
    monitor = NvmlMemoryMonitor(0, nvml=nvml)
    assert isinstance(monitor, MemoryMonitor)
    with monitor:
        wait_for(lambda: nvml.memory_calls >= 6)
    report = monitor.report()

    assert report.source == "nvml:device"
    assert report.used_gib == 30 and report.total_gib == 80
    assert report.details["baseline_used_gib"] == 10
    assert report.details["process_peak_gib"] == 4  # the other PID's 50 GiB is not ours
    assert report.details["torch_max_allocated_gib"] == 13
    assert report.details["torch_max_reserved_gib"] == 14
    assert report.samples == nvml.memory_calls - 1  # all but the baseline query
    assert torch_cuda == [("reset", 0)]
    assert (nvml.inits, nvml.shutdowns) == (1, 1)
    assert monitor.errors == [] and monitor.notes == []
    assert not monitor._thread.is_alive()


def test_samples_at_least_10_per_second(torch_cuda):
    nvml = FakeNvml()
    monitor = NvmlMemoryMonitor(0, nvml=nvml)
    with monitor:
        start = monitor._samples
        time.sleep(0.3)
        taken = monitor._samples - start
    assert taken / 0.3 >= 10
    assert monitor.report().samples >= 4


def test_error_in_thread_is_kept_and_sampling_stops(torch_cuda):
    nvml = FakeNvml(used_gib=[10, 12, 25, 11], fail_after=4)
    monitor = NvmlMemoryMonitor(0, nvml=nvml)
    with monitor:
        wait_for(lambda: not monitor._thread.is_alive())
    report = monitor.report()
    assert report.source == "nvml:device:partial" and report.used_gib == 25
    assert len(monitor.errors) == 1 and "FakeNvmlError: GPU is lost" in monitor.errors[0]
    assert nvml.shutdowns == 1


def test_exit_joins_and_shuts_down_when_the_body_raises(torch_cuda):
    nvml = FakeNvml()
    monitor = NvmlMemoryMonitor(0, nvml=nvml)
    with pytest.raises(KeyError):
        with monitor:
            raise KeyError("the run failed")
    assert not monitor._thread.is_alive() and nvml.shutdowns == 1
    assert monitor.report().used_gib == 10
    assert not any(t.name.startswith("nvml-memory") for t in threading.enumerate())


def test_nvml_init_failure_falls_back_to_torch_counters(torch_cuda):
    nvml = FakeNvml(init_error=FakeNvmlError("Driver Not Loaded"))
    with NvmlMemoryMonitor(0, nvml=nvml) as monitor:
        pass
    report = monitor.report()
    assert (report.source, report.used_gib, report.samples) == ("torch:max_reserved", 14, 0)
    assert report.total_gib == pytest.approx(79.6)
    assert "Driver Not Loaded" in monitor.errors[0]
    assert nvml.shutdowns == 0  # nothing to shut down


def test_missing_pynvml_falls_back_to_torch_counters(torch_cuda, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with NvmlMemoryMonitor(0) as monitor:
        pass
    assert monitor.report().source == "torch:max_reserved"
    assert "pynvml" in monitor.errors[0]


def test_own_pid_hidden_from_nvml_is_a_note_not_an_error(torch_cuda, monkeypatch):
    nvml = FakeNvml()
    monkeypatch.setattr(os, "getpid", lambda: 4242)  # as inside a container's PID namespace
    with NvmlMemoryMonitor(0, nvml=nvml) as monitor:
        pass
    assert "process_peak_gib" not in monitor.report().details
    assert monitor.errors == [] and "pid 4242" in monitor.notes[0]


def test_misuse_is_refused(torch_cuda):
    with pytest.raises(ValueError, match="interval_s"):
        NvmlMemoryMonitor(0, interval_s=0.5)
    monitor = NvmlMemoryMonitor(0, nvml=FakeNvml())
    with pytest.raises(RuntimeError, match="after"):
        monitor.report()


# -- torch index -> NVML handle ---------------------------------------------------------------


def test_pci_bus_ids_compare_across_formats():
    assert pci_bus_key("00000000:3B:00.0") == pci_bus_key("0000:3b:00.0") == pci_bus_key(b"3B:00.0")
    with pytest.raises(ValueError, match="PCI bus id"):
        pci_bus_key("GPU-1234")


def test_handle_from_torch_pci_ids_ignores_visible_devices():
    props = SimpleNamespace(pci_domain_id=0, pci_bus_id=0xBE, pci_device_id=0)
    env = {"CUDA_VISIBLE_DEVICES": "0"}
    assert nvml_handle_for(0, FakeNvml(), props, env) == ("handle", 3)
    no_domain = SimpleNamespace(pci_bus_id=0x0F, pci_device_id=0)  # older torch
    assert nvml_handle_for(0, FakeNvml(), no_domain, {}) == ("handle", 1)


def test_handle_from_visible_devices():
    nvml = FakeNvml()
    assert nvml_handle_for(0, nvml, None, {"CUDA_VISIBLE_DEVICES": "2,3"}) == ("handle", 2)
    assert nvml_handle_for(1, nvml, None, {"CUDA_VISIBLE_DEVICES": "2,3"}) == ("handle", 3)
    uuids = f"{DEVICES[2][1]},{DEVICES[0][1]}"
    assert nvml_handle_for(1, nvml, None, {"CUDA_VISIBLE_DEVICES": uuids}) == ("handle", 0)
    assert nvml_handle_for(0, nvml, None, {"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}) == ("handle", 1)
    assert nvml_handle_for(1, nvml, None, {}) == ("handle", 1)


def test_handle_refusals():
    nvml = FakeNvml()
    with pytest.raises(ValueError, match="MIG"):
        nvml_handle_for(0, nvml, None, {"CUDA_VISIBLE_DEVICES": "MIG-5c1a5a8e-0000"})
    with pytest.raises(ValueError, match="not visible"):
        nvml_handle_for(1, nvml, None, {"CUDA_VISIBLE_DEVICES": "2,-1,3"})  # CUDA stops at -1
    with pytest.raises(ValueError, match="not visible"):
        nvml_handle_for(0, nvml, None, {"CUDA_VISIBLE_DEVICES": ""})


# -- peak table -------------------------------------------------------------------------------

CASE_ROWS = [  # CASE.md: fp16/bf16, tf32, fp32 without tensor cores
    ("NVIDIA A100-SXM4-40GB", 312e12, 156e12, 19.5e12),
    ("NVIDIA A100-SXM4-80GB", 312e12, 156e12, 19.5e12),
    ("NVIDIA A100-PCIE-40GB", 312e12, 156e12, 19.5e12),
    ("NVIDIA A100 80GB PCIe", 312e12, 156e12, 19.5e12),
    ("NVIDIA H100 80GB HBM3", 989.4e12, 494.7e12, 66.9e12),
    ("NVIDIA H100 PCIe", 756e12, 378e12, 51.2e12),
    ("NVIDIA H200", 989.4e12, 494.7e12, 66.9e12),
    ("NVIDIA L40S", 362.05e12, 183e12, 91.6e12),
]


@pytest.mark.parametrize("name, fp16, tf32, fp32", CASE_ROWS)
def test_case_peaks(name, fp16, tf32, fp32):
    assert lookup_peak(name, "fp16", tf32=False).value == fp16
    assert lookup_peak(name, "bf16", tf32=True).value == fp16  # tf32 only matters for fp32
    assert lookup_peak(name, "fp32", tf32=True).value == tf32
    assert lookup_peak(name, "fp32", tf32=False).value == fp32


def test_h100_variants_are_told_apart():
    sxm = lookup_peak("NVIDIA H100 80GB HBM3", "fp16", tf32=False)
    assert sxm.value == 989.4e12 and "H100 SXM" in sxm.source and "datasheet" in sxm.source
    assert lookup_peak("NVIDIA H100 PCIe", "fp16", tf32=False).value == 756e12
    assert lookup_peak("NVIDIA H100 NVL", "fp16", tf32=False).value == 835.5e12
    assert lookup_peak("NVIDIA H200 NVL", "fp32", tf32=True).value == 417.5e12


@pytest.mark.parametrize("name", ["NVIDIA GeForce RTX 4090", "NVIDIA A10G", "NVIDIA H100",
                                  "NVIDIA A100-SXM4-40GB MIG 1g.5gb", "NVIDIA H20"])
def test_unknown_device_has_no_peak(name):
    peak = lookup_peak(name, "fp16", tf32=False)
    assert peak.value is None and "peak_flops" in peak.source


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="int4"):
        lookup_peak("NVIDIA H100 80GB HBM3", "int4", tf32=False)


@pytest.mark.parametrize("name,value", [("NVIDIA H100 80GB HBM3", 1978.9e12), ("NVIDIA H200", 1979e12),
                                        ("NVIDIA H100 PCIe", 1513e12), ("NVIDIA H200 NVL", 1670.5e12),
                                        ("NVIDIA L40S", 733e12), ("NVIDIA L4", 242.5e12)])
def test_fp8_peaks_are_the_datasheets_dense_figures_and_twice_fp16_on_hopper(name, value):
    peak = lookup_peak(name, "fp8", tf32=False)
    assert peak.value == value and "fp8 tensor core" in peak.source
    if "H1" in name or "H2" in name:
        assert peak.value == pytest.approx(2 * lookup_peak(name, "fp16", tf32=False).value, rel=1e-3)


def test_a_card_without_fp8_tensor_cores_has_no_fp8_peak():
    peak = lookup_peak("NVIDIA A100-SXM4-80GB", "fp8", tf32=False)
    assert peak.value is None and "no fp8 tensor cores" in peak.source


def test_compiled_sdpa_cudnn_applies_only_while_the_toolkit_prepares(monkeypatch):
    """The compiled graph is traced with the requested attention backend; the eager setting comes back after."""
    import torch

    from vendors.nvidia import NvidiaOptions
    from vendors.nvidia.inductor import CudaInductor
    from benchmarks.harness.toolkits import Inductor

    seen = []
    monkeypatch.setattr(Inductor, "prepare", lambda self, fn, lengths: seen.append(
        torch.backends.cuda.cudnn_sdp_enabled()) or fn)
    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(False)
        CudaInductor(NvidiaOptions(compiled_sdpa_cudnn=True), vendor=None).prepare(lambda i, p: i, [(4,)])
        assert seen == [True] and torch.backends.cuda.cudnn_sdp_enabled() is False
        CudaInductor(NvidiaOptions(), vendor=None).prepare(lambda i, p: i, [(4,)])  # null: leave it alone
        assert seen == [True, False] and torch.backends.cuda.cudnn_sdp_enabled() is False
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


def test_expandable_segments_reach_the_caching_allocator_only_when_asked(monkeypatch):
    import torch

    from vendors.nvidia import NvidiaOptions, NvidiaVendor

    calls = []
    monkeypatch.setattr(torch._C, "_accelerator_setAllocatorSettings", calls.append, raising=False)
    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        vendor = NvidiaVendor()
        vendor.configure(NvidiaOptions())
        assert calls == []
        vendor.configure(NvidiaOptions(expandable_segments=True))
        assert calls == ["expandable_segments:True"]
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


@pytest.mark.slow  # imports inductor (torch.compile)
def test_cuda_graph_recordings_after_the_baseline_are_reported(monkeypatch) -> None:
    """CudaInductor counts CUDA graph ids handed out after its warm-up (the optimized scenario: any is a verdict
    reason); the reference scenario's lazy variant counts them from `prepare` on. Modes without CUDA graphs
    report None."""
    import types

    from benchmarks.harness.toolkits import reference_toolkit
    from vendors.nvidia import NvidiaOptions
    from vendors.nvidia import inductor as nv_inductor

    ids = iter([4, 9, 20, 26])
    monkeypatch.setattr(nv_inductor, "cudagraph_ids", lambda index: next(ids))
    vendor = types.SimpleNamespace(device=lambda: types.SimpleNamespace(index=0), synchronize=lambda: None)
    graphs = nv_inductor.CudaInductor(NvidiaOptions(dynamo_mode="reduce-overhead"), vendor)
    graphs.mark_graph_baseline()  # 4
    assert graphs.report().graph_recordings == 9 - 4
    lazy = reference_toolkit(nv_inductor.CudaInductor)(NvidiaOptions(dynamo_mode="reduce-overhead"), vendor)
    lazy.prepare(lambda ids_, last: ids_, [(4,)])  # 20: the baseline taken before anything compiles
    assert lazy.report().graph_recordings == 26 - 20
    plain = nv_inductor.CudaInductor(NvidiaOptions(), vendor)  # default mode: no CUDA graphs
    plain.mark_graph_baseline()
    assert plain.report().graph_recordings is None


def test_a_sampling_thread_stuck_in_nvml_leaves_nvml_loaded() -> None:
    """Both NVML samplers stop their thread through NvmlSession._stop_thread: a thread that does not stop
    (stuck inside an NVML call) is reported, and nvmlShutdown is not called under it."""

    class Thread:
        def __init__(self, alive: bool) -> None:
            self.alive, self.timeouts = alive, []

        def join(self, timeout: float) -> None:
            self.timeouts.append(timeout)

        def is_alive(self) -> bool:
            return self.alive

    shutdowns = []
    for alive in (True, False):
        session = NvmlSession()
        session._nvml = SimpleNamespace(nvmlShutdown=lambda: shutdowns.append(alive))
        session._initialized, session._stop, session.interval_s, session.errors = True, threading.Event(), 0.1, []
        session._thread = Thread(alive)
        assert session._stop_thread("NVML test thread") is (not alive)
        assert session._stop.is_set() and session._thread.timeouts == [5.0]
        session._shutdown_nvml()
        assert session.errors == (["NVML test thread did not stop; NVML left initialized"] if alive else [])
    assert shutdowns == [False]
