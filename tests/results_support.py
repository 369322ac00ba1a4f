"""Shared by the tests of results (schema, gate, history, energy, packing, data parallel): two real smoke runs of
the CLI, made once per test session (in-process, `benchmarks.cli.main`), sharing one --history file; and the
documented result.json fields (docs/results_schema.md's tables, `values_at`, `check_type`).

run A: --smoke --limit 2 --set few_shots=0 --history H            (exit 0)
run B: the same with --baseline <YAML expecting p_infer_core 1e9>  (exit 1: regression)
"""
from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fault_helpers import CliRun, cli

SMOKE_ARGS = ["--smoke", "--limit", "2", "--set", "few_shots=0"]  # 114 short prompts: ~2 s per run
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REGRESS_YAML = """\
description: far above any CPU
metrics:
  p_infer_core: {value: 1.0e+9, rel_tol: 0.05}
  mem_used_gib: {value: 1000.0}
"""


def run_smoke(cache: Path, output_dir: Path, *extra: str) -> CliRun:
    # --overwrite: with $LLAMA_BENCH_CACHE set, results_runs/ outlives the session and holds the last session's runs
    code, out, err = cli([*SMOKE_ARGS, "--output_dir", str(output_dir), "--quiet", "--overwrite", *extra], cache)
    return CliRun(code, out, err, output_dir)


@dataclass
class SharedRuns:
    a: CliRun
    b: CliRun
    history: Path
    regress_yaml: Path


@functools.lru_cache(maxsize=None)
def _shared(cache: str) -> SharedRuns:
    root = Path(cache).parent / "results_runs"
    root.mkdir(exist_ok=True)
    history = root / "history.csv"
    regress = root / "regress.yaml"
    regress.write_text(REGRESS_YAML, encoding="utf-8")
    a = run_smoke(Path(cache), root / "a", "--history", str(history))
    b = run_smoke(Path(cache), root / "b", "--history", str(history), "--baseline", str(regress))
    return SharedRuns(a, b, history, regress)


@functools.lru_cache(maxsize=None)
def _packed(cache: str, *extra: str) -> CliRun:
    root = Path(cache).parent / "results_runs"
    root.mkdir(exist_ok=True)
    return run_smoke(Path(cache), root / ("packed" + "_".join(extra).replace("=", "-")), "--set", "pack_tokens=200", *extra)


def packed_run(smoke_cache: Path, *extra: str) -> CliRun:
    """A smoke run whose inference pass packs prompts into forwards of <= 200 tokens (made once per session)."""
    return _packed(str(smoke_cache), *extra)


def shared_runs(smoke_cache: Path) -> SharedRuns:
    """Runs A and B, made once per session (the conftest's `smoke_cache` is session-scoped)."""
    return _shared(str(smoke_cache))


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as f:
        lines = f.read().splitlines()
    header = next(csv.reader([lines[0]]))
    return header, list(csv.DictReader(lines))


def doc_tables(path: Path, first_column: str) -> list[dict[str, str]]:
    """Rows of every markdown table in `path` whose header starts with `| <first_column> |`."""
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells if cells[0] == first_column else []
        elif header and not set(line) <= set("|-: "):
            rows.append({h: c.strip("`") for h, c in zip(header, cells)})
    return rows


SCHEMA_DOC = Path(__file__).resolve().parents[1] / "docs" / "results_schema.md"
JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
              "object": (dict,), "array": (list,), "null": (type(None),)}


def values_at(data: Any, path: str) -> list[Any]:
    """The values at a dotted path; `*` takes every value/item. A missing key fails with the path."""
    found = [data]
    for part in path.split("."):
        nxt = []
        for obj in found:
            if part == "*":  # every value of an object, every item of an array
                assert isinstance(obj, (dict, list)) and obj, f"{path}: no object or array (or empty) at '*'"
                nxt.extend(obj.values() if isinstance(obj, dict) else obj)
                continue
            assert isinstance(obj, dict), f"{path}: {part!r} is under a non-object"
            assert part in obj, f"documented field {path} missing (no key {part!r})"
            nxt.append(obj[part])
        found = nxt
    return found


def check_type(path: str, value: Any, type_text: str) -> None:
    names = [t.strip() for t in type_text.split(" or ")]
    allowed = tuple(t for n in names for t in JSON_TYPES[n])
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and "boolean" not in names)
    assert ok, f"{path}: {value!r} is not {type_text}"


VENDORS = Path(__file__).resolve().parent / "vendors"


@functools.lru_cache(maxsize=None)
def _telemetry(cache: str, no_counter: bool) -> CliRun:
    import os

    root = Path(cache).parent / "results_runs"
    root.mkdir(exist_ok=True)
    saved = {k: os.environ.get(k) for k in ("LLAMA_BENCH_VENDOR_PATH", "FAKENVML_NO_COUNTER")}
    os.environ["LLAMA_BENCH_VENDOR_PATH"] = str(VENDORS)
    os.environ["FAKENVML_NO_COUNTER"] = "1" if no_counter else "0"
    try:
        return run_smoke(Path(cache), root / f"telemetry{'_nocounter' if no_counter else ''}", "--vendor", "fakenvml")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def telemetry_run(smoke_cache: Path, no_counter: bool = False) -> CliRun:
    """A smoke run of the test vendor `fakenvml` (tests/vendors): the cpu vendor with the NVML telemetry on a
    scripted NVML (made once per session)."""
    return _telemetry(str(smoke_cache), no_counter)
