#!/usr/bin/env python3
"""python run_benchmark.py --case llama2_7b_mmlu [--vendor nvidia|cpu] [--smoke] ...  (see --help)"""
import sys

from benchmarks.guard import signals

signals.install()  # first: a SIGINT/SIGTERM during the imports below is recorded, then handled by the CLI

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
