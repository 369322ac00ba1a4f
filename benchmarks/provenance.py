"""Where a result came from: the project's git commit and whether the tree had uncommitted changes."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

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
