"""Seeded fuzzing of baselines and history files (issue 15), in the style of test_fuzz.py.

Baselines go through `compare-results` (the offline gate) and history files through `plot` and a real append:
every case ends in exit 0/1 or a clean exit 2 with one "error:" line, never exit 3, a traceback or a hang; an
append never glues two rows together. The seed is fixed, so a failure names the case that reproduces it.
"""
from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest  # noqa: E402
from fault_helpers import cli  # noqa: E402
from test_fuzz import YAML_MUTATIONS  # noqa: E402

from benchmarks.reporting import history  # noqa: E402
from benchmarks.errors import BenchmarkError  # noqa: E402

SEED = 20261215
N_CASES = 60
BASELINE = """\
description: fuzz
case: llama2_7b_mmlu
metrics:
  p_infer_core: {value: 100.0, rel_tol: 0.05}
  infer_acc: {value: 0.25, abs_tol: 0.01}
  mem_used_gib: 1.5
"""
RESULT = {"schema_version": 3, "status": "completed", "case": "llama2_7b_mmlu", "precision": "fp32",
          "tf32": True, "toolkit": "none", "vendor": "cpu", "environment": {"device_name": "x"},
          "start_time": "2026-12-15T00:00:00+00:00",
          "metrics": {"p_infer_core": 101.0, "infer_acc": 0.25, "mem_used_gib": 1.5, "p_val_core": 99.0}}
EXTRA = (b"&a [1, 2]", b"*a", b"? [a]\n: 1\n", b"[" * 200, b"!!binary x", b"\xff\xfe", b".nan", b"{", b"- ",
         b"\n\n", b"'", b"metrics: {}\n")


def _check(code: int, out: str, err: str, allowed: tuple[int, ...], what: str) -> int:
    assert "Traceback" not in err + out, f"{what}: traceback\n{err}"
    assert code in allowed, f"{what}: exit {code}\n{err}"
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: stderr\n{err}"
    return code


def _mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    if rng.random() < 0.3:
        piece = rng.choice(EXTRA)
        i = rng.randrange(len(data) + 1)
        return f"insert {piece!r}", data[:i] + piece + data[i:]
    name = rng.choice(sorted(YAML_MUTATIONS))
    try:
        return name, YAML_MUTATIONS[name](rng, data)
    except UnicodeDecodeError:  # "odd value" needs text: an earlier byte flip made it binary
        return name, data


def test_fuzz_baselines(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    result = tmp_path / "result.json"
    result.write_text(json.dumps(RESULT))
    codes = []
    for k in range(N_CASES):
        data = BASELINE.encode()
        steps = []
        for _ in range(rng.randint(1, 3)):
            name, data = _mutate(rng, data)
            steps.append(name)
        path = tmp_path / f"b{k}.yaml"
        path.write_bytes(data)
        code, out, err = cli(["compare-results", str(result), "--baseline", str(path)])
        codes.append(_check(code, out, err, (0, 1, 2), f"case {k} (seed {SEED}): {steps}:\n{data!r}"))
    assert 2 in codes and 0 in codes


def _history_text() -> bytes:
    rows = [history.row(RESULT | {"start_time": f"2026-12-{d:02d}T00:00:00+00:00"}, f"/runs/{d}") for d in range(1, 6)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=history.CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


@pytest.mark.slow
def test_fuzz_history_files(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    codes = []
    for k in range(N_CASES // 2):
        data = _history_text()
        name, data = _mutate(rng, data)
        if rng.random() < 0.3:
            data = data.rstrip(b"\n")  # a last row without its newline
        path = tmp_path / f"h{k}.csv"
        path.write_bytes(data)
        what = f"case {k} (seed {SEED + 1}): {name}:\n{data[-300:]!r}"
        code, out, err = cli(["plot", "--history", str(path), "--out", str(tmp_path / f"p{k}")])
        codes.append(_check(code, out, err, (0, 2), what))
        before = path.read_bytes()
        try:
            history.append_history(path, RESULT, "/runs/new")
        except BenchmarkError:
            assert path.read_bytes() == before, what  # refused: untouched
            continue
        lines = path.read_bytes().splitlines()
        assert path.read_bytes().endswith(b"\n"), what
        # the new row stands on its own line, with exactly the header's columns
        assert next(csv.reader([lines[-1].decode()])) == list(history.row(RESULT, "/runs/new").values()), what
    assert 2 in codes and 0 in codes
