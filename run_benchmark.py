#!/usr/bin/env python3
"""python run_benchmark.py --case llama2_7b_mmlu [--vendor nvidia|cpu] [--smoke] ...  (see --help)"""
import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())
