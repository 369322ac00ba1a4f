"""One place that finds cases and vendors by name; an unknown name lists the known ones.

Cases: sub-packages `benchmarks/<case>/` exposing `CASE`.
Vendors: folders `vendors/<name>/` (and folders named in $LLAMA_BENCH_VENDOR_PATH, separated by os.pathsep)
whose `__init__.py` exposes `VENDOR`, and installed packages declaring an entry point in the group
`llama_bench.vendors` (`name = "package.module:VENDOR"`).
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from .errors import BenchmarkError, one_line
from .interfaces import VENDOR_MEMBERS, Vendor

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
        where = f"{folders[name]}/__init__.py"
        vendor = getattr(vendor_call(name, where, "import", _import_folder, name, folders[name]), "VENDOR", None)
    elif name in entry_points:
        where = f"entry point {entry_points[name].value}"
        vendor = vendor_call(name, where, "import", entry_points[name].load)
    else:
        raise BenchmarkError(f"unknown vendor '{name}'; known vendors: {', '.join(known_vendors())}")
    missing = [m for m in VENDOR_MEMBERS if not hasattr(vendor, m)]
    if vendor is None or missing:
        raise BenchmarkError(
            f"vendor '{name}' ({where}) does not provide a VENDOR implementing benchmarks.interfaces.Vendor"
            + (f" (missing: {', '.join(missing)})" if vendor is not None else "")
        )
    options = vendor.Options
    if not (isinstance(options, type) and dataclasses.is_dataclass(options) and options.__dataclass_params__.frozen):
        raise BenchmarkError(f"vendor '{name}' ({where}): Options must be a frozen dataclass of the vendor's YAML "
                             "keys (benchmarks.config.NoOptions when it has none)")
    return vendor


def vendor_call(name: str, where: str, what: str, fn: Any, *args: Any) -> Any:
    """fn(*args) on a vendor's code; whatever it raises, or a sys.exit inside it, becomes one line naming the
    vendor and where it comes from (exit 2): a vendor's bug must never end the run silently or as exit 0."""
    try:
        return fn(*args)
    except BenchmarkError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of foreign code, named as such
        sys.modules.pop(f"llama_bench_vendor_{name}", None)  # a half-imported module must not be reused
        detail = f"sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {one_line(exc, 300)}"
        raise BenchmarkError(f"vendor '{name}' ({where}): {what} failed ({detail}); fix the vendor or choose "
                             "another --vendor") from None


def vendor_home(name: str) -> Path | None:
    """The folder a vendor comes from: its vendor folder, or the folder of its entry point's module.

    The config loader looks there for a YAML the vendor ships itself (`configs/<case>/<name>_configurations.yaml`).
    None when the module has no file (e.g. a namespace package).
    """
    folders = _folder_vendors()
    if name in folders:
        return folders[name]
    entry_points = _entry_point_vendors()
    if name not in entry_points:
        raise BenchmarkError(f"unknown vendor '{name}'; known vendors: {', '.join(known_vendors())}")
    file = getattr(importlib.import_module(entry_points[name].module), "__file__", None)
    return Path(file).resolve().parent if file else None


def default_vendor(smoke: bool = False) -> str:
    """nvidia when a CUDA device is present, else cpu (the issue's rule), without importing CUDA code.

    A --smoke run defaults to cpu: its tiny model runs anywhere (any vendor can be named with --vendor).
    """
    import torch

    return "nvidia" if torch.cuda.is_available() and not smoke else "cpu"


def get_toolkit(vendor: Vendor, name: str, options: Any) -> Any:
    factories = vendor.toolkits()
    if name not in factories:
        raise BenchmarkError(
            f"vendor '{vendor.name}' has no toolkit '{name}' (config key 'compiler'); "
            f"known toolkits: {', '.join(sorted(factories))}"
        )
    return factories[name](options, vendor)
