"""torch's CPU thread count for a run.

The smoke model (hidden size 64, 2 layers) runs kernels of microseconds: extra threads only add
synchronisation, and on a small or busy machine torch's default (one thread per core) makes every forward
wait for the slowest, preempted core (measured on 2 busy cores, load 7: 1,500 tokens/s with 2 threads,
23,000 with 1). So a smoke run takes SMOKE_THREADS threads. A real model's
GEMMs do scale with cores, so other runs keep torch's default. OMP_NUM_THREADS, when set, always wins: the
user (or a CI runner sharing the host) has decided.
"""
from __future__ import annotations

import os
from typing import Any

SMOKE_THREADS = 1


def choose_threads(smoke: bool, device: Any) -> str:
    """Set torch's intra-op thread count where that helps; return the log line that says what was chosen."""
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        return (f"torch threads: {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} "
                "from the environment)")
    if smoke and device.type == "cpu":
        n = max(1, min(SMOKE_THREADS, os.cpu_count() or 1))
        torch.set_num_threads(n)
        return (f"torch threads: {n} of {os.cpu_count()} cores (the tiny smoke model only loses with more; "
                "set OMP_NUM_THREADS to choose)")
    return f"torch threads: {torch.get_num_threads()} (torch's default; set OMP_NUM_THREADS to choose)"
