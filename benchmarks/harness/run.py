"""One rank's run: init -> validation pass (the plain model) -> named optimizations, compile and warm-up ->
inference pass -> --repeat's passes, returned as one RankRecord. A single process is rank 0 of 1.

The run knows of other ranks only through its shard (`RunRequest.shard`) and a barrier before each timed pass
(`RunRequest.barrier`); it reports its progress to a Sink (the writer on rank 0) and knows no file. The summary
(benchmarks.measure.summary) and the writer turn the system's record into result.json; timing lives in
benchmarks.harness.passes and benchmarks.measure.timing.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..config import Config, scenarios
from ..contracts import Case, OptimizationContext, Vendor, hooks, is_lossy
from ..errors import BenchmarkError, one_line
from ..guard import signals
from ..measure.energy import energy_block
from ..measure.host_cpu import HostWait
from ..measure.records import PassRecord, RankRecord
from ..measure.run_telemetry import RunTelemetry
from ..measure.timing import Spans
from . import faults, optimizations
from .passes import HostBatch, plan_packs, run_pass
from .sink import NullSink, Sink
from .toolkits import executed_flops

log = logging.getLogger("benchmarks")

@dataclass(frozen=True)
class Place:
    """Where this rank runs: rank r of world_size processes, local rank on its host."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    host: str = ""


@dataclass
class RunRequest:
    case: Case
    vendor: Vendor
    config: Config
    toolkit: Any  # the configured toolkit, resolved once by the caller (the reference scenario's semantics applied)
    data_dir: Path
    limit: int | None = None
    repeat: int = 1  # --repeat N: the timed passes N times on the model built and compiled once
    progress: Callable[[str], Callable[[int, int, float, int], None] | None] | None = None  # pass -> callback
    shard: Callable[[Sequence[int]], tuple[int, int]] = lambda lengths: (0, len(lengths))  # this rank's [lo, hi)
    barrier: Callable[[str], None] = lambda what: None  # every rank reaches it before a timed pass starts
    place: Place = field(default_factory=Place)
    sink: Sink = field(default_factory=NullSink)
    config_sha256: str = ""


class Run:
    def __init__(self, req: RunRequest):
        self.req, self.cfg = req, req.config.run
        self.spans = Spans()
        self.spans.listeners.append(lambda name, started: started or req.sink.times(dict(self.spans.seconds)))
        self.telemetry = RunTelemetry(req.vendor, self.spans)  # energy/power per phase, timeline.png's clock
        self.host_wait = HostWait()  # how long the host's load kept this process's threads from a CPU, per pass
        self.active = optimizations.active(req.case.optimizations, req.config)
        self.phases_done: list[str] = []
        self.lengths: list[int] = []
        self.plan: list[tuple[int, int]] | None = None

    def execute(self) -> RankRecord:
        try:
            return self._execute()
        except (torch.OutOfMemoryError, RuntimeError) as exc:  # one line: where, prompt length, figures, knobs
            if not faults.is_out_of_memory(exc) or isinstance(exc, faults.DeviceOutOfMemory):
                raise
            raise faults.describe_run(exc, self.phases_done, self.req.config, self.req.limit, self.lengths,
                                      self.active, self.req.vendor.device()) from exc

    def _execute(self) -> RankRecord:
        req, cfg, vendor = self.req, self.cfg, self.req.vendor
        prepare_process(vendor, cfg)
        monitor = vendor.memory_monitor()
        with self.telemetry, monitor:  # the telemetry first: its idle baseline is taken before anything loads
            start = time.perf_counter()
            workload, shard, model, batch = self._init()
            choices = workload.choice_ids
            val = None if cfg.no_validation else self._validation(model, batch, choices)
            fn, fallback, flops, infer = model, None, (None, None), None
            if scenarios.skips_inference(req.config.scenario, cfg.compiler):
                log.info("inference pass skipped: compiler none in the reference scenario (the reference runs no "
                         "inference pass without a compiler)")
            else:
                fn, fallback, flops = self._compile(model, batch)
                req.barrier("the inference pass")  # before its span: a rank waiting for the others is not in it
                with self.spans.span("inference", vendor.synchronize):
                    infer = self._timed("inference", fn, batch, choices, stream=True)
                self._phase_done("inference")
            e2e = time.perf_counter() - start  # run 1 only: --repeat's extra passes are not in it
            repeats = tuple(self._repeat(k, model, fn, batch, choices, val, infer) for k in range(2, req.repeat + 1))
        return self._record(shard, e2e, val, infer, repeats, req.toolkit.report(), fallback, flops, monitor.report(),
                            workload)

    def _init(self) -> tuple[Any, tuple[int, int], Any, HostBatch]:
        req, cfg = self.req, self.cfg
        with self.spans.span("init", req.vendor.synchronize):
            workload = req.case.load_workload(req.config.case, req.data_dir, req.limit)
            samples = list(workload.samples)
            self.lengths = [len(s.input_ids) for s in samples]
            shard = req.shard(self.lengths)
            path = scenarios.load_path(req.config.scenario)  # given only when not the default (older cases)
            model = req.case.build_model(req.config.case, req.data_dir, precision=cfg.effective_precision,
                                         device=req.vendor.device(), synthetic=cfg.synthetic_weights, seed=cfg.seed,
                                         **({} if path == "direct" else {"load_path": path}))
            batch = HostBatch([s.input_ids for s in samples[shard[0]:shard[1]]], req.vendor.device())
        req.sink.workload(samples, shard, workload.fingerprint,
                          {"questions": len(samples), "tokens": sum(self.lengths), **workload.notes})
        self.model_info = hooks.model_architecture(model)
        self._phase_done("init")
        return workload, shard, model, batch

    def _validation(self, model: Any, batch: HostBatch, choices: Any) -> PassRecord:
        sync, device = self.req.vendor.synchronize, self.req.vendor.device()
        if self.cfg.warmup_longest and batch.lengths:  # a data-parallel rank's shard may be empty
            with self.spans.span("val_warmup", sync), torch.inference_mode():
                n = max(batch.lengths)
                model(torch.ones(1, n, dtype=torch.int64, device=device), torch.tensor([n - 1], device=device))
        self.req.barrier("the validation pass")
        with self.spans.span("validation", sync):
            rec = self._timed("validation", model, batch, choices, stream=True)
        self._phase_done("validation")
        return rec

    def _compile(self, model: Any, batch: HostBatch) -> tuple[Any, str | None, tuple]:
        """The named optimizations and the toolkit's compile and warm-up (the compile phase): the callable the
        inference pass runs, the compile fallback (None: the toolkit's callable) and its FLOPs."""
        req, cfg = self.req, self.cfg
        self.plan = plan_packs(batch.lengths, optimizations.pack_tokens(self.active))  # the forwards, planned once
        calls = [tuple(batch.lengths[i:j]) for i, j in self.plan]
        fallback = None
        with self.spans.span("compile", req.vendor.synchronize), self.host_wait.measure("compile"):
            optimizations.apply_all(model, self.active, OptimizationContext(  # the plain model served validation
                vendor=req.vendor, precision=cfg.effective_precision, longest_prompt=max(batch.lengths, default=1)))
            try:
                fn = req.toolkit.prepare(model, calls)
            except (BenchmarkError, KeyboardInterrupt):
                raise
            except Exception as exc:  # a toolkit failure is a run failure unless fallback is allowed
                if not cfg.allow_compile_fallback:
                    raise
                fallback, fn = f"{type(exc).__name__}: {one_line(exc, 300)}", model
                log.warning("toolkit %s failed (%s); running the plain model", cfg.compiler, fallback)
        self._phase_done("compile")
        pad = hooks.pad_multiple_of(req.toolkit) if fn is not model else 1  # a fallback runs the plain model
        return fn, fallback, executed_flops(hooks.flops_counter(model), pad, calls)

    def _timed(self, name: str, fn: Any, batch: HostBatch, choices: Any, stream: bool = False,
               label: str | None = None) -> PassRecord:
        """One timed pass (its caller puts the barrier before it: every rank compiled and warmed up, all measure
        the same interval); the inference pass runs the planned forwards (packs when an optimization asks)."""
        req, label, packed = self.req, label or name, name == "inference"
        progress = self.telemetry.wrap(label, req.progress(label) if req.progress else None, self.cfg.log_freq)
        with self.host_wait.measure(label):
            rec = run_pass(name, fn, batch, req.vendor.synchronize, self.cfg.log_freq, progress, choices,
                           req.sink.stream(name) if stream else None,
                           optimizations.pack_tokens(self.active) if packed else 0, self.plan if packed else None)
        if stream:  # run 1's passes
            req.sink.pass_done(rec)
        return rec

    def _repeat(self, k: int, model: Any, fn: Any, batch: HostBatch, choices: Any, val: Any,
                infer: Any) -> tuple[PassRecord | None, PassRecord | None]:
        """--repeat's run k on the model and callable of run 1. A lossy precision replaced the plain model's weights
        after run 1's validation pass: its validation pass is not repeated (metrics.REPEAT_DESIGN)."""
        label = f"repeat {k}/{self.req.repeat}"
        self.req.barrier(f"repeat {k}")
        with self.spans.span("repeats", self.req.vendor.synchronize):
            v = None if val is None or is_lossy(self.cfg.effective_precision) else self._timed(
                "validation", model, batch, choices, label=f"validation ({label})")
            self.req.barrier(f"inference ({label})")
            i = None if infer is None else self._timed("inference", fn, batch, choices, label=f"inference ({label})")
        self._phase_done(f"repeat_{k}")
        return v, i

    def _record(self, shard: tuple[int, int], e2e: float, val: Any, infer: Any, repeats: tuple, report: Any,
                fallback: str | None, flops: tuple, memory: Any, workload: Any) -> RankRecord:
        req, place, vendor = self.req, self.req.place, self.req.vendor
        return RankRecord(
            rank=place.rank, world_size=place.world_size, local_rank=place.local_rank, host=place.host,
            device=str(vendor.device()), device_type=vendor.device().type, device_name=vendor.device_name(),
            first_question=shard[0], questions=shard[1] - shard[0], tokens=sum(self.lengths[shard[0]:shard[1]]),
            e2e_s=e2e, phases_s=dict(self.spans.seconds), validation=val, inference=infer, repeats=repeats,
            toolkit=toolkit_block(report, fallback), optimizations=tuple(optimizations.labels(self.active)),
            memory=memory, peak=device_peak(vendor, req.config),
            executed_flops=flops[0], padding_flops=flops[1],
            energy=energy_block(self.telemetry.record, self.telemetry.reason), host_cpu_wait=self.host_wait.record(),
            fingerprint=dict(workload.fingerprint), config_sha256=req.config_sha256, model=self.model_info,
            timeline=self.telemetry.timeline, workload=workload)

    def _phase_done(self, name: str) -> None:
        signals.check()  # a stop request that library code swallowed ends the run here
        self.phases_done.append(name)
        self.req.sink.phase_done(name, dict(self.spans.seconds))


def toolkit_block(report: Any, fallback: str | None) -> dict[str, Any]:
    """result.json's `toolkit_report` from the toolkit's report and the compile fallback (None: there was none)."""
    return {"name": report.name, "recompiles": report.recompiles, "graph_recordings": report.graph_recordings,
            "compile_cache": dict(report.compile_cache) if report.compile_cache else None,
            "optimizations": list(report.optimizations), "details": dict(report.details), "compile_fallback": fallback}


def device_peak(vendor: Vendor, config: Config) -> Any:
    """The vendor's peak FLOP/s for the run's precision, its source naming --set when the override came from there
    (a vendor only knows its own YAML key)."""
    peak = vendor.peak_flops(config.run.effective_precision, config.run.tf32)
    if config.sources.get("peak_flops") == "--set" and peak.value:
        return type(peak)(peak.value, f"--set peak_flops={peak.value:.4g}")
    return peak


def prepare_process(vendor: Vendor, cfg: Any) -> None:
    """What a run sets process-wide before it loads anything: the precision checked against the vendor, the seeds,
    and whether fp32 matmuls may use TF32."""
    if not vendor.supports(cfg.effective_precision):
        raise BenchmarkError(f"config key 'precision': vendor '{vendor.name}' device {vendor.device_name()} cannot "
                             f"run {cfg.effective_precision}; choose another precision with --set precision=...")
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    torch.set_float32_matmul_precision("high" if cfg.tf32 else "highest")
