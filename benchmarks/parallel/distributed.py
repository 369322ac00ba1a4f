"""Data-parallel runs: one process per device, started by torchrun (or `--nproc N`, which calls torchrun's
Python API: benchmarks.parallel.launcher), any number of devices and nodes.

Everything here builds on torch.distributed; there is no launcher or transport of our own:
- the process group is torch's, on the backend torch maps to the device type (NCCL for CUDA, gloo for the
  CPU: `torch.distributed.Backend.default_device_backend_map`), joined through torchrun's rendezvous
  (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT in the environment), with `--dist_timeout` as its timeout;
- the harness's own traffic is small and host-side, on a gloo group (the process group itself on the CPU) and
  the process group's key-value store.

Torch's machinery first, decided wait by wait (measured with gloo, torch 2.13, on one host):
- Joining: `init_process_group(timeout=--dist_timeout)`, torch's rendezvous and its deadline.
- The host names and the run's folder: `all_gather_object` and `broadcast_object_list` on the gloo group, bounded
  by its timeout. Every rank comes to them straight from the rendezvous and rank 0 only makes a folder, so nobody
  waits more than milliseconds; a peer that dies meanwhile closes its connections and gloo raises at once
  ("Connection closed by peer", 2 ms after a SIGKILL). They carry strings the ranks made.
- The barrier before each timed pass: torch's barrier on the gloo group with `async_op=True`, waited for in a
  Python loop. A rank waits there as long as the slowest rank's load, compile and warm-up (minutes), and a
  thread blocked in a C++ call runs no Python signal handler until the call returns: a blocking barrier (or
  `monitored_barrier`, which blocks too) would leave the rank deaf to Ctrl-C, SIGTERM and its watchdog, and
  torchrun SIGKILLs a worker 30 s after its SIGTERM, its end unrecorded. Polled, the barrier still ends the
  moment gloo sees a peer's connection close (its error becomes PeerFailed, and rank 0 names the rank).
  `monitored_barrier`'s one gain, naming the ranks that did not arrive, comes here from their end records and
  heartbeats; it is not used.
- Each pass's records and the rank records at the end: JSON through the store, which rank 0 alone polls. A
  collective (`gather_object`) would hold every rank at the end of every pass until the slowest arrives, block
  rank 0 as above, and unpickle what comes from the network; the store's values are only ever parsed as JSON.
- A peer's liveness: our own heartbeat (a counter in the store) and watchdog thread, for what torch lacks. Gloo
  sees a dead peer only inside a collective and NCCL's watchdog only a stuck collective; a rank killed on another
  node is not stopped by this node's torchrun agent either (each agent watches its own workers). Keeping a gloo
  operation open as a liveness probe would notice a killed peer at once, but a process cannot exit while one is
  pending (its worker thread is joined at exit: measured, rank 0 then waited for its peer's exit), so a rank with a
  hung peer could never end. The watchdog names the rank and stops the survivors on every node.

A run with WORLD_SIZE unset or 1 never creates a process group: `Dist()` is the single process and every
function below is then a no-op returning what one process would have.

Faults: every rank writes how it ended under `end/<rank>` in the store. A rank that fails says so there and
exits; the others see it at their next barrier or gather (checked twice a second), through their watchdog, or
are stopped by torchrun (which ends its node's workers when one exits non-zero), and rank 0 records the failing
rank and its error. A rank that ends without a word (SIGKILL, the OOM killer, a lost node) is named by its
heartbeat: silent for `--dist_silence_s` (default SILENCE_S) while the run goes on, every other rank's watchdog
stops its rank; once a rank is stopped, its peers' ends are known within SILENT_AFTER_S. Every wait has a
deadline (`timeout_s`, `--dist_timeout`), so no barrier waits forever.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..errors import BenchmarkError
from ..measure.records import PassRecord, RankRecord

log = logging.getLogger("benchmarks")

DEFAULT_TIMEOUT_S = 900.0  # the longest a rank waits for the others at a barrier or gather
PEER_CHECK_S = 0.5  # how often a waiting rank (and the watchdog) looks for a peer's end
HEARTBEAT_S = 0.5  # every rank's watchdog counts up `alive/<rank>` this often
SILENT_AFTER_S = 4.0  # a stopped rank 0 takes a peer whose heartbeat stood still this long for dead
SILENCE_S = 10.0  # --dist_silence_s: a running rank stops the run when a peer's heartbeat stood still this long
MIN_SILENCE_S = 2.0  # 4 heartbeats: less would take a rank busy for a moment (a GIL-holding call) for dead
SHARDING = "contiguous shards balanced by prompt tokens (BOS included), in the workload's order"


class PeerFailed(Exception):
    """Another rank ended (failed, interrupted or vanished) while this one waited for it."""


class RankFailed(Exception):
    """The run failed on a named rank; the message starts with `rank N: `."""


class RankUsageError(BenchmarkError):
    """A rank other than this one refused its input (exit 2 there): the same exit code here."""


@dataclass
class Dist:
    """Where this process stands in the run. `Dist()` is a single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    host: str = field(default_factory=socket.gethostname)
    timeout_s: float = DEFAULT_TIMEOUT_S
    silence_s: float = SILENCE_S
    backend: str | None = None
    hosts: list[str] = field(default_factory=list)
    store: Any = field(default=None, repr=False)
    group: Any = field(default=None, repr=False)
    _tags: dict[str, int] = field(default_factory=dict, repr=False)
    stopped_by: str | None = None  # why the watchdog stopped this rank (a peer's end or silence)
    silent: set[int] = field(default_factory=set)  # ranks the watchdog found silent for silence_s
    watching: bool = False  # the watchdog may interrupt the main thread (while the run goes on)

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, lengths: Sequence[int]) -> tuple[int, int]:
        """This rank's questions [lo, hi) of the workload."""
        return shard_bounds(lengths, self.world_size)[self.rank]

    def describe(self) -> dict[str, Any]:
        """result.json's `distributed` block as known at the start."""
        return {"world_size": self.world_size, "backend": self.backend, "control": "gloo group + store",
                "hosts": list(self.hosts), "nodes": len(set(self.hosts)), "sharding": SHARDING,
                "timeout_s": self.timeout_s, "silence_s": self.silence_s}


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise BenchmarkError(f"environment variable {name}={text!r} is not an integer (set by torchrun)") from None


def from_env(timeout_s: float = DEFAULT_TIMEOUT_S, silence_s: float = SILENCE_S) -> Dist:
    """The rank, world size and local rank torchrun put in the environment; Dist() without them."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Dist(timeout_s=timeout_s, silence_s=silence_s)
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < world:
        raise BenchmarkError(f"RANK={rank} is outside WORLD_SIZE={world}")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:  # the process group's rendezvous would fail deep in torch, after the run folder exists
        raise BenchmarkError(f"environment: WORLD_SIZE={world} but {' and '.join(missing)} not set; start a "
                             "data-parallel run with torchrun (or --nproc N), which sets them, or unset WORLD_SIZE")
    return Dist(rank=rank, world_size=world, local_rank=local, timeout_s=timeout_s, silence_s=silence_s)


def device_options(options: Any, ctx: Dist) -> Any:
    """The vendor options this rank configures its vendor with: a vendor that picks its device by a
    `device_index` key runs rank r on LOCAL_RANK r. The recorded config is not changed (it is the same on
    every rank); CUDA_VISIBLE_DEVICES still chooses which devices a node offers."""
    if not ctx.active or not dataclasses.is_dataclass(options):
        return options
    if "device_index" in {f.name for f in dataclasses.fields(options)}:
        return dataclasses.replace(options, device_index=ctx.local_rank)
    return options


# --------------------------------------------------------------------------------------------- sharding


def shard_bounds(lengths: Sequence[int], world_size: int) -> list[tuple[int, int]]:
    """Cut the questions into `world_size` contiguous ranges of about equal token count: range r ends where
    the running token count is nearest to (r + 1) x total / world_size. Deterministic, every question in
    exactly one range, order kept (predictions concatenate back in the workload's order), and each range
    at most one prompt's tokens off its share. A range may be empty (fewer questions than ranks)."""
    n = len(lengths)
    if world_size <= 1:
        return [(0, n)]
    total = sum(lengths)
    bounds, start, run, i = [], 0, 0, 0
    for r in range(world_size - 1):
        target = (r + 1) * total / world_size
        # advance while taking the next prompt brings the running count nearer to the target
        while i < n and abs(run + lengths[i] - target) <= abs(run - target):
            run += lengths[i]
            i += 1
        bounds.append((start, i))
        start = i
    bounds.append((start, n))
    return bounds


# ------------------------------------------------------------------------------------- process group


def setup(ctx: Dist, device: Any) -> Dist:
    """Join the process group (torchrun's rendezvous, env://) on the device type's backend, make the gloo
    control group and share the host names. No-op for a single process."""
    if not ctx.active:
        return ctx
    import torch.distributed as td

    timeout = _dt.timedelta(seconds=ctx.timeout_s)
    ctx.backend = td.Backend.default_device_backend_map.get(device.type, "gloo")
    try:
        td.init_process_group(backend=ctx.backend, timeout=timeout)
    except (RuntimeError, TimeoutError) as exc:  # torch's DistStoreError naming a store key, e.g. /default_pg/0//cpu//0/1
        raise PeerFailed(f"rank {ctx.rank}: not every rank joined the process group within {ctx.timeout_s:g} s "
                         "(--dist_timeout): one refused its input or could not start (its node's launcher log says "
                         f"why); torch: {_gloo_error(exc)}") from exc
    if td.get_world_size() != ctx.world_size or td.get_rank() != ctx.rank:
        raise BenchmarkError(f"process group has rank {td.get_rank()} of {td.get_world_size()}, the environment "
                             f"says {ctx.rank} of {ctx.world_size}")
    ctx.group = td.group.WORLD if ctx.backend == "gloo" else td.new_group(backend="gloo", timeout=timeout)
    ctx.store = td.PrefixStore("llama_bench/", td.distributed_c10d._get_default_store())
    ctx.hosts = all_gather(ctx, "hosts", ctx.host)
    start_watchdog(ctx)
    return ctx


def _beats(ctx: Dist, r: int) -> int:
    return ctx.store.add(f"alive/{r}", 0)


def start_watchdog(ctx: Dist) -> None:
    """A daemon thread: this rank's heartbeat, and, while `ctx.watching`, a stop (SIGTERM's handler run in
    the main thread: the run records how it ended, and rank 0 names the rank) when another rank has ended
    other than completed, or its heartbeat has stood still for `ctx.silence_s` (killed, hung, or its node
    lost: nothing on this node notices that, torchrun's agent included)."""
    import _thread
    import signal
    import threading

    ctx.watching = True

    def watch() -> None:
        seen = {r: (-1, time.monotonic()) for r in range(ctx.world_size) if r != ctx.rank}
        while True:
            try:
                ctx.store.add(f"alive/{ctx.rank}", 1)
                ended, stale = look(ctx, seen, time.monotonic())
            except Exception:  # the store is gone (rank 0's node): the waits and the launcher handle it
                return
            if ctx.watching and (ended or stale):
                ctx.silent.update(stale)
                r = ended[0][0] if ended else stale[0]
                ctx.stopped_by = (f"rank {r} ended ({ended[0][1]['status']})" if ended
                                  else f"rank {r}'s heartbeat stood still for {ctx.silence_s:g} s (--dist_silence_s)")
                ctx.watching = False
                _thread.interrupt_main(signal.SIGTERM)
            time.sleep(HEARTBEAT_S)

    threading.Thread(target=watch, name="llama-bench-watchdog", daemon=True).start()


def look(ctx: Dist, seen: dict[int, tuple[int, float]], now: float
         ) -> tuple[list[tuple[int, dict[str, Any]]], list[int]]:
    """One look of the watchdog at the other ranks: (those that ended other than completed, with their end; those
    whose heartbeat has stood still longer than `ctx.silence_s`). `seen` (rank -> last heartbeat count and when it
    last moved) is updated; a rank that completed leaves it (its heartbeat stops with it: done, not silent)."""
    ends = {r: _end_of(ctx, r) for r in sorted(seen)}
    for r, end in ends.items():
        if end is not None and end["status"] == "completed":
            del seen[r]
    for r, (count, since) in seen.items():
        beats = _beats(ctx, r)
        seen[r] = (beats, now) if beats != count else (count, since)
    ended = [(r, end) for r, end in ends.items() if end is not None and end["status"] != "completed"]
    return ended, [r for r, (count, since) in seen.items() if now - since > ctx.silence_s]


def teardown(ctx: Dist) -> None:
    """Leave the process group (after a completed run: with a peer gone, the process just exits)."""
    if not ctx.active:
        return
    import torch.distributed as td

    if td.is_initialized():
        td.destroy_process_group()


def _wait(ctx: Dist, done: Callable[[], bool], what: str) -> None:
    """Poll `done` until true; raise PeerFailed when a peer has ended, TimeoutError past the deadline.
    A Python loop (short sleeps growing to 10 ms), so SIGINT/SIGTERM are handled while waiting."""
    start = time.monotonic()
    deadline, next_check, nap = start + ctx.timeout_s, start + PEER_CHECK_S, 1e-4
    while not done():
        now = time.monotonic()
        if now >= next_check:
            ended = ended_peers(ctx)
            if ended:
                r, end = ended[0]
                raise PeerFailed(f"rank {r} ended ({end['status']}: {end.get('error') or 'no error'}) "
                                 f"while rank {ctx.rank} waited for {what}")
            next_check = now + PEER_CHECK_S
        if now >= deadline:
            raise TimeoutError(f"rank {ctx.rank} waited {ctx.timeout_s:.0f} s for {what} (--dist_timeout); "
                               "a rank is hung or gone")
        time.sleep(nap)
        nap = min(nap * 1.5, 0.01)


def barrier(ctx: Dist, what: str) -> None:
    """All ranks reach this point before any goes on (the gloo group's barrier, waited for in Python)."""
    if not ctx.active:
        return
    import torch.distributed as td

    work = td.barrier(group=ctx.group, async_op=True)
    _wait(ctx, work.is_completed, f"the barrier before {what}")
    try:
        work.wait()  # gloo's own error, if the barrier ended with one
    except RuntimeError as exc:  # a peer's connection closed (it died): rank 0 names it (attribute)
        raise PeerFailed(f"the barrier before {what} failed on rank {ctx.rank}: {_gloo_error(exc)}") from exc


def _gloo_error(exc: BaseException) -> str:
    """Gloo's message without its source position (`[.../pair.cc:553] Connection closed by peer ...`)."""
    text = " ".join(str(exc).split())
    if text.startswith("[") and "] " in text:
        text = text.split("] ", 1)[1]
    return text.split(". This is typically", 1)[0][:300]


def _collective(ctx: Dist, what: str, call: Callable[[], Any]) -> Any:
    """A blocking object collective on the gloo group (torch's, bounded by the group's timeout), for exchanges
    every rank reaches at once; a peer that died meanwhile is a PeerFailed, as at a barrier."""
    try:
        return call()
    except RuntimeError as exc:
        raise PeerFailed(f"rank {ctx.rank} could not exchange {what}: {_gloo_error(exc)}") from exc


def _key(ctx: Dist, tag: str) -> str:
    k = ctx._tags.get(tag, 0)
    ctx._tags[tag] = k + 1
    return f"{tag}#{k}"


def gather(ctx: Dist, tag: str, value: Any) -> list[Any] | None:
    """Rank 0 gets every rank's JSON-able `value`, by rank; the others get None (they do not wait)."""
    if not ctx.active:
        return [value]
    key = _key(ctx, tag)
    ctx.store.set(f"{key}/{ctx.rank}", json.dumps(value))
    if not ctx.is_main:
        return None
    keys = [f"{key}/{r}" for r in range(ctx.world_size)]
    _wait(ctx, lambda: ctx.store.check(keys), f"every rank's {tag}")
    out = [json.loads(ctx.store.get(k)) for k in keys]
    for k in keys:
        ctx.store.delete_key(k)
    return out


def all_gather(ctx: Dist, tag: str, value: str) -> list[str]:
    """Every rank gets every rank's string `value`, by rank (torch's all_gather_object; every rank reaches it at
    once: no Python wait needed)."""
    if not ctx.active:
        return [value]
    import torch.distributed as td

    out: list[Any] = [None] * ctx.world_size
    _collective(ctx, f"every rank's {tag}", lambda: td.all_gather_object(out, str(value), group=ctx.group))
    return [str(v) for v in out]


def share(ctx: Dist, tag: str, value: dict[str, str] | None = None) -> dict[str, str]:
    """Rank 0's `value` (a dict of strings), on every rank (torch's broadcast_object_list; the others wait only
    while rank 0 makes the run's folder)."""
    if not ctx.active:
        return value or {}
    import torch.distributed as td

    box: list[Any] = [{str(k): str(v) for k, v in (value or {}).items()} if ctx.is_main else None]
    _collective(ctx, f"rank 0's {tag}", lambda: td.broadcast_object_list(box, src=0, group=ctx.group))
    got = box[0]
    if not isinstance(got, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in got.items()):
        raise PeerFailed(f"rank 0's {tag} came as {type(got).__name__}, not a dict of strings")
    return got


class PostingSink:
    """The sink of a rank other than 0: each of run 1's pass records goes to rank 0 (a key of the store, no wait);
    nothing else leaves the rank before its whole record at the end."""

    def __init__(self, ctx: Dist) -> None:
        self.ctx = ctx

    def workload(self, samples: Sequence[Any], shard: tuple[int, int], fingerprint: Any, counts: Any) -> None:
        pass

    def stream(self, pass_name: str) -> None:
        return None

    def pass_done(self, rec: PassRecord) -> None:
        post_pass(self.ctx, rec)

    def phase_done(self, name: str, phases_s: Any) -> None:
        pass

    def times(self, phases_s: Any) -> None:
        pass


class GatheringSink:
    """Rank 0's sink: its writer sees the system's pass (every rank's record of it, as the aggregate combines them,
    benchmarks.parallel.aggregate.system_pass), so result.json and predictions.jsonl of a run that fails later hold
    every rank's finished passes; waiting for them is where a failed peer is noticed."""

    def __init__(self, ctx: Dist, writer: Any) -> None:
        self.ctx, self.writer = ctx, writer

    def workload(self, samples: Sequence[Any], shard: tuple[int, int], fingerprint: Any, counts: Any) -> None:
        self.writer.workload(samples, (0, len(samples)), fingerprint, counts)

    def stream(self, pass_name: str) -> Any:
        return self.writer.stream(pass_name)  # rank 0's shard comes first: its indices are the workload's

    def pass_done(self, rec: PassRecord) -> None:
        from .aggregate import system_pass

        post_pass(self.ctx, rec)
        self.writer.pass_done(system_pass(posted_passes(self.ctx, rec.name)))

    def phase_done(self, name: str, phases_s: Any) -> None:
        self.writer.phase_done(name, phases_s)

    def times(self, phases_s: Any) -> None:
        self.writer.times(phases_s)


def post_pass(ctx: Dist, rec: PassRecord) -> None:
    ctx.store.set(f"pass/{rec.name}/{ctx.rank}", json.dumps(dataclasses.asdict(rec)))


def posted_passes(ctx: Dist, name: str) -> list[PassRecord]:
    """Every rank's record of run 1's pass `name`, by rank, waiting for them (a peer's end raises PeerFailed)."""
    keys = [f"pass/{name}/{r}" for r in range(ctx.world_size)]
    _wait(ctx, lambda: ctx.store.check(keys), f"every rank's {name} pass")
    return [PassRecord(**record_from_json(json.loads(ctx.store.get(k)))) for k in keys]


def gather_records(ctx: Dist, record: RankRecord) -> list[RankRecord] | None:
    """Rank 0 gets every rank's record, by rank (its own as it is: its timeline and workload stay on it); the
    others get None. One process: [record]."""
    if not ctx.active:
        return [record]
    got = gather(ctx, "rank records", record.as_json())
    if got is None:
        return None
    return [record if r["rank"] == ctx.rank else RankRecord.of_json(r) for r in got]


def record_to_json(rec: Any) -> dict[str, Any]:
    """A pass record (benchmarks.passes.PassRecord) as JSON-able values, to send to rank 0."""
    return dataclasses.asdict(rec)


def record_from_json(data: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the PassRecord `record_to_json` was given (lists back to tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


# ------------------------------------------------------------------------------------------ endings


def report_end(ctx: Dist, status: str, error: str | None = None, code: int = 0) -> None:
    """Say how this rank ended (completed, failed, interrupted, usage), for the others; never raises."""
    if not ctx.active or ctx.store is None:
        return
    try:
        ctx.store.set(f"end/{ctx.rank}", json.dumps({"status": status, "error": error, "code": code}))
    except Exception:  # the store is gone with rank 0's node: nobody is left to tell
        pass


def _end_of(ctx: Dist, r: int) -> dict[str, Any] | None:
    if not ctx.store.check([f"end/{r}"]):
        return None
    return json.loads(ctx.store.get(f"end/{r}"))


def ended_peers(ctx: Dist) -> list[tuple[int, dict[str, Any]]]:
    """Other ranks that ended other than `completed`, by rank. A store that cannot be reached counts as
    rank 0's end (it hosts the store outside torchrun)."""
    out = []
    try:
        for r in range(ctx.world_size):
            if r != ctx.rank:
                end = _end_of(ctx, r)
                if end is not None and end["status"] != "completed":
                    out.append((r, end))
    except Exception as exc:  # the store went away
        return [(0, {"status": "gone", "error": f"the process group's store cannot be reached "
                                                f"({type(exc).__name__})"})]
    return out


def peer_ends(ctx: Dist, wait_s: float = SILENT_AFTER_S) -> dict[int, dict[str, Any] | None]:
    """How every other rank ended: its end record, waiting up to `wait_s` for those that have not said yet
    (a rank stopped by the launcher says so within a second); then {"status": "running"} for one whose
    heartbeat still moves, None for one whose heartbeat stood still (killed, or hung)."""
    ends: dict[int, dict[str, Any] | None] = {r: None for r in range(ctx.world_size) if r != ctx.rank}
    start = time.monotonic()
    try:
        beats0 = {r: _beats(ctx, r) for r in ends}
        while True:
            for r in ends:
                if ends[r] is None:
                    ends[r] = _end_of(ctx, r)
            # a rank the watchdog found silent for --dist_silence_s is not waited for again
            if all(e is not None or r in ctx.silent for r, e in ends.items()):
                return ends
            if time.monotonic() - start >= wait_s:
                break
            time.sleep(0.1)
        for r in ends:
            if ends[r] is None and _beats(ctx, r) != beats0[r]:
                ends[r] = {"status": "running", "error": None, "code": 0}
    except Exception:  # the store is gone: what is known so far
        pass
    return ends


def attribute(ctx: Dist, exc: BaseException) -> BaseException:
    """Rank 0, stopped by a peer's end or by a signal: the failing rank's error when there is one (a rank
    that failed, or one that vanished without a word), an interruption naming the rank a signal stopped, else
    `exc` itself (an interruption of all ranks)."""
    if not (ctx.active and ctx.is_main and isinstance(exc, (PeerFailed, KeyboardInterrupt, TimeoutError))):
        return exc
    ctx.watching = False
    ends = peer_ends(ctx)
    for r, end in sorted(ends.items()):
        if end is not None and end["status"] in ("failed", "usage", "gone"):
            cls = RankUsageError if end["status"] == "usage" else RankFailed
            return cls(f"rank {r}: {end['error']}")
    silent = [r for r, end in sorted(ends.items()) if end is None]
    if silent:
        r = silent[0]
        how = (f"its heartbeat stood still for {ctx.silence_s:g} s" if r in ctx.silent
               else "its heartbeat stood still once the run stopped")
        return RankFailed(f"rank {r}: ended without reporting an error (killed, e.g. SIGKILL or the out-of-memory "
                          f"killer, hung, or its node lost: {how}); its exit status is in its node's launcher log")
    signalled = [r for r, end in sorted(ends.items()) if end is not None and end["status"] == "interrupted"]
    if signalled and not (isinstance(exc, KeyboardInterrupt) and not ctx.stopped_by):
        # a signal stopped another rank (a scheduler's SIGTERM to one node): the run was interrupted, as when
        # rank 0 gets the signal itself (status interrupted, exit 130 under --nproc), not a failure
        r = signalled[0]
        return KeyboardInterrupt(f"rank {r} was stopped by a signal ({ends[r]['error']})")
    return exc


def end_states(ctx: Dist) -> dict[str, Any]:
    """rank -> how it ended, as far as known now (result.json `distributed.ranks_at_end` of a failed run)."""
    out: dict[str, Any] = {}
    try:
        for r in range(ctx.world_size):
            out[str(r)] = _end_of(ctx, r)
    except Exception:
        pass
    return out
