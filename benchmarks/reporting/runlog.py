"""run.log: the run's log file in its folder (run.log.rank<N> on the other ranks of a data-parallel run), written
through benchmarks.guard.safe_write, and the terminal's share of the same lines."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from ..errors import printable

log = logging.getLogger("benchmarks")
_LIBRARY_LOGGERS = ("transformers", "torch", "py.warnings")
_library_saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []


class _RunLog(logging.FileHandler):
    """run.log through benchmarks.guard.safe_write: appended, never through a symlink, only a regular file."""

    def _open(self) -> Any:
        from ..guard.safe_write import open_log

        return open_log(Path(self.baseFilename))

    def handleError(self, record: logging.LogRecord) -> None:
        """A log line that cannot be written (disk full) is lost, quietly: logging would print a traceback to
        stderr, and the run's own files and its one stderr line say what went wrong."""
        self.lost = getattr(self, "lost", 0) + 1


class _Printable(logging.Formatter):
    """Log lines with their control characters escaped: a path holding a terminal escape sequence is shown."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep_newlines=True)


def setup(output_dir: Path, quiet: bool, rank: int = 0) -> None:
    root = logging.getLogger("benchmarks")
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):  # a second run in one process must not leak the first one's log file
        root.removeHandler(handler)
        handler.close()
    fh = _RunLog(output_dir / ("run.log" if rank == 0 else f"run.log.rank{rank}"), encoding="utf-8")
    fh.setFormatter(_Printable("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(fh)
    sh = logging.StreamHandler(sys.stderr)
    sh.setLevel(logging.WARNING if quiet else logging.INFO)
    sh.addFilter(lambda record: not getattr(record, "file_only", False))  # e.g. Finish Info: stdout has it
    if rank != 0:  # rank 0 speaks for the run; the others' lines are in run.log.rank<N>
        sh.setLevel(logging.CRITICAL)
    sh.setFormatter(_Printable("[%(asctime)s] %(message)s", "%H:%M:%S"))
    root.addHandler(sh)
    root.propagate = False


def library_logs_to_run_log(quiet: bool) -> None:
    """With --quiet, warnings of transformers/torch (and Python warnings) go to run.log, not the terminal:
    a quiet run prints only its summary or its one failure line."""
    if not quiet:
        return
    file_handlers = [h for h in log.handlers if isinstance(h, logging.FileHandler)]
    logging.captureWarnings(True)
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        _library_saved.append((logger, list(logger.handlers), logger.propagate))
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in file_handlers:
            logger.addHandler(handler)
        logger.propagate = False


def restore_library_logs() -> None:
    while _library_saved:
        logger, handlers, propagate = _library_saved.pop()
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in handlers:
            logger.addHandler(handler)
        logger.propagate = propagate
    logging.captureWarnings(False)


def file_only(level: int, msg: str, *args: Any) -> None:
    """A record for run.log alone: the terminal gets one line per failure, from the CLI."""
    record = log.makeRecord(log.name, level, __file__, 0, msg, args, None)
    for handler in log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
