"""One place that finds cases and vendors by name; an unknown name lists the known ones.

Cases: sub-packages `benchmarks/<case>/` exposing `CASE`.
Vendors: folders `vendors/<name>/` (and folders named in $LLAMA_BENCH_VENDOR_PATH, separated by os.pathsep)
whose `__init__.py` exposes `VENDOR`, and installed packages declaring an entry point in the group
`llama_bench.vendors` (`name = "package.module:VENDOR"`).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from .errors import BenchmarkError
from .interfaces import Vendor

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINT_GROUP = "llama_bench.vendors"
VENDOR_PATH_ENV = "LLAMA_BENCH_VENDOR_PATH"
_NOT_VENDORS = {"__pycache__", "template"}


def known_cases() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(p.parent.name for p in here.glob("*/__init__.py"))


def get_case(name: str) -> Any:
    if name not in known_cases():
        raise BenchmarkError(f"unknown case '{name}'; known cases: {', '.join(known_cases())}")
    return importlib.import_module(f"benchmarks.{name}").CASE


def _vendor_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get(VENDOR_PATH_ENV, "").split(os.pathsep) if p]
    return [REPO_ROOT / "vendors", *extra]


def _folder_vendors() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in _vendor_dirs():
        for init in sorted(root.glob("*/__init__.py")):
            name = init.parent.name
            if name not in _NOT_VENDORS and not name.startswith((".", "_")):
                found.setdefault(name, init.parent)
    return found


def _entry_point_vendors() -> dict[str, Any]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def known_vendors() -> list[str]:
    return sorted(set(_folder_vendors()) | set(_entry_point_vendors()))


def _import_folder(name: str, folder: Path) -> Any:
    if folder.parent == REPO_ROOT / "vendors":
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        return importlib.import_module(f"vendors.{name}")
    module_name = f"llama_bench_vendor_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(
        module_name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def get_vendor(name: str) -> Vendor:
    folders, entry_points = _folder_vendors(), _entry_point_vendors()
    if name in folders:
        vendor = getattr(_import_folder(name, folders[name]), "VENDOR", None)
        where = f"{folders[name]}/__init__.py"
    elif name in entry_points:
        vendor = entry_points[name].load()
        where = f"entry point {entry_points[name].value}"
    else:
        raise BenchmarkError(f"unknown vendor '{name}'; known vendors: {', '.join(known_vendors())}")
    missing = [m for m in ("name", "device", "synchronize", "memory_monitor", "peak_flops", "toolkits",
                           "supports", "is_available", "device_name", "environment") if not hasattr(vendor, m)]
    if vendor is None or missing:
        raise BenchmarkError(
            f"vendor '{name}' ({where}) does not provide a VENDOR implementing benchmarks.interfaces.Vendor"
            + (f" (missing: {', '.join(missing)})" if vendor is not None else "")
        )
    return vendor


def default_vendor() -> str:
    """nvidia when a CUDA device is present, else cpu (the issue's rule), without importing CUDA code."""
    import torch

    return "nvidia" if torch.cuda.is_available() else "cpu"


def get_toolkit(vendor: Vendor, name: str, options: Any) -> Any:
    factories = vendor.toolkits()
    if name not in factories:
        raise BenchmarkError(
            f"vendor '{vendor.name}' has no toolkit '{name}' (config key 'compiler'); "
            f"known toolkits: {', '.join(sorted(factories))}"
        )
    return factories[name](options, vendor)
