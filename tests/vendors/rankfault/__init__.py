"""A test vendor: the cpu vendor plus a toolkit (`--set compiler=rank_fault`) that fails or dies on one rank of a
data-parallel run in the inference pass (tests/harness/test_distributed.py), found through
$LLAMA_BENCH_VENDOR_PATH=tests/vendors. Rank $FAULT_RANK, after $FAULT_AFTER forwards: $FAULT_MODE `raise` (a
RuntimeError), `kill` (SIGKILL to itself) or `sleep` (600 s)."""
import os
import signal

from benchmarks.toolkits import TOOLKITS, Eager
from vendors.cpu import CpuVendor


class RankFault(Eager):
    name = "rank_fault"

    def prepare(self, model_fn, warmup_calls):
        rank, after = int(os.environ["FAULT_RANK"]), int(os.environ["FAULT_AFTER"])
        calls = [0]

        def fn(ids, last):
            calls[0] += 1
            if int(os.environ.get("RANK", "0")) == rank and calls[0] > after:
                if os.environ["FAULT_MODE"] == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if os.environ["FAULT_MODE"] == "sleep":
                    import time
                    time.sleep(600)
                raise RuntimeError(f"injected fault on rank {rank} at forward {calls[0]}")
            return model_fn(ids, last)

        return fn


class RankFaultVendor(CpuVendor):
    name = "rankfault"

    def toolkits(self):
        return {**TOOLKITS, "rank_fault": RankFault}


VENDOR = RankFaultVendor()
