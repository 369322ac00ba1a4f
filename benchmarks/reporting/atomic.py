"""The result files' writes, by name, so that a test can make one kind fail: each goes through
benchmarks.guard.safe_write (atomic, never through a symlink, only onto a regular file). JSON gets null for
NaN/inf, so every reader can parse it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from ..guard import safe_write


def atomic_write_text(path: Path, text: str) -> None:
    safe_write.write_text(path, text)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    safe_write.write_bytes(path, data)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, safe_write.json_text(data))


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    atomic_write_text(path, safe_write.jsonl_text(rows))
