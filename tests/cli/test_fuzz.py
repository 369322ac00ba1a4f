"""Seeded fuzzing of the inputs: randomly corrupted MMLU CSVs and config YAMLs through the real CLI.

Every case must end cleanly: exit 0 (the corruption happened to be harmless, e.g. a flipped letter inside a
question) or exit 2 with one stderr line "error: ..." -- never exit 1/3, never a traceback. The seed is
fixed, so a failure names the case that reproduces it.
"""
from __future__ import annotations

import pytest

import random
import sys
from pathlib import Path
from typing import Callable


from fault_helpers import CliRun, clone_data, copy_configs, csv_path, run_cli  # noqa: E402

from benchmarks.llama2_7b_mmlu.data import SUBJECTS  # noqa: E402

SEED = 20261128
N_CSV_CASES = 24
N_YAML_CASES = 20
YAML_FILES = ("configurations.yaml", "parameters.yaml", "vendor_config/cpu_configurations.yaml")
YAML_VALUES = ("", "null", "~", "[]", "{}", "[1, 2", "{a: 1}", "1e9", "-1", "0", "yes", "0x10", "2024-01-01",
               "!!binary aGk=", "&anchor x", "*anchor", "'", '"\\x00"', "!!python/name:os.system", ".inf", "- a")
YAML_CHARS = ":-[]{}'\"!&*#%@`|>,?\t\n"


from fault_helpers import one_thread_per_module, smoke_cache_env  # noqa: E402,F401  (autouse fixtures)


def _insert(rng: random.Random, data: bytes, piece: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + piece + data[i:]


def _remove_one(rng: random.Random, data: bytes, piece: bytes) -> bytes:
    spots = [i for i in range(len(data)) if data.startswith(piece, i)]
    if not spots:
        return data
    i = rng.choice(spots)
    return data[:i] + data[i + len(piece):]


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]


def _lines(rng: random.Random, data: bytes, op: str) -> bytes:
    lines = data.splitlines(keepends=True)
    if not lines:
        return data
    i = rng.randrange(len(lines))
    if op == "delete":
        del lines[i]
    else:
        lines.insert(i, lines[i])
    return b"".join(lines)


CSV_MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "byte flip": _flip,
    "3 byte flips": lambda r, d: _flip(r, _flip(r, _flip(r, d))),
    "truncation": lambda r, d: d[: r.randrange(len(d) + 1)],
    "extra delimiter": lambda r, d: _insert(r, d, b","),
    "missing delimiter": lambda r, d: _remove_one(r, d, b","),
    "random quote": lambda r, d: _insert(r, d, b'"'),
    "random newline": lambda r, d: _insert(r, d, r.choice([b"\n", b"\r", b"\r\n"])),
    "random bytes": lambda r, d: _insert(r, d, r.randbytes(r.randrange(1, 6))),
    "deleted line": lambda r, d: _lines(r, d, "delete"),
    "duplicated line": lambda r, d: _lines(r, d, "duplicate"),
}


def _yaml_value(rng: random.Random, data: bytes) -> bytes:
    lines = data.decode("utf-8").splitlines(keepends=True)
    keyed = [i for i, line in enumerate(lines) if ":" in line and not line.startswith("#")]
    if not keyed:
        return data
    i = rng.choice(keyed)
    key = lines[i].split(":", 1)[0]
    lines[i] = f"{key}: {rng.choice(YAML_VALUES)}\n"
    return "".join(lines).encode("utf-8")


YAML_MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "byte flip": _flip,
    "truncation": lambda r, d: d[: r.randrange(len(d) + 1)],
    "deleted line": lambda r, d: _lines(r, d, "delete"),
    "duplicated line": lambda r, d: _lines(r, d, "duplicate"),
    "random character": lambda r, d: _insert(r, d, r.choice(YAML_CHARS).encode()),
    "random bytes": lambda r, d: _insert(r, d, r.randbytes(r.randrange(1, 4))),
    "odd value": _yaml_value,
}


def _check(run: CliRun, what: str) -> int:
    assert "Traceback" not in run.err and "Traceback" not in run.out, f"{what}: traceback\n{run.err}"
    assert run.code in (0, 2), f"{what}: exit {run.code}\n{run.err}"
    if run.code == 2:
        lines = run.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: stderr\n{run.err}"
    return run.code


@pytest.mark.slow
def test_fuzz_csv(tmp_path: Path, smoke_data_dir: Path) -> None:
    rng = random.Random(SEED)
    data_dir = clone_data(smoke_data_dir, tmp_path / "data")
    codes = []
    for k in range(N_CSV_CASES):
        name = rng.choice(sorted(CSV_MUTATIONS))
        path = csv_path(data_dir, rng.choice(SUBJECTS), rng.choice(["dev", "test"]))
        original = path.read_bytes()
        path.write_bytes(CSV_MUTATIONS[name](rng, original))
        what = f"case {k} (seed {SEED}): {name} in {path.name}"
        try:
            run = run_cli(data_dir, tmp_path / f"out{k}", "--set", "no_validation=true")
            codes.append(_check(run, what))
        finally:
            path.write_bytes(original)
    assert 2 in codes  # the fuzzing does reach the checks


@pytest.mark.slow  # a few seconds: keeps the fast tier under 90 s
def test_fuzz_config_yaml(tmp_path: Path, smoke_data_dir: Path) -> None:
    rng = random.Random(SEED + 1)
    case_dir = copy_configs(tmp_path / "configs")
    for name in YAML_FILES:  # without comments, corruptions land on keys and values
        text = (case_dir / name).read_text(encoding="utf-8")
        (case_dir / name).write_text("".join(line for line in text.splitlines(keepends=True)
                                             if not line.lstrip().startswith("#")), encoding="utf-8")
    codes = []
    for k in range(N_YAML_CASES):
        name = rng.choice(sorted(YAML_MUTATIONS))
        path = case_dir / rng.choice(YAML_FILES)
        original = path.read_bytes()
        path.write_bytes(YAML_MUTATIONS[name](rng, original))
        what = f"case {k} (seed {SEED + 1}): {name} in {path.name}:\n{path.read_bytes()!r}"
        try:
            # compiler=none: a deleted `compiler: none` would otherwise start a (slow) torch.compile on CPU
            run = run_cli(smoke_data_dir, tmp_path / f"out{k}", "--config_dir", str(tmp_path / "configs"),
                          "--set", "compiler=none", "--set", "no_validation=true")
            codes.append(_check(run, what))
        finally:
            path.write_bytes(original)
    assert 2 in codes
