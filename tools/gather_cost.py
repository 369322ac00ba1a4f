#!/usr/bin/env python3
"""What the end of a data-parallel run costs rank 0 (the `gather` term of tools/scale_model.py), on this host.

A smoke run (in this process, its files in a temporary folder) gives one real rank record; it is scaled to the
full case's shards (14,042 questions and 10,854,627 tokens split N ways, both passes) and sent as the harness
sends it: as_json -> JSON -> the process group's key-value store (a TCPStore on localhost) -> JSON -> of_json,
then `aggregate`. One process plays every rank, so this is serialization and store throughput, not a network.

    python3 tools/gather_cost.py [N ...]        (default: 1 2 8 64)
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUESTIONS, TOKENS = 14_042, 10_854_627


def one_record():
    from benchmarks import cli
    from benchmarks.parallel import distributed

    got = []
    original = distributed.gather_records

    def keep(ctx, record):
        got.append(dataclasses.replace(record, timeline=None, workload=None))
        return original(ctx, record)

    distributed.gather_records = keep
    try:
        with tempfile.TemporaryDirectory() as out:
            code = cli.main(["--smoke", "--limit", "2", "--set", "few_shots=0", "--quiet", "--output_dir", out])
    finally:
        distributed.gather_records = original
    if code != 0 or not got:
        raise SystemExit(f"the smoke run failed (exit {code})")
    return got[0]


def shard_record(base, rank: int, n: int):
    q = QUESTIONS // n + (1 if rank < QUESTIONS % n else 0)

    def scaled(rec):
        if rec is None:
            return None
        return dataclasses.replace(rec, n_questions=q, tokens=TOKENS // n, predictions=(3,) * q,
                                   core_s_each=(0.0123456789,) * q,
                                   choice_predictions=None if rec.choice_predictions is None else (1,) * q)

    return dataclasses.replace(base, rank=rank, world_size=n, first_question=rank * q, questions=q,
                               tokens=TOKENS // n, validation=scaled(base.validation), inference=scaled(base.inference))


def main(sizes: list[int]) -> None:
    import torch.distributed as td

    from benchmarks.measure.records import RankRecord
    from benchmarks.parallel.aggregate import aggregate

    base = one_record()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = td.TCPStore("127.0.0.1", port, 1, True, timeout=datetime.timedelta(seconds=60))
    for n in sizes:
        records = [shard_record(base, r, n) for r in range(n)]
        t0 = time.perf_counter()
        for rec in records:  # every rank's side (in parallel on a real run)
            store.set(f"rr/{n}/{rec.rank}", json.dumps(rec.as_json()))
        t1 = time.perf_counter()
        back = [RankRecord.of_json(json.loads(store.get(f"rr/{n}/{r}"))) for r in range(n)]  # rank 0
        system = aggregate(back)
        t2 = time.perf_counter()
        size = sum(len(json.dumps(r.as_json())) for r in records)
        assert system.questions == QUESTIONS
        print(f"N={n:3d}: {size / 1e6:.2f} MB of JSON; every rank's post {(t1 - t0) / n * 1e3:6.1f} ms each; "
              f"rank 0 reads and aggregates in {(t2 - t1) * 1e3:6.1f} ms")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 2, 8, 64])
