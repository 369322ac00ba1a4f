"""The run: init -> validation pass (plain model) -> optimizations + toolkit compile + warm-up -> inference
pass -> metrics, verdict, files.

The result is kept up to date after every phase and written atomically, so a run that fails or is
interrupted still leaves a result.json (status "failed"/"interrupted") with the phases it finished.
Timing lives in benchmarks.passes and benchmarks.timing, every number in benchmarks.metrics, the rules in
benchmarks.verdict, the files in benchmarks.reporting.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..parallel import distributed
from . import faults, optimizations
from ..measure import metrics, provenance, verdict
from ..config import scenarios
from ..guard import signals
from ..measure.host_cpu import HostWait
from ..config import Config
from ..errors import BenchmarkError, one_line
from ..contracts import Case, OptimizationContext, Vendor, is_lossy
from ..measure.records import PassRecord
from .passes import HostBatch, plan_packs, run_pass
from ..registry import get_toolkit
from ..measure.run_telemetry import RunTelemetry
from ..reporting import files
from ..reporting.record import UNSET, RunResult
from ..measure.timing import Spans
from .toolkits import longest_prompt, padded_call
from .toolkits import reference_toolkit

log = logging.getLogger("benchmarks")


@dataclass
class RunRequest:
    case: Case
    vendor: Vendor
    config: Config
    data_dir: Path
    output_dir: Path
    limit: int | None = None
    smoke: bool = False
    repeat: int = 1  # --repeat N: the timed passes N times on the built model (metrics.summarize_repeats)
    command_line: list[str] = field(default_factory=lambda: list(sys.argv))
    # pass name -> per-question callback (done, total, elapsed_s, tokens_done); see benchmarks.progress
    progress: Callable[[str], Callable[[int, int, float, int], None] | None] | None = None
    # a data-parallel run (benchmarks.distributed): this rank runs its shard; rank 0 gathers and writes
    dist: distributed.Dist = field(default_factory=distributed.Dist)


def _versions() -> dict[str, Any]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "os": platform.platform()}


class Run:
    def __init__(self, req: RunRequest):
        self.req = req
        self.spans = Spans()
        self.telemetry = RunTelemetry(req.vendor, self.spans)  # energy/power per phase, timeline.png's clock
        self.host_wait = HostWait()  # how long the host's load kept this process's threads from a CPU, per pass
        self.result: RunResult | None = None
        self.val: PassRecord | None = None
        self.infer: PassRecord | None = None
        self.samples: list[Any] = []
        self.active = optimizations.active(req.case.optimizations, req.config)
        self.pack_tokens = optimizations.pack_tokens(self.active)
        self.plan: list[tuple[int, int]] | None = None
        self.flops: tuple[float | None, float | None] = (None, None)
        self.computed: metrics.Metrics | None = None
        self.model_info: dict[str, Any] | None = None
        self.dist = req.dist
        self.shard = (0, 0)  # this rank's questions [lo, hi) of self.samples (all of them in one process)
        self.local: dict[str, PassRecord] = {}  # this rank's own records of run 1's passes
        # In every streamed row and in result.json: rows of another run in the same file are told apart.
        self.run_id = f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}-{secrets.token_hex(3)}"

    def save(self) -> None:
        if self.result is not None and self.dist.is_main:
            files.save_result(self.req.output_dir, self.result)

    def execute(self) -> RunResult:
        try:
            return self._execute()
        except (torch.OutOfMemoryError, RuntimeError) as exc:  # one line: where, prompt length, figures, knobs
            if not faults.is_out_of_memory(exc) or isinstance(exc, faults.DeviceOutOfMemory):
                raise
            raise self._out_of_memory(exc) from exc

    def _execute(self) -> RunResult:
        req, cfg = self.req, self.req.config.run
        vendor, precision = req.vendor, cfg.effective_precision
        if not vendor.supports(precision):
            raise BenchmarkError(f"config key 'precision': vendor '{vendor.name}' device {vendor.device_name()} "
                                 f"cannot run {precision}; choose another precision with --set precision=...")
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        torch.set_float32_matmul_precision("high" if cfg.tf32 else "highest")
        toolkit = self._toolkit()
        self.result = self._header(precision)
        self.save()
        sync = vendor.synchronize
        monitor = vendor.memory_monitor()
        with self.telemetry, monitor:  # the telemetry first: its idle baseline is taken before anything loads
            e2e_start = time.perf_counter()
            with self.spans.span("init", sync):
                workload = req.case.load_workload(req.config.case, req.data_dir, req.limit)
                self.samples = list(workload.samples)
                self.shard = self.dist.shard([len(s.input_ids) for s in self.samples])
                model = req.case.build_model(req.config.case, req.data_dir, precision=precision,
                                             device=vendor.device(), synthetic=cfg.synthetic_weights, seed=cfg.seed,
                                             **self._load_path_kwargs())
                batch = HostBatch([s.input_ids for s in self._mine()], vendor.device())
            describe = getattr(model, "architecture", None)
            self.model_info = describe() if describe else None
            self.workload = workload
            self.result.fingerprint = dict(workload.fingerprint)
            self.result.counts = {"questions": len(self.samples),
                                  "tokens": sum(len(s.input_ids) for s in self.samples), **workload.notes}
            self._phase_done("init")
            if not cfg.no_validation:
                self._validation(model, batch, workload.choice_ids)
            if scenarios.skips_inference(req.config.scenario, cfg.compiler):
                fn, compile_fallback = model, None
                log.info("inference pass skipped: compiler none in the reference scenario (the reference runs no "
                         "inference pass without a compiler)")
            else:
                fn, compile_fallback = self._toolkit_pass(toolkit, model, batch, workload)
            if self.dist.is_main:
                files.write_predictions(req.output_dir, self.samples, self.val, self.infer)
                files.drop_stream(req.output_dir)  # predictions.jsonl now holds it all
            e2e = time.perf_counter() - e2e_start  # run 1 only: --repeat's extra passes are not in it
            if self.infer is not None:
                self._phase_done("inference")
            if req.repeat > 1:
                self._repeat_passes(model, fn, batch, workload.choice_ids)
        ranks = distributed.gather(self.dist, "rank figures", self._rank_figures(e2e, monitor.report()))
        if ranks is None:  # a rank other than 0: its figures are with rank 0, which writes the result
            return self.result
        self._finish(e2e, toolkit.report(), compile_fallback, vendor.peak_flops(precision, cfg.tf32), monitor.report(),
                     ranks)
        self._reference_record(self.computed.e2e_time)
        files.write_run_files(req.output_dir, self.result, self.telemetry.timeline)
        return self.result

    def _toolkit_pass(self, toolkit: Any, model: Any, batch: HostBatch, workload: Any) -> tuple[Any, str | None]:
        """The named optimizations and the toolkit's compile and warm-up (the compile phase), then the timed
        inference pass; returns the callable it ran and the compile fallback (None: the toolkit's callable)."""
        req, cfg, sync = self.req, self.req.config.run, self.req.vendor.synchronize
        vendor, precision = req.vendor, cfg.effective_precision
        compile_fallback = None
        self.plan = plan_packs(batch.lengths, self.pack_tokens)  # the inference pass's forwards, planned once
        calls = [tuple(batch.lengths[i:j]) for i, j in self.plan]
        with self.spans.span("compile", sync), self.host_wait.measure("compile"):
            # After the validation pass, which keeps the plain model.
            optimizations.apply_all(model, self.active, OptimizationContext(
                vendor=vendor, precision=precision, longest_prompt=max(batch.lengths, default=1)))
            try:
                fn = toolkit.prepare(model, calls)
            except (BenchmarkError, KeyboardInterrupt):
                raise
            except Exception as exc:  # a toolkit failure is a run failure unless fallback is allowed
                if not cfg.allow_compile_fallback:
                    raise
                compile_fallback = f"{type(exc).__name__}: {one_line(exc, 300)}"
                log.warning("toolkit %s failed (%s); running the plain model", cfg.compiler, compile_fallback)
                fn = model
        self._phase_done("compile")
        # A compile fallback runs the plain model: no toolkit padding then.
        pad_multiple = getattr(toolkit, "pad_multiple", 1) if fn is not model else 1
        self.flops = self._executed_flops(pad_multiple, model, calls)
        with self.spans.span("inference", sync):
            self.infer = self._pass("inference", fn, batch, workload.choice_ids, stream=True)
        return fn, compile_fallback

    def _mine(self) -> list[Any]:
        """This rank's samples (all of them in a single-process run)."""
        return self.samples[self.shard[0] : self.shard[1]]

    def _rank_figures(self, e2e: float, mem: Any) -> dict[str, Any]:
        """What rank 0 gathers from every rank at the end: where it ran, what it saw, its times and memory."""
        r = self.result
        out: dict[str, Any] = {
            "rank": self.dist.rank, "local_rank": self.dist.local_rank, "host": self.dist.host,
            "device": str(self.req.vendor.device()), "device_type": self.req.vendor.device().type,
            "device_name": self.req.vendor.device_name(), "first_question": self.shard[0],
            "questions": self.shard[1] - self.shard[0],
            "tokens": sum(len(s.input_ids) for s in self._mine()), "e2e_time": e2e,
            "compile_time": self.spans.seconds.get("compile"), "config_sha256": r.config_sha256,
            "fingerprint": dict(r.fingerprint), "mem_used_gib": mem.used_gib, "mem_total_gib": mem.total_gib,
            "mem_source": mem.source, "mem_samples": mem.samples, "mem_details": dict(mem.details),
            "executed_flops": self.flops[0], "padding_flops": self.flops[1]}
        for key, name in (("val", "validation"), ("infer", "inference")):
            rec = self.local.get(name)
            out[f"{key}_core_s"] = rec.core_s if rec else None
            out[f"{key}_whole_s"] = rec.whole_s if rec else None
        return out

    def _toolkit(self) -> Any:
        """The configured toolkit; in the reference scenario with the reference's semantics (lazy compile and
        its warm-up rule inside the pass: benchmarks.toolkits.reference_toolkit)."""
        req = self.req
        toolkit = get_toolkit(req.vendor, req.config.run.compiler, req.config.vendor)
        if req.config.scenario != scenarios.REFERENCE:
            return toolkit
        return reference_toolkit(type(toolkit))(req.config.vendor, req.vendor)

    def _load_path_kwargs(self) -> dict[str, str]:
        """build_model's load_path, given only when it is not the default (cases written before it existed)."""
        path = scenarios.load_path(self.req.config.scenario)
        return {} if path == "direct" else {"load_path": path}

    def _reference_record(self, e2e: float) -> None:
        """The reference's final record, in result.json and as the one `Finish Info: {...}` line of run.log (and
        of stdout) that FlagPerf's collector reads (it parses the text from the first '{' with ast.literal_eval)."""
        req, cfg = self.req, self.req.config.run
        self.result.reference_record = metrics.reference_record(
            vendor=req.vendor.name, compiler=cfg.compiler, precision=cfg.effective_precision,
            batch_size=cfg.batch_size, flops_per_token=cfg.flops_per_token, e2e_s=e2e, val=self.val, infer=self.infer,
            labels=[s.label for s in self.samples], computed=self.computed)
        # run.log only: the summary prints the same line on stdout, also with --quiet (benchmarks.reporting.summary)
        log.info("Finish Info: %r", self.result.reference_record, extra={"file_only": True})

    @staticmethod
    def _executed_flops(pad_multiple: int, model: Any,
                        calls: list[tuple[int, ...]]) -> tuple[float | None, float | None]:
        """FLOPs of the inference pass's forwards (the case model's forward_flops, in its optimized state) over
        the real prompts, and the extra FLOPs of right-padding to `pad_multiple`; (None, None) when the model
        cannot count them."""
        count = getattr(model, "forward_flops", None)
        if count is None or not calls:
            return None, None
        real = sum(count(call) for call in calls)
        longest = longest_prompt(calls)
        padded = sum(count(padded_call(call, pad_multiple, longest)) for call in calls)
        return real, padded - real

    def _validation(self, model: Any, batch: HostBatch, choice_ids: Any) -> None:
        cfg, sync, device = self.req.config.run, self.req.vendor.synchronize, self.req.vendor.device()
        if cfg.warmup_longest and batch.lengths:  # a data-parallel rank's shard may be empty
            with self.spans.span("val_warmup", sync), torch.inference_mode():
                n = max(batch.lengths)
                model(torch.ones(1, n, dtype=torch.int64, device=device), torch.tensor([n - 1], device=device))
        with self.spans.span("validation", sync):
            self.val = self._pass("validation", model, batch, choice_ids, stream=True)
        if self.dist.is_main:
            files.write_predictions(self.req.output_dir, self.samples, self.val, None)
        self._phase_done("validation")

    def _pass(self, name: str, fn: Any, batch: HostBatch, choice_ids: Any, stream: bool = False,
              label: str | None = None) -> PassRecord:
        """One timed pass; the inference pass packs prompts when an active optimization asks for it.

        In a data-parallel run every rank runs its shard: the pass starts behind a barrier (every rank has
        compiled and warmed up, and all measure the same interval), and rank 0 gets the whole pass (all
        predictions, the slowest rank's times: metrics.system_pass); the other ranks keep their own."""
        cfg = self.req.config.run
        progress = self.req.progress(label or name) if self.req.progress else None
        progress = self.telemetry.wrap(label or name, progress, cfg.log_freq)  # forward times for timeline.png
        writer = files.prediction_stream(self.req.output_dir, name, self._mine(), self.run_id) \
            if stream and self.dist.is_main else None
        packed = name == "inference"
        distributed.barrier(self.dist, f"the {label or name} pass")
        with self.host_wait.measure(label or name):
            rec = run_pass(name, fn, batch, self.req.vendor.synchronize, cfg.log_freq, progress, choice_ids, writer,
                           self.pack_tokens if packed else 0, self.plan if packed else None)
        if stream:  # run 1's passes
            self.local[name] = rec
        if not self.dist.active:
            return rec
        records = distributed.gather(self.dist, f"{name} pass", distributed.record_to_json(rec))
        return rec if records is None else metrics.system_pass([PassRecord(**distributed.record_from_json(r))
                                                                for r in records])

    def _repeat_passes(self, model: Any, fn: Any, batch: HostBatch, choice_ids: Any) -> None:
        """--repeat N: runs 2..N of the timed passes, on the model and compiled callable of run 1."""
        runs = [metrics.repeat_run(1, self.val, self.infer, self.val, self.infer)]
        self.result.repeat = metrics.summarize_repeats(runs, self.req.repeat)
        for k in range(2, self.req.repeat + 1):
            label = f"repeat {k}/{self.req.repeat}"
            with self.spans.span("repeats", self.req.vendor.synchronize):
                # A lossy precision replaced the plain model's weights after run 1's validation pass: its
                # validation pass cannot be repeated (metrics.REPEAT_DESIGN).
                val = None if self.req.config.run.no_validation or is_lossy(self.req.config.run.effective_precision) \
                    else self._pass(
                    "validation", model, batch, choice_ids, label=f"validation ({label})")
                infer = None if self.infer is None else self._pass("inference", fn, batch, choice_ids,
                                                                   label=f"inference ({label})")
            runs.append(metrics.repeat_run(k, val, infer, self.val, self.infer))
            self.result.repeat = metrics.summarize_repeats(runs, self.req.repeat)
            self._phase_done(f"repeat_{k}")

    def _finish(self, e2e: float, report: Any, compile_fallback: str | None, peak: Any, mem: Any,
                ranks: list[dict[str, Any]] | None = None) -> None:
        """Metrics, verdict and the accuracy detail into the result, from what the run recorded (rank 0 of
        a data-parallel run: from every rank's figures, `ranks`)."""
        req, cfg, r = self.req, self.req.config.run, self.result
        peak = self._peak_source(peak)
        if self.dist.active and ranks:
            e2e, mem, peak = metrics.system_figures(ranks, peak)
            r.distributed = {**self.dist.describe(), "ranks": metrics.per_rank(ranks),
                             "token_balance": metrics.token_balance(ranks)}
            flops = [(x["executed_flops"], x["padding_flops"]) for x in ranks]
            if all(f[0] is not None for f in flops):  # every rank's shard: the system's executed FLOPs
                self.flops = (sum(f[0] for f in flops), sum(f[1] or 0.0 for f in flops))
        labels = [s.label for s in self.samples]
        m = metrics.compute(e2e_s=e2e, val=self.val, infer=self.infer, labels=labels,
                            flops_per_token=cfg.flops_per_token, peak=peak, memory=mem,
                            compile_s=self.spans.seconds.get("compile"),
                            val_warmup_s=self.spans.seconds.get("val_warmup"),
                            executed_flops=self.flops[0], padding_flops=self.flops[1],
                            prepare_in_whole=scenarios.prepare_in_whole(req.config.scenario),
                            nominal_unfit=self._nominal_flops_unfit())
        self.computed = m
        r.status = "completed"
        r.energy = metrics.energy_block(self.telemetry.record, self.telemetry.reason)
        r.host_cpu_wait = self.host_wait.record()
        r.metrics = {**m.as_dict(), **metrics.energy_metrics(r.energy, self.val, self.infer)}
        r.phases_s = dict(self.spans.seconds)
        r.peak_flops = {"value": peak.value, "source": peak.source}
        r.memory = {"used_gib": mem.used_gib, "total_gib": mem.total_gib, "source": mem.source,
                    "samples": mem.samples, **dict(mem.details)}
        r.toolkit_report = {"name": report.name, "recompiles": report.recompiles,
                            "graph_recordings": report.graph_recordings,
                            "compile_cache": dict(report.compile_cache) if report.compile_cache else None,
                            "optimizations": list(report.optimizations), "details": dict(report.details),
                            "compile_fallback": compile_fallback}
        r.optimizations = list(report.optimizations) + optimizations.labels(self.active)
        r.model = self.model_info
        r.forwards = {rec.name: metrics.forwards(rec) for rec in (self.val, self.infer) if rec is not None}
        r.packing = metrics.packing(self.infer, self.val, verdict.agreement_floor(cfg.synthetic_weights or req.smoke,
                                                                                  cfg.effective_precision))
        r.nonfinite_questions = {"validation": self.val.nonfinite_questions if self.val else None,
                                 "inference": self.infer.nonfinite_questions if self.infer else None}
        deviations = getattr(req.case, "deviations", None)
        r.verdict = verdict.judge(verdict.Evidence(
            smoke=req.smoke, limit=req.limit, synthetic_weights=cfg.synthetic_weights,
            recompiles=report.recompiles, compile_fallback=compile_fallback,
            passes=[p for p in (self.val, self.infer) if p is not None], metrics=m, peak=peak,
            reference_accuracy=req.case.reference_accuracy, accuracy_tolerance=req.case.accuracy_tolerance,
            packing=r.packing, optimizations=optimizations.labels(self.active), ranks=ranks if self.dist.active else (),
            deviations=tuple(deviations(req.config.case, self.workload, self.model_info or {})) if deviations else (),
            graph_recordings=report.graph_recordings, scenario=req.config.scenario,
            peak_source=peak.source if "peak_flops" in req.config.sources else None,
            flops_override=self._flops_override(),
            repeat_runs=r.repeat["runs"][1:] if r.repeat is not UNSET else (), energy=r.energy,
            precision=cfg.effective_precision,
            compile_cache=(report.compile_cache or {}).get("state"), inference_skipped=self.infer is None))
        r.accuracy = metrics.accuracy_detail([s.subject for s in self.samples], labels,
                                             {"val": self.val, "infer": self.infer}, req.case.categories)
        r.throughput_by_length = metrics.throughput_by_length(
            [len(s.input_ids) for s in self.samples],
            {rec.name: rec.core_s_each for rec in (self.val, self.infer) if rec is not None})

    def _nominal_flops_unfit(self) -> str | None:
        """Why the configured `flops` per token (the case's model's) do not fit this run's model, or None. The
        case's optional `architecture` (its model's shape) against the model's own `architecture()`: a smoke
        model or a shrunk one would otherwise report an MFU of thousands of percent."""
        expected, got = getattr(self.req.case, "architecture", None), self.model_info
        if not isinstance(expected, dict) or not got:
            return None
        differ = [f"{k}={got.get(k)} (case: {v})" for k, v in expected.items() if got.get(k) != v]
        if not differ:
            return None
        return (f"the configured flops ({self.req.config.run.flops} per token) describe the case's model, not this "
                f"one ({', '.join(differ[:3])}{', ...' if len(differ) > 3 else ''}); mfu_executed counts this "
                "model's own FLOPs")

    def _flops_override(self) -> str | None:
        """`flops` changed by --set (a value the files did not have), described for the verdict; else None."""
        from ..config.flops import parse_flops

        cfg, config = self.req.config.run, self.req.config
        if config.sources.get("flops") != "--set":
            return None
        before = config.replaced.get("flops")
        if before is not None and parse_flops(str(before)) == cfg.flops_per_token:
            return None
        return (f"{cfg.flops!r} = {cfg.flops_per_token:.4g} FLOPs per token"
                + (f" instead of {before!r}" if before is not None else ""))

    def _peak_source(self, peak: Any) -> Any:
        """The peak as the vendor gives it, its source naming --set when the override came from there (a vendor
        only knows its own YAML key)."""
        if self.req.config.sources.get("peak_flops") == "--set" and peak.value:
            return type(peak)(peak.value, f"--set peak_flops={peak.value:.4g}")
        return peak

    def _out_of_memory(self, exc: BaseException) -> faults.DeviceOutOfMemory:
        cfg = self.req.config.run
        longest = max((len(s.input_ids) for s in self.samples), default=None)
        done = self.result.phases_done if self.result else []
        phase, longest_first = faults.phase_of(done, not cfg.no_validation, cfg.compiler)
        hints = faults.knobs(cfg.effective_precision, cfg.compiler,
                             getattr(self.req.config.vendor, "pad_multiple", 0) or 0, self.req.limit, longest,
                             optimizations.memory_hints(self.active), optimizations.off_without_compiler(self.active))
        return faults.describe(exc, phase, longest if longest_first else None, self.req.vendor.device(), hints)

    def _phase_done(self, name: str) -> None:
        signals.check()  # a stop request that library code swallowed ends the run here
        self.result.phases_done.append(name)
        self.result.phases_s = dict(self.spans.seconds)
        self.result.metrics_partial = self.partial_metrics()
        self.save()

    def partial_metrics(self) -> dict[str, Any]:
        """Throughput, accuracy and non-finite count of every pass finished so far."""
        samples = self.samples if self.dist.is_main else self._mine()  # rank 0 holds the whole passes
        return metrics.partial((self.val, self.infer), [s.label for s in samples])

    def _header(self, precision: str) -> RunResult:
        req, cfg = self.req, self.req.config.run
        # device_count/driver/cuda are always present (null when the vendor does not report them)
        env = {"device_name": req.vendor.device_name(), "device_type": req.vendor.device().type,
               "device_count": None, "driver": None, "cuda": None,
               **dict(req.vendor.environment()), **_versions(), **provenance.git_state(),
               "command_line": req.command_line}
        config = req.config.as_dict()
        result = RunResult(
            run_id=self.run_id, case=req.case.name, scenario=req.config.scenario,
            load_path=scenarios.load_path(req.config.scenario), vendor=req.vendor.name, toolkit=cfg.compiler, precision=precision, tf32=cfg.tf32,
            batch_size=cfg.batch_size, synthetic_weights=cfg.synthetic_weights, limit=req.limit, smoke=req.smoke,
            start_time=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), environment=env,
            config=config, config_sources=dict(req.config.sources),
            # sha256 of the merged config's canonical JSON: equal hashes + equal fingerprint = same measurement
            config_sha256=provenance.config_sha256(config), world_size=self.dist.world_size)
        if self.dist.active:
            result.distributed = self.dist.describe()
        return result

