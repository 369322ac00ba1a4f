"""One run per output folder at a time: `<output_dir>/.run.lock`, holding the owner's pid, flock'ed while it runs.

The kernel drops an flock when its process dies (SIGKILL, power loss), so a lock file that nobody holds is
stale whatever pid it names: it is taken over, with a note. The pid is only for the message.
"""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from . import safe_write
from ..errors import BenchmarkError
from .safe_write import shown

LOCK_NAME = ".run.lock"
_held: list[tuple[int, Path]] = []  # (fd, path) of the locks this process holds, released by release_all()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def lock_output_dir(folder: Path) -> str | None:
    """Take the folder's lock or raise BenchmarkError naming the run holding it. Returns a note when a stale
    lock (of a process that is gone) was taken over, else None."""
    path = folder / LOCK_NAME
    for _ in range(20):
        fd = safe_write.open_fd(path, os.O_RDWR, "--output_dir lock")  # never through a planted symlink
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            owner = _read_pid(path)
            who = f"pid {owner}" if owner is not None else "another process"
            raise BenchmarkError(f"--output_dir {shown(folder)}: another run ({who}) is writing there now (lock "
                                 f"{shown(path)}); wait for it or choose another --output_dir") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if not same:  # the previous owner removed the file between our open and flock: try the new one
            os.close(fd)
            continue
        previous = _read_fd_pid(fd)
        safe_write.replace_fd_contents(fd, f"{os.getpid()}\n".encode())
        _held.append((fd, path))
        if previous is not None and previous != os.getpid():
            state = "still running but not holding it" if _pid_alive(previous) else "no longer running"
            return f"took over the stale lock {path} of pid {previous} ({state})"
        return None
    raise BenchmarkError(f"--output_dir {shown(folder)}: could not take the lock {shown(path)}; choose another "
                         "--output_dir")


def _read_fd_pid(fd: int) -> int | None:
    text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _read_pid(path: Path) -> int | None:
    try:
        fd = safe_write.open_fd(path, os.O_RDONLY, create=False)
    except (OSError, BenchmarkError):
        return None
    try:
        return _read_fd_pid(fd)
    finally:
        os.close(fd)


def release_all() -> None:
    """Remove and unlock every lock this process took (the file first: a waiter then sees a new inode)."""
    while _held:
        fd, path = _held.pop()
        try:
            safe_write.remove(path)
        except (OSError, BenchmarkError):
            pass
        os.close(fd)
