"""`--nproc N`: the same command under torchrun on this host (torchrun's Python API, standalone rendezvous), with
the run's exit code mapped back.

Plain torchrun returns 1 whenever a worker exits non-zero, with its ChildFailedError report (a traceback) on
stderr: a regression, a bad input, a failure and an interruption all read 1. `--nproc` returns what one process
would have (0 completed, 1 regression, 2 bad input, 3 failed, 130 interrupted) with one line, never a traceback:

* every rank leaves its exit code and its one line in a private folder named by $LLAMA_BENCH_RANK_ENDS (made here,
  removed at the end); ranks other than 0 print nothing to the terminal (rank 0 speaks for the run; their lines
  are in run.log.rank<N>), so a bad input refused on every rank is one line, not N;
* rank 0's code is the run's when it left one (it wrote result.json and printed the line);
* otherwise (rank 0 was killed, or never got that far) this launcher prints the one line: the rank that refused
  its input (2), the rank that failed or vanished and how (3), or the interruption (130).

result.json's `status` stays the source of truth under any launcher (docs/multi_gpu.md says how to read it).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_REGRESSION, EXIT_RUN_FAILED, EXIT_USAGE, printable

ENDS_ENV = "LLAMA_BENCH_RANK_ENDS"  # the folder where each rank of an --nproc run leaves how it ended
OURS = (EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_RUN_FAILED, EXIT_INTERRUPTED)
MAX_END_BYTES = 16_384  # a rank's end file: an exit code and one line


@dataclass(frozen=True)
class RankEnd:
    code: int
    line: str | None


def quiet_rank() -> bool:
    """This process is a rank other than 0 of an --nproc run: it leaves its line to the launcher."""
    return bool(os.environ.get(ENDS_ENV)) and os.environ.get("RANK", "0") != "0"


def leave_end(code: int, line: str | None) -> None:
    """Under --nproc: this rank's exit code and one line, for the launcher (never raises: the run's own end
    is decided already)."""
    from ..errors import BenchmarkError
    from ..guard.safe_write import write_json

    folder, rank = os.environ.get(ENDS_ENV), os.environ.get("RANK", "")
    if not folder or not rank.isdigit():
        return
    try:
        write_json(Path(folder) / f"{rank}.json", {"code": int(code), "line": line}, "the rank's end")
    except (OSError, ValueError, BenchmarkError):
        pass


def read_ends(folder: Path) -> dict[int, RankEnd]:
    """Every rank's end as left in `folder`; a file that is not what leave_end writes is skipped."""
    ends: dict[int, RankEnd] = {}
    for path in folder.glob("*.json"):
        try:
            if not path.stem.isdigit() or path.stat().st_size > MAX_END_BYTES:
                continue
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and type(data.get("code")) is int and isinstance(data.get("line"), (str, type(None))):
            ends[int(path.stem)] = RankEnd(data["code"], data["line"])
    return ends


def exit_code(ends: dict[int, RankEnd], failures: dict[int, int], signum: int | None) -> tuple[int, str | None]:
    """The exit code of an --nproc run and the line this launcher prints (None when rank 0 printed its own).

    `ends`: what each rank left (read_ends); `failures`: rank -> exit code of each worker torchrun saw fail
    (negative: killed by that signal); `signum`: the signal that stopped the launcher, if one did."""
    first = ends.get(0)
    if first is not None and first.code in OURS:  # rank 0 recorded the run and said its line
        if first.code == EXIT_OK and failures:
            r = min(failures)
            return EXIT_OK, (f"note: rank {r} exited with {_how(failures[r])} after the run completed (its log: "
                             f"run.log.rank{r} in the run's folder)")
        return first.code, None
    usage = sorted(r for r, end in ends.items() if end.code == EXIT_USAGE and end.line)
    if usage:  # a rank refused its input (a node's own data, memory, device): the same code as one process
        return EXIT_USAGE, f"rank {usage[0]}: {_line(ends[usage[0]].line)}"
    if signum is not None:
        return EXIT_INTERRUPTED, (f"interrupted: signal {signum}; every rank stopped, rank 0 left no record of its "
                                  "end (result.json, when there is one, holds what finished)")
    said = sorted(r for r, end in ends.items() if end.code in (EXIT_RUN_FAILED, EXIT_INTERRUPTED) and end.line)
    if said:
        return EXIT_RUN_FAILED, f"run failed: rank {said[0]}: {_line(ends[said[0]].line)}"
    if failures:
        r = 0 if 0 in failures else min(failures)
        return EXIT_RUN_FAILED, (f"run failed: rank {r}: {_how(failures[r])} (its log: run.log"
                                 f"{'' if r == 0 else f'.rank{r}'} in the run's folder)")
    return EXIT_RUN_FAILED, "run failed: rank 0 ended without leaving its exit code (see run.log in the run's folder)"


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _line(line: str | None) -> str:
    return printable(" ".join((line or "").split()))[:1000]


def launch(nproc: int, argv: Sequence[str], script: str) -> int:
    """Run `script argv` on `nproc` processes of this host under torchrun; the run's exit code (above)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    from ..guard.safe_write import remove_tree

    folder = Path(tempfile.mkdtemp(prefix="llama-bench-ranks-"))
    previous_env = os.environ.get(ENDS_ENV)
    os.environ[ENDS_ENV] = str(folder)  # the workers inherit it
    muted = _mute_torchrun_logs()
    failures: dict[int, int] = {}
    signum: int | None = None
    try:
        args = get_args_parser().parse_args(["--standalone", "--nproc_per_node", str(nproc), script, *argv])
        try:
            run(args)
        except SignalException as exc:  # Ctrl-C or SIGTERM on the launcher: torchrun has stopped every rank
            signum = int(exc.sigval)
        except ChildFailedError as exc:
            failures = {int(r): int(f.exitcode) for r, f in exc.failures.items()}
        code, line = exit_code(read_ends(folder), failures, signum)
    finally:
        for logger, level in muted:
            logger.setLevel(level)
        if previous_env is None:
            os.environ.pop(ENDS_ENV, None)
        else:
            os.environ[ENDS_ENV] = previous_env
        remove_tree(folder)
    if line:
        print(line, file=sys.stderr)
    return code


def _mute_torchrun_logs() -> list[tuple[logging.Logger, int]]:
    """torchrun's own log lines (`Sending process N closing signal`, `failed (exitcode: 1) local_rank: 0`) off
    the terminal: rank 0 or this launcher prints the run's one line. Each elastic module's logger has its own
    level (LOGLEVEL, default WARNING), so each is muted, not only their parent."""
    import importlib

    for module in ("torch.distributed.elastic.agent.server.api", "torch.distributed.elastic.multiprocessing.api"):
        importlib.import_module(module)  # creates their loggers

    muted = []
    names = [n for n in logging.root.manager.loggerDict
             if n.startswith(("torch.distributed.elastic", "torch.distributed.run", "torch.distributed.launcher"))]
    for name in ["torch.distributed.elastic", "torch.distributed.run", *names]:
        logger = logging.getLogger(name)
        muted.append((logger, logger.level))
        logger.setLevel(logging.CRITICAL + 1)
    return muted
