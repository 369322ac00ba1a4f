"""Where a run's files go and how they are written so that none is lost, mixed with another run's or half-made.

* `new_run_dir`: the default output folder, unique even for runs started in the same second (pid suffix, and
  a random one if that exists too: another host on a shared disk).
* `claim_output_dir`: an explicit --output_dir that already holds a run is refused, or emptied of that run's
  files with --overwrite, so no stale file ever sits beside a new result.json.
* `append_whole`: appends a chunk of lines entirely or not at all (a full disk never leaves half a line).
* result files get `reporting.atomic.report_mode()` (0644 under the usual umask; mkstemp alone gives 0600).
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Mapping

from .errors import BenchmarkError
from .reporting.atomic import _clean, report_mode

# A run's own files in its folder (outputs.RESULT_FILES, the streamed predictions, a temp file left by a kill).
_write = os.write  # one name for the appends below, so a test can make the disk "full" for them alone
RUN_FILE_GLOBS = ("result.json", "result.md", "result.csv", "predictions*.jsonl", "*.png", "telemetry.csv", "run.log",
                  ".result.*.tmp", ".predictions*.tmp")


def shown(path: Path | str) -> str:
    """A path for a message even when it holds bytes that are not UTF-8 (escaped as \\xNN)."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def check_utf8_path(path: Path, what: str) -> None:
    """Refuse a path that is not valid UTF-8: result.json, run.log and the summary all print it, and a run
    that measured for hours must not fail at its last print."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise BenchmarkError(f"{what} {shown(path)}: the path has bytes that are not UTF-8; choose a path with "
                             "UTF-8 (or ASCII) characters") from None


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


def run_files(folder: Path) -> list[Path]:
    """The files of an earlier run in `folder`, sorted."""
    found: set[Path] = set()
    for pattern in RUN_FILE_GLOBS:
        found.update(p for p in folder.glob(pattern) if p.is_file() or p.is_symlink())
    return sorted(found)


def claim_output_dir(folder: Path, overwrite: bool) -> list[Path]:
    """Refuse a folder holding a run (BenchmarkError), or with `overwrite` delete that run's files. The
    caller holds the folder's lock (benchmarks.locks), so no other run writes there meanwhile. Returns
    what was removed."""
    old = run_files(folder)
    if old and not overwrite:
        names = ", ".join(p.name for p in old[:4]) + (", ..." if len(old) > 4 else "")
        raise BenchmarkError(f"--output_dir {shown(folder)} already holds a run ({names}); pass --overwrite to "
                             "replace it, or choose another --output_dir")
    for path in old:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise BenchmarkError(f"--output_dir {shown(folder)}: cannot remove the earlier run's {path.name} "
                                 f"({exc.strerror}); remove it yourself or choose another --output_dir") from None
    return old


def append_whole(path: Path, text: str) -> None:
    """Append `text` (whole lines) to `path`, all of it or nothing: on any error the file is cut back to
    its length before, so a reader never sees half a line (a full disk usually fails mid-write)."""
    data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, report_mode())
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[_write(fd, view):]
            os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def rewrite_in_place(path: Path, data: Mapping[str, Any]) -> None:
    """Last resort when the atomic write of result.json fails (disk full: no room for a second copy):
    overwrite the existing file's blocks. A status of a few bytes more rarely needs a new block."""

    text = (json.dumps(_clean(data), indent=2) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, report_mode())
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        view = memoryview(text)
        while view:
            view = view[os.write(fd, view):]
        os.ftruncate(fd, len(text))
        os.fsync(fd)
    finally:
        os.close(fd)
