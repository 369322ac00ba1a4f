"""Where a result came from, and whether two results measured the same thing.

`git_state`: the project's commit and whether the tree had uncommitted changes. `config_sha256` hashes the
canonical JSON of the merged config (every key, `--set` overrides included), so two results with the same
hash ran the same settings; `result["fingerprint"]` (the data and weights the case read) says they read the
same inputs. `same_measurement` compares both plus what the command line changes outside the config
(--limit, --smoke).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any, Mapping

REPO_ROOT = Path(__file__).resolve().parents[1]


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):  # no git binary, or it hung
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """{"git_commit": sha or None, "git_dirty": bool or None}; None when `root` is not a git checkout."""
    head = _git(root, "rev-parse", "HEAD")
    if head is None:
        return {"git_commit": None, "git_dirty": None}
    status = _git(root, "status", "--porcelain")
    return {"git_commit": head.strip(), "git_dirty": None if status is None else bool(status.strip())}


def canonical_json(data: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept; values JSON cannot hold are written as their str()."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def config_sha256(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def same_measurement(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """What differs between two result.json dicts in what they measure; [] means the same measurement."""
    diffs = []
    for key in ("case", "config_sha256", "limit", "smoke"):
        if a.get(key) != b.get(key):
            diffs.append(f"{key}: {a.get(key)!r} != {b.get(key)!r}")
    fa, fb = a.get("fingerprint") or {}, b.get("fingerprint") or {}
    for key in sorted(set(fa) | set(fb)):
        if fa.get(key) != fb.get(key):
            diffs.append(f"fingerprint.{key}: {fa.get(key)!r} != {fb.get(key)!r}")
    if not fa or not fb:
        diffs.append("fingerprint missing (the run stopped before loading the data)")
    return diffs
