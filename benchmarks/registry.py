"""One place that finds cases and vendors by name; an unknown name lists the known ones.

Cases: the ones listed in `CASES` (this repository's), folders `<dir>/<name>/` in $LLAMA_BENCH_CASE_PATH
(separated by os.pathsep) whose `__init__.py` exposes `CASE`, and installed packages declaring an entry point
in the group `llama_bench.cases`. A case from outside the repository ships its YAML files in its folder as
`configs/<name>/` (see `case_config_root`).
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
from .contracts import CASE_HOOKS, CASE_MEMBERS, VENDOR_HOOKS, VENDOR_MEMBERS, Case, Vendor, check_hooks

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINT_GROUP = "llama_bench.vendors"
CASE_ENTRY_POINT_GROUP = "llama_bench.cases"
VENDOR_PATH_ENV = "LLAMA_BENCH_VENDOR_PATH"
CASE_PATH_ENV = "LLAMA_BENCH_CASE_PATH"
_NOT_VENDORS = {"__pycache__", "template"}

# The cases of this repository: name -> module exposing CASE.
CASES = {"llama2_7b_mmlu": "benchmarks.llama2_7b_mmlu"}


def _path_dirs(env: str) -> list[Path]:
    return [Path(p) for p in os.environ.get(env, "").split(os.pathsep) if p]


def _folder_cases() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in _path_dirs(CASE_PATH_ENV):
        for init in sorted(root.glob("*/__init__.py")):
            if not init.parent.name.startswith((".", "_")):
                found.setdefault(init.parent.name, init.parent)
    return found


def known_cases() -> list[str]:
    eps = importlib.metadata.entry_points(group=CASE_ENTRY_POINT_GROUP)
    return sorted(set(CASES) | set(_folder_cases()) | {ep.name for ep in eps})


def get_case(name: str) -> Case:
    folders = _folder_cases()
    entry_points = {ep.name: ep for ep in importlib.metadata.entry_points(group=CASE_ENTRY_POINT_GROUP)}
    if name in CASES:
        where = CASES[name]
        case = getattr(plugin_call("case", name, where, "import", importlib.import_module, CASES[name]), "CASE", None)
    elif name in folders:
        where = f"{folders[name]}/__init__.py"
        case = getattr(plugin_call("case", name, where, "import", _import_folder, "case", name, folders[name]),
                       "CASE", None)
    elif name in entry_points:
        where = f"entry point {entry_points[name].value}"
        case = plugin_call("case", name, where, "import", entry_points[name].load)
    else:
        raise BenchmarkError(f"unknown case '{name}'; known cases: {', '.join(known_cases())}")
    missing = [m for m in CASE_MEMBERS if not hasattr(case, m)]
    if case is None or missing:
        raise BenchmarkError(
            f"case '{name}' ({where}) does not provide a CASE implementing benchmarks.interfaces.Case"
            + (f" (missing: {', '.join(missing)})" if case is not None else "")
        )
    if getattr(case, "name", None) != name:
        raise BenchmarkError(f"case '{name}' ({where}): CASE.name is {case.name!r}; it must be the registered name")
    _check_hooks("case", name, where, case, CASE_HOOKS)
    return case


def _check_hooks(kind: str, name: str, where: str, plugin: Any, hooks: Any) -> None:
    """The optional members a plug-in has must be what benchmarks.contracts.hooks declares (checked once, here)."""
    problems = check_hooks(plugin, hooks)
    if problems:
        raise BenchmarkError(f"{kind} '{name}' ({where}): optional member {problems[0]}; fix it or leave it out "
                             "(benchmarks/contracts/hooks.py declares each)")


def case_config_root(name: str, repo_configs: Path = REPO_ROOT / "configs") -> Path:
    """The folder holding configs/<name>/: this repository's configs/, else the case's own folder's."""
    if (repo_configs / name).is_dir():
        return repo_configs
    module = sys.modules.get(type(get_case(name)).__module__)
    file = getattr(module, "__file__", None)
    shipped = Path(file).resolve().parent / "configs" if file else None
    if shipped is not None and (shipped / name).is_dir():
        return shipped
    raise BenchmarkError(f"no config folder for case '{name}': create {repo_configs / name}/ (configurations.yaml, "
                         "parameters.yaml, vendor_config/; see docs/adding_a_case.md)")


def _vendor_dirs() -> list[Path]:
    return [REPO_ROOT / "vendors", *_path_dirs(VENDOR_PATH_ENV)]


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


def _import_folder(kind: str, name: str, folder: Path) -> Any:
    """The package in `folder` (an out-of-tree case or vendor), imported under a private module name."""
    if folder.parent == REPO_ROOT / "vendors":
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        return importlib.import_module(f"vendors.{name}")
    module_name = f"llama_bench_{kind}_{name}"
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
        vendor = getattr(vendor_call(name, where, "import", _import_folder, "vendor", name, folders[name]), "VENDOR", None)
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
    _check_hooks("vendor", name, where, vendor, VENDOR_HOOKS)
    return vendor


def plugin_call(kind: str, name: str, where: str, what: str, fn: Any, *args: Any) -> Any:
    """fn(*args) on a case's or vendor's code; whatever it raises, or a sys.exit inside it, becomes one line
    naming the plug-in and where it comes from (exit 2): its bug must never end the run silently or as exit 0."""
    try:
        return fn(*args)
    except BenchmarkError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of foreign code, named as such
        sys.modules.pop(f"llama_bench_{kind}_{name}", None)  # a half-imported module must not be reused
        detail = f"sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {one_line(exc, 300)}"
        raise BenchmarkError(f"{kind} '{name}' ({where}): {what} failed ({detail}); fix the {kind} or choose "
                             f"another --{kind}") from None


def vendor_call(name: str, where: str, what: str, fn: Any, *args: Any) -> Any:
    """plugin_call for a vendor."""
    return plugin_call("vendor", name, where, what, fn, *args)


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
