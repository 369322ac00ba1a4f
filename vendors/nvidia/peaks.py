"""Dense peak FLOP/s of NVIDIA data-center GPUs, for MFU.

One row per device; each row names the datasheet its numbers come from. All values are *dense*
(no 2:4 sparsity): where a datasheet prints only the sparse tensor-core figure (marked "*" there),
the row holds half of it. Columns:

* fp16: FP16/BF16 tensor cores (used for precision fp16 and bf16),
* tf32: TF32 tensor cores (precision fp32 with TF32 matmuls enabled),
* fp32: plain FP32 on the CUDA cores (precision fp32, TF32 off),
* fp8: FP8 tensor cores (precision fp8, whose decoder GEMMs run in e4m3); None for a device without them
  (Ampere and older: such a device cannot run precision fp8 at all, `NvidiaVendor.supports`).

A device that is not in the table has no peak: `lookup_peak` then returns value None and says to set
`peak_flops` in the vendor YAML. It never guesses from a similar name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from benchmarks.interfaces import PRECISIONS, PeakFlops

_A100 = "NVIDIA A100 Tensor Core GPU datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf)"
_H100 = "NVIDIA H100 Tensor Core GPU datasheet and Hopper architecture whitepaper"
_H200 = "NVIDIA H200 Tensor Core GPU datasheet (hpc-datasheet-sc23-h200)"


@dataclass(frozen=True)
class PeakRow:
    """One device. `names` is matched (full match, case-insensitive) against the name torch/NVML
    print, after dropping a leading 'NVIDIA ' and collapsing spaces."""

    device: str
    names: str
    fp16: float
    tf32: float
    fp32: float
    source: str
    fp8: float | None = None


PEAKS: tuple[PeakRow, ...] = (
    # A100: the same peaks for SXM4 and PCIe, 40GB and 80GB (312 | 624*, 156 | 312*, 19.5).
    PeakRow("A100", r"A100(-SXM4?-|-PCIE-| )\d+GB( PCIe)?", 312e12, 156e12, 19.5e12, _A100),
    # 'H100 80GB HBM3' is how the SXM5 part names itself. Whitepaper: 989.4 / 494.7 / 66.9
    # (datasheet: 1,979* / 989* / 67).
    # FP8: whitepaper 1,978.9 dense (datasheet 3,958*).
    PeakRow("H100 SXM", r"H100 80GB HBM3", 989.4e12, 494.7e12, 66.9e12, _H100, fp8=1978.9e12),
    # Whitepaper: 756 / 378 / 51.2 (datasheet: 1,513* / 756* / 51).
    # FP8: whitepaper 1,513 dense (datasheet 3,026*).
    PeakRow("H100 PCIe", r"H100 PCIe", 756e12, 378e12, 51.2e12, _H100, fp8=1513e12),
    # Datasheet (per GPU, 94GB part): FP16/BF16 1,671*, TF32 835*, FP32 60.
    # FP8: datasheet 3,341*.
    PeakRow("H100 NVL", r"H100 NVL", 835.5e12, 417.5e12, 60e12, _H100, fp8=1670.5e12),
    # H200 SXM: the H100 SXM compute with more memory. Datasheet: 1,979* / 989* / 67.
    # FP8: datasheet 3,958*.
    PeakRow("H200 SXM", r"H200", 989.4e12, 494.7e12, 66.9e12, _H200, fp8=1979e12),
    # Datasheet: FP16/BF16 1,671*, TF32 835*, FP32 60.
    # FP8: datasheet 3,341*.
    PeakRow("H200 NVL", r"H200 NVL", 835.5e12, 417.5e12, 60e12, _H200, fp8=1670.5e12),
    # Datasheet: FP16/BF16 362.05 | 733*, TF32 183 | 366*, FP32 91.6.
    # FP8: 733 | 1,466*.
    PeakRow("L40S", r"L40S", 362.05e12, 183e12, 91.6e12, "NVIDIA L40S GPU datasheet", fp8=733e12),
    # Datasheet: FP16/BF16 181.05 | 362.1*, TF32 90.5 | 181*, FP32 90.5.
    # FP8: 362.1 | 724*.
    PeakRow("L40", r"L40", 181.05e12, 90.5e12, 90.5e12, "NVIDIA L40 GPU datasheet", fp8=362.05e12),
    # Datasheet: FP16/BF16 242*, TF32 120*, FP32 30.3.
    # FP8: 485*.
    PeakRow("L4", r"L4", 121e12, 60e12, 30.3e12, "NVIDIA L4 Tensor Core GPU datasheet", fp8=242.5e12),
    # Datasheet: FP16/BF16 125 | 250*, TF32 62.5 | 125*, FP32 31.2. (A10G is a different part.)
    PeakRow("A10", r"A10", 125e12, 62.5e12, 31.2e12, "NVIDIA A10 Tensor Core GPU datasheet"),
    # Datasheet: FP16/BF16 165 | 330*, TF32 82 | 165*, FP32 10.3.
    PeakRow("A30", r"A30", 165e12, 82e12, 10.3e12, "NVIDIA A30 Tensor Core GPU datasheet"),
    # Datasheet: FP16/BF16 149.7 | 299.4*, TF32 74.8 | 149.6*, FP32 37.4.
    PeakRow("A40", r"A40", 149.7e12, 74.8e12, 37.4e12, "NVIDIA A40 GPU datasheet"),
)


def _normalize(device_name: str) -> str:
    name = " ".join(device_name.split())
    return name[len("NVIDIA "):] if name.upper().startswith("NVIDIA ") else name


def find_row(device_name: str) -> PeakRow | None:
    """The table row for a device name as torch/NVML print it, None when not in the table."""
    name = _normalize(device_name)
    for row in PEAKS:
        if re.fullmatch(row.names, name, flags=re.IGNORECASE):
            return row
    return None


def lookup_peak(device_name: str, precision: str, tf32: bool) -> PeakFlops:
    """Dense peak FLOP/s of `device_name` at `precision` (fp32 with tf32=True: the TF32 peak)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if " MIG " in f" {device_name} ":
        return PeakFlops(None, f"MIG instance {device_name!r} has a fraction of the device's peak: "
                               f"set peak_flops in the vendor YAML")
    row = find_row(device_name)
    if row is None:
        return PeakFlops(None, f"unknown device {device_name!r}: set peak_flops in the vendor YAML")
    if precision == "fp8":
        if row.fp8 is None:
            return PeakFlops(None, f"{row.device} has no fp8 tensor cores ({row.source})")
        column, value = "fp8 tensor core", row.fp8
    elif precision in ("fp16", "bf16"):
        column, value = "fp16/bf16 tensor core", row.fp16
    elif tf32:
        column, value = "tf32 tensor core", row.tf32
    else:
        column, value = "fp32 (no tensor cores)", row.fp32
    return PeakFlops(value, f"peak table row {row.device!r}, {column}, dense: {row.source}")
