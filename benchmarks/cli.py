"""Command line: the one place that turns errors into messages and exit codes.

Exit codes: 0 ok, 1 regression against a baseline, 2 bad input or usage, 3 the run itself failed.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from .errors import EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, BenchmarkError

REPO_ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks")


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 with usage; keep its code, one line
        raise BenchmarkError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _ArgParser(prog="run_benchmark.py", description="FlagPerf-style LLM inference benchmark")
    p.add_argument("--case", default="llama2_7b_mmlu", help="case name (default: llama2_7b_mmlu)")
    p.add_argument("--vendor", default=None, help="vendor name (default: nvidia when CUDA is present, else cpu)")
    p.add_argument("--data_dir", type=Path, default=Path("data"), help="folder holding weight_dir and mmlu_dir")
    p.add_argument("--output_dir", type=Path, default=None, help="default: outputs/<case>/<timestamp>/")
    p.add_argument("--config_dir", type=Path, default=REPO_ROOT / "configs", help=argparse.SUPPRESS)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a merged config key (typed by the key's declared type); repeatable")
    p.add_argument("--limit", type=int, default=None, help="run only the first N questions of every subject")
    p.add_argument("--smoke", action="store_true",
                   help="generate a tiny model and MMLU-format data and run the normal path on CPU")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
    return p


def _setup_logging(output_dir: Path, quiet: bool) -> None:
    root = logging.getLogger("benchmarks")
    root.setLevel(logging.INFO)
    root.handlers.clear()
    fh = logging.FileHandler(output_dir / "run.log", encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(fh)
    sh = logging.StreamHandler(sys.stderr)
    sh.setLevel(logging.WARNING if quiet else logging.INFO)
    sh.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
    root.addHandler(sh)
    root.propagate = False


def _prepare_output(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise BenchmarkError(f"output_dir {path} is not writable ({exc.strerror}); choose another --output_dir") from None
    return path


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(argv: list[str]) -> int:
    from .config import load_config
    from .registry import default_vendor, get_case, get_vendor
    from .runner import Run, RunRequest
    from .results import TABLE_HEADER, table_row

    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise BenchmarkError(f"--limit {args.limit}: expected a positive number of questions per subject")
    case = get_case(args.case)
    vendor_name = "cpu" if args.smoke else (args.vendor or default_vendor())
    if args.smoke and args.vendor not in (None, "cpu"):
        raise BenchmarkError(f"--smoke runs on the cpu vendor; drop --vendor {args.vendor}")
    vendor = get_vendor(vendor_name)
    config = load_config(args.config_dir, args.case, vendor_name, case.Params, vendor.Options, args.overrides)
    vendor.configure(config.vendor)
    if args.smoke:
        data_dir = case.smoke_data()
    else:
        data_dir = args.data_dir.resolve()
        case.check_data(config.case, data_dir, f"python run_benchmark.py --case {args.case} --smoke")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    output_dir = _prepare_output(args.output_dir or REPO_ROOT / "outputs" / args.case / stamp)
    _setup_logging(output_dir, args.quiet)
    log.info("case %s, vendor %s (%s), output %s", args.case, vendor_name, vendor.device_name(), output_dir)
    run_ = Run(RunRequest(case=case, vendor=vendor, config=config, data_dir=data_dir, output_dir=output_dir,
                          limit=args.limit, smoke=args.smoke, command_line=["run_benchmark.py", *argv]))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = run_.execute()
    except (KeyboardInterrupt, Exception) as exc:
        if run_.result:
            run_.result["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            run_.result["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
            run_.result["phases_s"] = dict(run_.spans.seconds)
            run_.save()
            log.error("run %s; partial result in %s", run_.result["status"], output_dir / "result.json")
        if not isinstance(exc, BenchmarkError):
            log.debug("traceback:\n%s", traceback.format_exc())
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"\n{TABLE_HEADER}\n{table_row(result)}\n")
    print(f"verdict: {result['verdict']['status']}" + "".join(f"\n  - {r}" for r in result["verdict"]["reasons"]))
    for note in result["verdict"]["notes"]:
        print(f"  note: {note}")
    print(f"results: {output_dir / 'result.json'}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a crash of the run itself: say so in one line, keep the traceback in the log
        print(f"run failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        if os.environ.get("LLAMA_BENCH_TRACEBACK"):
            traceback.print_exc()
        else:
            logging.getLogger("benchmarks").error("traceback:\n%s", traceback.format_exc())
        return EXIT_RUN_FAILED
