"""A test vendor: the cpu vendor plus toolkits that fail on purpose, for the fault tests (tests/cli/test_faults.py,
tests/cli/test_hostile.py), found through $LLAMA_BENCH_VENDOR_PATH=tests/vendors. `--set compiler=broken` crashes
in prepare, `slow` sleeps $FAULTY_SLEEP_S (default 120) there, `interrupt` raises KeyboardInterrupt, `oom_long`
raises torch.OutOfMemoryError on prompts longer than $FAULTY_OOM_TOKENS."""
import os
import time

import torch

from benchmarks.toolkits import TOOLKITS, Eager
from vendors.cpu import CpuVendor

OOM_TEXT = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB of which "
            "1.05 GiB is free. If reserved but unallocated memory is large try setting "
            "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.")


class Broken(Eager):
    name = "broken"

    def prepare(self, model_fn, warmup_calls):
        raise RuntimeError("simulated compiler crash")


class Slow(Eager):
    name = "slow"

    def prepare(self, model_fn, warmup_calls):
        time.sleep(float(os.environ.get("FAULTY_SLEEP_S", "120")))
        return model_fn


class Interrupt(Eager):
    name = "interrupt"

    def prepare(self, model_fn, warmup_calls):
        raise KeyboardInterrupt


class OomLong(Eager):
    """Raises torch.OutOfMemoryError for prompts longer than $FAULTY_OOM_TOKENS."""

    name = "oom_long"

    def prepare(self, model_fn, warmup_calls):
        limit = int(os.environ.get("FAULTY_OOM_TOKENS", "0"))

        def fn(ids, last):
            if ids.shape[1] > limit:
                raise torch.OutOfMemoryError(OOM_TEXT)
            return model_fn(ids, last)

        return fn


class FaultyVendor(CpuVendor):
    name = "faulty"

    def toolkits(self):
        return {**TOOLKITS, "broken": Broken, "slow": Slow, "interrupt": Interrupt, "oom_long": OomLong}


VENDOR = FaultyVendor()
