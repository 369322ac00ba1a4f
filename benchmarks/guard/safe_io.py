"""Where a run's files go, so that none is lost, mixed with another run's or deleted by mistake; and the
checks every path given on the command line passes before any work (the writes themselves: safe_write).

* `check_path`: a path argument that cannot work is refused up front with one line: bytes that are not
  UTF-8, control characters (a terminal escape sequence would be printed), a name longer than the file
  system allows (255 bytes), a symlink loop.
* `new_run_dir`: the default output folder, unique even for runs started in the same second (pid suffix, and
  a random one if that exists too: another host on a shared disk).
* `claim_output_dir`: an explicit --output_dir that already holds a run is refused, or emptied of exactly the
  files that run recorded it wrote (result.json's `files`; the run's fixed file names when it has none) with
  --overwrite, so no stale file ever sits beside a new result.json and no file of the user's is touched.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any, Mapping

from . import input_limits, safe_write
from ..errors import BenchmarkError
from .safe_write import shown  # noqa: F401  (the name callers use)

# The run folder's files, the one list: name -> when the run has it (benchmarks.reporting.writer writes them,
# --overwrite removes only those a result.json recorded). The temporary names an atomic write of them uses while
# it runs are left behind only by a kill.
RUN_FILES: Mapping[str, str] = {
    "result.json": "always", "result.md": "completed", "result.csv": "completed",
    "predictions.jsonl": "after the first pass", "predictions.partial.jsonl": "while a pass runs",
    "throughput_vs_length.png": "completed", "timeline.png": "completed, with telemetry",
    "telemetry.csv": "completed, with telemetry", "run.log": "always (run.log.rank<N> on the other ranks)",
}
STREAM_FILE = "predictions.partial.jsonl"
COMPLETED_ONLY = tuple(name for name, when in RUN_FILES.items() if when.startswith("completed"))
_RANK_LOG = re.compile(r"run\.log\.rank\d{1,6}")
_TEMP = re.compile(r"\.(?:" + "|".join(re.escape(n) for n in RUN_FILES) + r")\.[A-Za-z0-9_]{6,16}\.tmp")
NAME_MAX = 255  # bytes of one path component on Linux file systems
PATH_MAX = 4095


def check_utf8_path(path: Path, what: str) -> None:
    """Refuse a path that is not valid UTF-8: result.json, run.log and the summary all print it, and a run
    that measured for hours must not fail at its last print."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise BenchmarkError(f"{what} {shown(path)}: the path has bytes that are not UTF-8; choose a path with "
                             "UTF-8 (or ASCII) characters") from None


def check_path_text(text: str, what: str) -> None:
    """The text of a path: UTF-8, no control characters, no component over NAME_MAX bytes, not over PATH_MAX."""
    check_utf8_path(Path(text), what)
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text):
        raise BenchmarkError(f"{what} {shown(text)}: the path contains control characters; choose a path "
                             "without them")
    long = next((part for part in text.split("/") if len(part.encode("utf-8")) > NAME_MAX), None)
    if long is not None:
        raise BenchmarkError(f"{what} {shown(text)[:80]}...: a path component of {len(long.encode('utf-8'))} bytes, "
                             f"more than the {NAME_MAX} a file name may have; choose a shorter path")
    if len(text.encode("utf-8")) > PATH_MAX:
        raise BenchmarkError(f"{what} {shown(text)[:80]}...: {len(text.encode('utf-8'))} bytes, more than the "
                             f"{PATH_MAX} a path may have; choose a shorter path")


def check_path(path: Path | str, what: str) -> Path:
    """check_path_text, then a symlink loop (or another path the kernel cannot resolve) is refused too.
    Returns the path unchanged."""
    check_path_text(str(path), what)
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BenchmarkError(f"{what} {shown(path)}: a symlink loop (too many levels of symbolic links); "
                                 "fix the links or give the real path") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise BenchmarkError(f"{what} {shown(path)}: the path is too long for the file system; choose a "
                                 "shorter path") from None
    return Path(path)


def new_run_dir(parent: Path, stamp: str) -> Path:
    """parent/<stamp>-<pid>, created here (exclusively): two runs never share it."""
    parent.mkdir(parents=True, exist_ok=True)
    name = f"{stamp}-{os.getpid()}"
    for _ in range(100):
        path = parent / name
        try:
            path.mkdir()
            return path
        except FileExistsError:
            name = f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"
    raise BenchmarkError(f"output folder {parent}: cannot create a new run folder there; give --output_dir")


def is_run_file(name: str) -> bool:
    """A name a run writes in its folder (never a path)."""
    return name in RUN_FILES or bool(_RANK_LOG.fullmatch(name) or _TEMP.fullmatch(name))


def _recorded(folder: Path) -> list[str] | None:
    """The `files` the run in `folder` recorded in its result.json; None when it recorded none (an older
    version, a run killed before its first write, a damaged file)."""
    try:
        data = input_limits.parse_json(input_limits.read_bytes(folder / "result.json", "result.json", 64 * 2**20),
                                       "result.json")
    except (OSError, ValueError, RecursionError, BenchmarkError):
        return None
    files = data.get("files") if isinstance(data, Mapping) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return [f for f in files if is_run_file(f)]


def run_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The files of an earlier run in `folder`, sorted: those its result.json recorded (an older version's
    result.json records none: then the run's own file names), and the temporary names of a killed write. Never a
    glob of a user's names such as diagram.png or predictions_2019.jsonl. Second: the run's file names present
    that no result.json records (a user's result.csv, say), which nothing may remove."""
    try:
        present = {entry.name for entry in os.scandir(folder)}
    except OSError:
        present = set()
    temps = {n for n in present if _TEMP.fullmatch(n)}
    ours = {n for n in present if is_run_file(n)} - temps
    if "result.json" not in present:
        return sorted(folder / n for n in temps), sorted(ours)
    recorded = _recorded(folder)
    names = (set(recorded) | {"result.json"}) if recorded is not None else ours
    return sorted(folder / n for n in (names & present) | temps), sorted(ours - names)


def _check_run_names(folder: Path) -> None:
    """A run file's name taken by a folder, FIFO or device: the run could never write it. Refused up front
    (with or without --overwrite, which never removes a folder)."""
    for name in RUN_FILES:
        try:
            mode = os.lstat(folder / name).st_mode
        except OSError:
            continue
        kind = safe_write.kind_of(mode)
        if kind is not None:
            raise BenchmarkError(f"--output_dir {shown(folder)}: {name} there is {kind}, not a file, so the run "
                                 "could not write it; remove it or choose another --output_dir")


def claim_output_dir(folder: Path, overwrite: bool) -> list[Path]:
    """Refuse a folder holding a run (BenchmarkError), or with `overwrite` delete that run's files. The
    caller holds the folder's lock (benchmarks.guard.locks), so no other run writes there meanwhile. Returns
    what was removed."""
    _check_run_names(folder)
    old, unrecorded = run_files(folder)
    if unrecorded:
        raise BenchmarkError(f"--output_dir {shown(folder)} holds {', '.join(unrecorded[:4])} but no result.json "
                             "recording them as a run's files, so they are not removed, even with --overwrite; "
                             "remove them yourself or choose another --output_dir")
    if old and not overwrite:
        names = ", ".join(p.name for p in old[:4]) + (", ..." if len(old) > 4 else "")
        raise BenchmarkError(f"--output_dir {shown(folder)} already holds a run ({names}); pass --overwrite to "
                             "replace it, or choose another --output_dir")
    removed = []
    for path in old:
        try:
            if safe_write.remove(path, "--output_dir file"):
                removed.append(path)
        except OSError as exc:
            raise BenchmarkError(f"--output_dir {shown(folder)}: cannot remove the earlier run's {path.name} "
                                 f"({exc.strerror}); remove it yourself or choose another --output_dir") from None
    return removed


def files_present(folder: Path) -> list[str]:
    """The run's own file names present in `folder` now (for result.json's `files`)."""
    try:
        names = [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    except OSError:
        return []
    return sorted(n for n in names if n in RUN_FILES or _RANK_LOG.fullmatch(n))


def rewrite_in_place(path: Path, data: Mapping[str, Any]) -> None:
    """Last resort when the atomic write of result.json fails (disk full: no room for a second copy):
    overwrite the existing file's blocks. A status of a few bytes more rarely needs a new block."""
    safe_write.rewrite_in_place(path, safe_write.json_text(data).encode("utf-8"))


def is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
