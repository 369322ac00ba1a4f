#!/usr/bin/env python3
"""The paper model of a data-parallel run's e2e time against N devices (docs/multi_gpu.md, "Scale on paper").

    e2e(N) = init + val_warmup + compile                    (every rank, at once: they do not shrink with N)
           + tokens / N x (1 / rate_val + 1 / rate_infer)   (the two timed passes, each rank its shard)
           + imbalance                                       (the slowest shard: one prompt, one pack more)
           + gather                                          (rank 0: every rank's record, the aggregate)

Constants: the H200's full case, fp16, optimized scenario (docs/results/README.md, session 7: init 16.5 s,
val_warmup 0.5 s, validation 454.7 s and inference 250.1 s over 10,854,627 tokens, compile and warm-up 83.7 s,
e2e 806 s) and the gather measured on the CPU by tools/gather_cost.py. `python3 tools/scale_model.py` prints the
table docs/multi_gpu.md shows (a test checks the two agree).
"""
from __future__ import annotations

from dataclasses import dataclass

TOKENS = 10_854_627  # the full case's prompt tokens (BOS included)


@dataclass(frozen=True)
class Constants:
    init_s: float = 16.5  # load the workload (every rank tokenizes all of it) and the model
    val_warmup_s: float = 0.5
    compile_s: float = 83.7  # compile and warm-up on the rank's own pack shapes (cold: 71.9-83.7 s)
    rate_val: float = TOKENS / 454.7  # tokens/s of one device's validation pass (eager, one prompt per forward)
    rate_infer: float = TOKENS / 250.1  # tokens/s of one device's inference pass (compiled, packed)
    prompt_tokens: int = 2048  # the longest prompt: shards are cut within one prompt of their token share
    pack_tokens: int = 12288  # a rank's last pack may be nearly empty: up to one pack's time more
    gather_s: float = 0.04  # every rank posts its record, rank 0 reads and aggregates (tools/gather_cost.py: <= 36 ms)

    @property
    def fixed_s(self) -> float:
        return self.init_s + self.val_warmup_s + self.compile_s

    @property
    def passes_s(self) -> float:
        """Both timed passes of the whole workload on one device."""
        return TOKENS / self.rate_val + TOKENS / self.rate_infer


def e2e_s(n: int, c: Constants = Constants()) -> float:
    imbalance = 0.0 if n == 1 else c.prompt_tokens / c.rate_val + c.pack_tokens / c.rate_infer
    return c.fixed_s + c.passes_s / n + imbalance + (c.gather_s if n > 1 else 0.0)


def row(n: int, c: Constants = Constants()) -> dict[str, str]:
    """One row of the docs' table, formatted as it is written there."""
    t, t1 = e2e_s(n, c), e2e_s(1, c)
    fixed = c.fixed_s / t
    infer_s = TOKENS / c.rate_infer / n + (c.pack_tokens / c.rate_infer if n > 1 else 0.0)  # the slowest shard
    return {"devices": str(n), "e2e s": f"{t:.1f}", "speed-up": f"{t1 / t:.2f}", "efficiency": f"{t1 / t / n:.0%}",
            "fixed share": f"{fixed:.0%}", "p_infer_pass": f"{TOKENS / infer_s:,.0f}",
            "p_infer_whole": f"{TOKENS / (c.compile_s + infer_s):,.0f}"}


DEVICES = (1, 2, 4, 8, 16, 64)


def table(c: Constants = Constants()) -> str:
    rows = [row(n, c) for n in DEVICES]
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r[h] for h in head) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    c = Constants()
    print(f"fixed per rank {c.fixed_s:.1f} s, both passes on one device {c.passes_s:.1f} s, "
          f"break-even N = passes / fixed = {c.passes_s / c.fixed_s:.1f}, limit {c.fixed_s:.1f} s")
    print(table(c))
