"""Refuse a CPU run whose model cannot fit in host memory, before minutes of loading end in the OOM killer.

The model lives in host RAM on the CPU vendor: its parameters x bytes per element, plus HEADROOM_GIB for
what else the process holds (activations of a 2,048-token prompt, the tokenized workload, Python, torch's
allocator). MemAvailable of /proc/meminfo is what the kernel can give without swapping.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import BenchmarkError

GIB = 1024**3
# fp8: the plain model is held in fp16 for the validation pass (its fp8 weights come after it)
BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 2}
HEADROOM_GIB = 2.0
MEMINFO = Path("/proc/meminfo")


def available_bytes(meminfo: Path | None = None) -> int | None:
    """MemAvailable in bytes, or None where the kernel does not report it (not Linux, old kernel)."""
    try:
        text = (meminfo or MEMINFO).read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) >= 2 and parts[1].isdigit() else None
    return None


def needed_bytes(parameters: int, precision: str) -> int:
    return parameters * BYTES_PER_ELEMENT[precision] + int(HEADROOM_GIB * GIB)


def check_host_memory(parameters: int, precision: str, meminfo: Path | None = None) -> str | None:
    """Raise a BenchmarkError when the model cannot fit; return a log line with the figures, or None when
    the host does not say how much memory is available."""
    have = available_bytes(meminfo)
    if have is None:
        return None
    need = needed_bytes(parameters, precision)
    count = f"{parameters / 1e9:.2f}B" if parameters >= 1e8 else f"{parameters / 1e6:.2f}M"
    figures = (f"{count} parameters x {BYTES_PER_ELEMENT[precision]} bytes ({precision}) + "
               f"{HEADROOM_GIB:g} GiB headroom = {need / GIB:.1f} GiB")
    if need > have:
        smaller = "" if precision != "fp32" else "--set precision=bf16 (about half), or "
        raise BenchmarkError(
            f"host memory: this CPU run needs {need / GIB:.1f} GiB ({figures}) but MemAvailable is "
            f"{have / GIB:.1f} GiB; use {smaller}a machine with more memory, or shrink the model on purpose "
            "with --set model_layers=N (the result is then INVALID: not the case)")
    return f"host memory: {figures}; {have / GIB:.1f} GiB available"
