"""The one way this project writes, appends to, locks or removes a file (tests/harness/test_one_write_path.py
fails on any other write in benchmarks/ or vendors/).

* Never through a symlink: a new file is made under a fresh temporary name in the target's folder with
  O_CREAT|O_EXCL|O_NOFOLLOW (an existing name, link or not, is never opened), filled, fsynced, then renamed
  over the target; a rename replaces a symlink itself, never the file it points to. Appends, locks and logs
  open the name itself with O_NOFOLLOW, so a planted link is refused, not followed.
* Only onto a regular file or nothing: a folder, FIFO, device node or socket at the target is refused with a
  one-line BenchmarkError naming the path (`compare-predictions --out /dev/null` as root must not replace
  the device node). Opens use O_NONBLOCK, so a FIFO is found by fstat instead of blocking the process.
* Whole lines or nothing: an append writes all its lines or cuts the file back to its length before (a full
  disk usually fails mid-write), then fsyncs; a reader never sees half a record from us.
* Atomic replacement for everything else: a crash leaves the previous file or the new one, never a mix.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import secrets
import stat
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

from ..errors import BenchmarkError, printable

# The calls that put bytes in a file: a test makes the disk "full" through them (appends apart from the rest).
_write = os.write
_append = os.write
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
_NAME_MAX = 255


def report_mode() -> int:
    """0666 less the process umask, as open() would create the file (mkstemp alone gives 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def shown(path: Path | str) -> str:
    """A path for a message or a terminal: bytes that are not UTF-8 as \\xNN, control characters escaped."""
    return printable(os.fsencode(str(path)).decode("utf-8", "backslashreplace"))


def kind_of(mode: int) -> str | None:
    """'a folder', 'a FIFO', ... for what is not a regular file or a symlink; None for those two."""
    return next((name for test, name in _KINDS if test(mode)), None)


def _refuse(path: Path, kind: str, what: str) -> BenchmarkError:
    label = f"{what} " if what else ""
    return BenchmarkError(f"{label}{shown(path)} is {kind}, not a regular file; give the path of a file (or of "
                          "none yet) to write")


def check_target(path: Path, what: str = "") -> None:
    """Raise a BenchmarkError when `path` exists as anything but a regular file or a symlink (which a rename
    replaces without following)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BenchmarkError(f"{what + ' ' if what else ''}{shown(path)}: cannot use it ({exc.strerror}); "
                             "choose another path") from None
    kind = kind_of(mode)
    if kind is not None:
        raise _refuse(path, kind, what)


def _temp_name(path: Path) -> Path:
    stem = path.name if len(path.name.encode()) <= _NAME_MAX - 16 else path.name[: (_NAME_MAX - 16) // 4]
    return path.with_name(f".{stem}.{secrets.token_hex(4)}.tmp")


def _write_all(fd: int, data: bytes, write: Any = None) -> None:
    view = memoryview(data)
    while view:
        view = view[(write or _write)(fd, view):]


def _fsync_folder(folder: Path) -> None:
    """The rename itself on disk (best effort: some file systems refuse to open a folder for it)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes, what: str = "") -> None:
    """Replace `path` with `data` atomically (see the module's rules)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_target(path, what)
    for _ in range(100):
        tmp = _temp_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            break
        except FileExistsError:
            continue
    else:
        raise OSError(errno.EEXIST, f"no free temporary name beside {path}")
    try:
        try:
            os.fchmod(fd, report_mode())
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        check_target(path, what)  # made meanwhile? then refuse rather than rename over it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def write_text(path: Path, text: str, what: str = "") -> None:
    write_bytes(path, text.encode("utf-8"), what)


def clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def json_text(data: Any) -> str:
    return json.dumps(clean(data), indent=2) + "\n"


def write_json(path: Path, data: Mapping[str, Any], what: str = "") -> None:
    write_text(path, json_text(data), what)


def jsonl_text(rows: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(clean(r)) + "\n" for r in rows)


def open_fd(path: Path, flags: int, what: str = "", create: bool = True) -> int:
    """os.open of `path` itself (O_NOFOLLOW, O_NONBLOCK), refused unless it is a regular file; the caller closes
    the descriptor. A symlink at `path` is an OSError (ELOOP) turned into a BenchmarkError naming it."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | (os.O_CREAT if create else 0), report_mode())
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BenchmarkError(f"{what + ' ' if what else ''}{shown(path)} is a symlink; it is never written "
                                 "through: remove it or choose another path") from None
        if exc.errno in (errno.ENXIO, errno.EISDIR):  # a FIFO without a reader, a folder
            check_target(path, what)
        raise
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise _refuse(path, kind, what)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_fd(fd: int, text: str) -> None:
    """Append whole lines to an open descriptor, all of them or none (the file is cut back on any error)."""
    if text and not text.endswith("\n"):
        raise ValueError("append_fd takes whole lines")
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        _write_all(fd, text.encode("utf-8"), _append)
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise


def replace_fd_contents(fd: int, data: bytes) -> None:
    """An open file's whole contents (a lock file's pid), fsynced."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    _write_all(fd, data)
    os.fsync(fd)


def truncate_fd(fd: int, length: int) -> None:
    """Cut an open file back to `length` bytes (a torn last line), fsynced."""
    os.ftruncate(fd, length)
    os.fsync(fd)


def append_lines(path: Path, text: str, what: str = "") -> None:
    """Append `text` (whole lines) to `path`: all of it or nothing, fsynced."""
    fd = open_fd(path, os.O_WRONLY | os.O_APPEND, what)
    try:
        append_fd(fd, text)
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_append_text(path: Path, what: str = "") -> Iterator[IO[str]]:
    fd = open_fd(path, os.O_WRONLY | os.O_APPEND, what)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        yield f


def open_log(path: Path) -> IO[str]:
    """A text stream appending to `path` (run.log): same rules as an append; the caller closes it."""
    return os.fdopen(open_fd(path, os.O_WRONLY | os.O_APPEND, "log file"), "a", encoding="utf-8")


def rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite an existing file's own blocks (same inode): the last resort for result.json when the disk has
    no room for a second copy, and the history upgrade that writers waiting on its inode must still see."""
    fd = open_fd(path, os.O_WRONLY, create=False)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        _write_all(fd, data)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def probe_folder(folder: Path) -> None:
    """Create, write and remove a fresh file in `folder` (O_EXCL on a random name: nothing existing is opened);
    raises OSError when the folder cannot take files."""
    probe = folder / f".write-test-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        _write_all(fd, b"ok")
    finally:
        os.close(fd)
        os.unlink(probe)


def remove_tree(path: Path) -> None:
    """Remove a folder this project made (a cache's own generated folder), or a symlink or file in its place:
    a symlink is removed itself, never followed into."""
    import shutil

    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


def move_folder(src: Path, dst: Path) -> None:
    """Put a folder made beside `dst` (in the same file system) in its place, replacing what is there."""
    remove_tree(dst)
    os.replace(src, dst)


def remove(path: Path, what: str = "") -> bool:
    """Remove a file or a symlink (the link, never what it points to); a folder is refused. True if removed."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        raise _refuse(Path(path), "a folder", what)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
