"""The run: init -> validation pass (plain model) -> toolkit compile + warm-up -> inference pass -> report.

The result is kept up to date after every phase and written atomically, so a run that fails or is
interrupted still leaves a result.json (status "failed"/"interrupted") with the phases it finished.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import logging
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from . import metrics as _metrics
from . import outputs as _outputs
from . import accuracy, faults, provenance, reproducibility, results
from .config import Config
from .errors import BenchmarkError, one_line
from .interfaces import PeakFlops, Vendor
from .passes import HostBatch, PassRecord, plan_packs, run_pass
from .registry import get_toolkit
from .timing import Spans

log = logging.getLogger("benchmarks")
STREAM_FILE = "predictions.partial.jsonl"
# A batching optimization must give the batch-1 prediction on at least this share of questions (issue 3).
PACKING_MIN_SAME = 0.999



@dataclass
class RunRequest:
    case: Any
    vendor: Vendor
    config: Config
    data_dir: Path
    output_dir: Path
    limit: int | None = None
    smoke: bool = False
    repeat: int = 1  # --repeat N: the timed passes N times on the built model (see benchmarks.reproducibility)
    command_line: list[str] = field(default_factory=lambda: list(sys.argv))
    # pass name -> per-question callback (done, total, elapsed_s, tokens_done); see benchmarks.progress
    progress: Callable[[str], Callable[[int, int, float, int], None] | None] | None = None


def _versions() -> dict[str, Any]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "os": platform.platform()}


class Run:
    def __init__(self, req: RunRequest):
        self.req = req
        self.spans = Spans()
        self.result: dict[str, Any] = {}
        self.val: PassRecord | None = None
        self.infer: PassRecord | None = None
        self.samples: list[Any] = []

    # ------------------------------------------------------------------------------------------------ files
    def save(self) -> None:
        results.write_json(self.req.output_dir / "result.json", self.result)

    def _write_predictions(self) -> None:
        rows = []
        for i, s in enumerate(self.samples):
            rows.append({"subject": s.subject, "index": s.index, "n_tokens": len(s.input_ids), "label": s.label,
                         "pred_val": self.val.predictions[i] if self.val else None,
                         "pred_infer": self.infer.predictions[i] if self.infer else None,
                         "choice_val": self.val.choice_predictions[i] if self.val and self.val.choice_predictions else None,
                         "choice_infer": (self.infer.choice_predictions[i]
                                          if self.infer and self.infer.choice_predictions else None)})
        results.write_jsonl(self.req.output_dir / "predictions.jsonl", rows)

    # -------------------------------------------------------------------------------------------------- run
    def execute(self) -> dict[str, Any]:
        try:
            return self._execute()
        except torch.OutOfMemoryError as exc:  # one line: where, the prompt length, memory figures, knobs
            raise self._out_of_memory(exc) from exc

    def _execute(self) -> dict[str, Any]:
        req, cfg = self.req, self.req.config.run
        vendor, precision = req.vendor, cfg.effective_precision
        if not vendor.supports(precision):
            raise BenchmarkError(f"config key 'precision': vendor '{vendor.name}' device {vendor.device_name()} "
                                 f"cannot run {precision}; choose another precision with --set precision=...")
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        torch.set_float32_matmul_precision("high" if cfg.tf32 else "highest")
        toolkit = get_toolkit(vendor, cfg.compiler, req.config.vendor)
        self.result = self._header(precision)
        self.save()
        sync = vendor.synchronize
        e2e_start = time.perf_counter()
        monitor = vendor.memory_monitor()
        with monitor:
            with self.spans.span("init", sync):
                workload = req.case.load_workload(req.config.case, req.data_dir, req.limit)
                self.samples = workload.samples
                model = req.case.build_model(req.config.case, req.data_dir, precision, vendor.device(),
                                             cfg.synthetic_weights, cfg.seed)
                batch = HostBatch([s.input_ids for s in self.samples], vendor.device())
            self.result["fingerprint"] = workload.fingerprint
            self.result["counts"] = {"questions": len(self.samples), "tokens": sum(batch.lengths), **workload.notes}
            self._phase_done("init")
            optimizations = self._model_optimizations(model, max(batch.lengths, default=1))
            labels = [s.label for s in self.samples]
            if not cfg.no_validation:
                if cfg.warmup_longest:
                    with self.spans.span("val_warmup", sync), torch.inference_mode():
                        n = max(batch.lengths)
                        model(torch.ones(1, n, dtype=torch.int64, device=vendor.device()),
                              torch.tensor([n - 1], device=vendor.device()))
                with self.spans.span("validation", sync):
                    self.val = run_pass("validation", model, batch, sync, cfg.log_freq, self._progress("validation"),
                                        workload.choice_ids, self._stream("validation"))
                self._write_predictions()
                self._phase_done("validation")
            compile_fallback = None
            calls = [tuple(batch.lengths[i:j]) for i, j in plan_packs(batch.lengths, cfg.pack_tokens)]
            with self.spans.span("compile", sync):
                for switch_on in optimizations:  # after the validation pass, which keeps the plain model
                    switch_on()
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
            with self.spans.span("inference", sync):
                self.infer = run_pass("inference", fn, batch, sync, cfg.log_freq, self._progress("inference"),
                                      workload.choice_ids, self._stream("inference"), cfg.pack_tokens)
            self._write_predictions()
            (req.output_dir / STREAM_FILE).unlink(missing_ok=True)  # predictions.jsonl now holds it all
            e2e = time.perf_counter() - e2e_start  # run 1 only: --repeat's extra passes are not in it
            self._phase_done("inference")
            if req.repeat > 1:
                self._repeat_passes(model, fn, batch, workload.choice_ids)
        report = toolkit.report()
        peak = vendor.peak_flops(precision, cfg.tf32)
        mem = monitor.report()
        m = _metrics.compute(
            e2e_s=e2e, val=self.val, infer=self.infer, labels=labels, flops_per_token=cfg.flops_per_token,
            peak=peak, memory=mem, compile_s=self.spans.seconds.get("compile"),
            val_warmup_s=self.spans.seconds.get("val_warmup"),
        )
        self.result.update(
            status="completed",
            metrics=m.as_dict(),
            phases_s=dict(self.spans.seconds),
            peak_flops={"value": peak.value, "source": peak.source},
            memory={"used_gib": mem.used_gib, "total_gib": mem.total_gib, "source": mem.source,
                    "samples": mem.samples, **dict(mem.details)},
            toolkit_report={"name": report.name, "recompiles": report.recompiles,
                            "optimizations": list(report.optimizations), "details": dict(report.details),
                            "compile_fallback": compile_fallback},
            optimizations=list(report.optimizations) + self._optimization_names(),
            packing=self._packing(),
            nonfinite_questions={"validation": self.val.nonfinite_questions if self.val else None,
                                 "inference": self.infer.nonfinite_questions},
        )
        self.result["verdict"] = self._verdict(m, report.recompiles, compile_fallback, peak, self.result["packing"])
        _outputs.enrich(self.result, req.case, self.samples, self.val, self.infer)
        _outputs.write_run_files(req.output_dir, self.result)
        return self.result

    def _active_optimizations(self) -> list[tuple[str, str]]:
        """(config key, case-model method) of each named optimization in effect; pruning acts on packs only."""
        cfg = self.req.config.run
        active = {"pack_tokens": cfg.pack_tokens, "fuse_projections": cfg.fuse_projections,
                  "prune_last_layer": cfg.prune_last_layer and cfg.pack_tokens}
        return [(key, "enable_packing" if key == "pack_tokens" else key) for key, on in active.items() if on]

    def _model_optimizations(self, model: Any, longest_prompt: int) -> list[Callable[[], None]]:
        """The model methods the run's named optimizations need, checked before the passes start."""
        out = []
        for key, method in self._active_optimizations():
            fn = getattr(model, method, None)
            if fn is None:
                raise BenchmarkError(f"config key '{key}': the model of case '{self.req.case.name}' has no "
                                     f"{method}(); set {key} to its default (off)")
            # Packs hold whole prompts, and padding comes as prompts no longer: none exceeds this.
            out.append(functools.partial(fn, longest_prompt, self.req.config.run.packed_attention)
                       if key == "pack_tokens" else fn)
        return out

    def _optimization_names(self) -> list[str]:
        cfg = self.req.config.run
        names = [f"pack_tokens={cfg.pack_tokens}" if key == "pack_tokens" else key
                 for key, _ in self._active_optimizations()]
        if cfg.pack_tokens and cfg.packed_attention != "flash":
            names.append(f"packed_attention={cfg.packed_attention}")
        return names

    def _packing(self) -> dict[str, Any] | None:
        """The pack optimization's figures: forwards, prompts per forward, and how many inference predictions
        equal the validation pass's (batch 1, plain model): the >= 99.9% bar of a batching optimization."""
        rec = self.infer
        if not self.req.config.run.pack_tokens or rec is None:
            return None
        same = accuracy.agreement(self.val.predictions, rec.predictions)[0] if self.val is not None else None
        return {"pack_tokens": rec.pack_tokens, "forwards": rec.forwards,
                "prompts_per_forward": rec.n_questions / rec.forwards, "tokens_per_forward": rec.tokens / rec.forwards,
                "same_predictions_as_validation": same, "required_same_predictions": PACKING_MIN_SAME}

    def _repeat_passes(self, model: Any, fn: Any, batch: HostBatch, choice_ids: Any) -> None:
        """--repeat N: runs 2..N of the timed passes, on the model and compiled callable of run 1."""
        cfg, sync = self.req.config.run, self.req.vendor.synchronize
        runs = [self._run_record(1, self.val, self.infer)]
        self.result["repeat"] = reproducibility.summarize(runs, self.req.repeat)
        for k in range(2, self.req.repeat + 1):
            label = f"repeat {k}/{self.req.repeat}"
            with self.spans.span("repeats", sync):
                val = None if cfg.no_validation else run_pass(
                    "validation", model, batch, sync, cfg.log_freq, self._progress(f"validation ({label})"),
                    choice_ids)
                infer = run_pass("inference", fn, batch, sync, cfg.log_freq, self._progress(f"inference ({label})"),
                                 choice_ids, pack_tokens=cfg.pack_tokens)
            runs.append(self._run_record(k, val, infer))
            self.result["repeat"] = reproducibility.summarize(runs, self.req.repeat)
            self._phase_done(f"repeat_{k}")

    def _run_record(self, k: int, val: PassRecord | None, infer: PassRecord) -> dict[str, Any]:
        out: dict[str, Any] = {"run": k, "nonfinite_questions": {}, "predictions_differ": {}}
        for key, rec, first in (("val", val, self.val), ("infer", infer, self.infer)):
            out[f"p_{key}_whole"] = _metrics.throughput(rec.tokens, rec.whole_s) if rec else None
            out[f"p_{key}_core"] = _metrics.throughput(rec.tokens, rec.core_s) if rec else None
            if rec is not None:
                out["nonfinite_questions"][rec.name] = rec.nonfinite_questions
                out["predictions_differ"][rec.name] = sum(a != b for a, b in zip(rec.predictions, first.predictions))
        return out

    def _out_of_memory(self, exc: torch.OutOfMemoryError) -> faults.DeviceOutOfMemory:
        cfg, done = self.req.config.run, self.result.get("phases_done", [])
        longest = max((len(s.input_ids) for s in self.samples), default=None)
        last = done[-1] if done else None
        # Where, when the pass loop did not say (it raises PromptOutOfMemory): the phase after the last done.
        if last is None:
            phase, tokens = "init (loading the model onto the device)", None
        elif last == "init" and not cfg.no_validation:
            phase, tokens = "the warm-up on the longest prompt before the validation pass", longest
        elif last in ("init", "validation"):
            phase, tokens = f"the compile and warm-up of toolkit '{cfg.compiler}' (longest prompt first)", longest
        else:
            phase, tokens = f"the phase after '{last}'", None
        hints = faults.knobs(cfg.effective_precision, cfg.compiler,
                             getattr(self.req.config.vendor, "pad_multiple", 0) or 0, self.req.limit, cfg.pack_tokens,
                             cfg.fuse_projections)
        return faults.describe(exc, phase, tokens, self.req.vendor.device(), hints)

    def _stream(self, name: str) -> Callable[[int, list[int]], None]:
        """Append each chunk of a pass's predictions to predictions.partial.jsonl as it is produced, so an
        interrupted pass keeps what it answered; removed once predictions.jsonl holds both passes."""
        path = self.req.output_dir / STREAM_FILE

        def write(first: int, preds: list[int]) -> None:
            with path.open("a", encoding="utf-8") as f:
                for k, pred in enumerate(preds, start=first):
                    s = self.samples[k]
                    f.write(json.dumps({"pass": name, "subject": s.subject, "index": s.index, "pred": pred}) + "\n")
                f.flush()

        return write

    def _progress(self, name: str) -> Callable[[int, int, float, int], None] | None:
        return self.req.progress(name) if self.req.progress else None

    def _phase_done(self, name: str) -> None:
        self.result.setdefault("phases_done", []).append(name)
        self.result["phases_s"] = dict(self.spans.seconds)
        partial = {}
        for rec in (self.val, self.infer):
            if rec is not None:
                key = "val" if rec.name == "validation" else "infer"
                partial[f"p_{key}_whole"] = _metrics.throughput(rec.tokens, rec.whole_s)
                partial[f"p_{key}_core"] = _metrics.throughput(rec.tokens, rec.core_s)
                partial[f"{key}_acc"] = _metrics.accuracy(rec.predictions, [s.label for s in self.samples])
                partial[f"{key}_nonfinite_questions"] = rec.nonfinite_questions
        self.result["metrics_partial"] = partial
        self.save()

    def _header(self, precision: str) -> dict[str, Any]:
        req, cfg = self.req, self.req.config.run
        # device_count/driver/cuda are always present (null when the vendor does not report them)
        env = {"device_name": req.vendor.device_name(), "device_type": req.vendor.device().type,
               "device_count": None, "driver": None, "cuda": None,
               **dict(req.vendor.environment()), **_versions(), **provenance.git_state(),
               "command_line": req.command_line}
        return {
            "schema_version": results.SCHEMA_VERSION,
            "status": "running",
            "case": req.case.name,
            "vendor": req.vendor.name,
            "toolkit": cfg.compiler,
            "precision": precision,
            "tf32": cfg.tf32,
            "batch_size": cfg.batch_size,
            "synthetic_weights": cfg.synthetic_weights,
            "limit": req.limit,
            "smoke": req.smoke,
            "start_time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "environment": env,
            "config": req.config.as_dict(),
            "config_sources": dict(req.config.sources),
            # sha256 of the merged config's canonical JSON: equal hashes + equal fingerprint = same measurement
            "config_sha256": reproducibility.config_sha256(req.config.as_dict()),
        }

    def _verdict(self, m: _metrics.Metrics, recompiles: int, fallback: str | None, peak: PeakFlops,
                 packing: dict[str, Any] | None) -> dict[str, Any]:
        """VALID or INVALID with the reasons, and notes; `packing` is the result's `packing` (`_packing()`)."""
        reasons, notes = [], []
        if self.req.smoke:
            reasons.append("smoke run on a tiny generated model and data")
        if self.req.limit is not None:
            reasons.append(f"partial workload: --limit {self.req.limit} questions per subject")
        if recompiles:
            reasons.append(f"{recompiles} recompilation(s) during the timed inference pass")
        if fallback:
            reasons.append(f"toolkit failed and the plain model was used: {fallback}")
        for rec in (self.val, self.infer):
            if rec is not None and rec.nonfinite_questions:
                reasons.append(f"{rec.nonfinite_questions} question(s) with non-finite logits in the {rec.name} pass")
        for run in (self.result.get("repeat") or {}).get("runs", [])[1:]:
            for name, count in run["nonfinite_questions"].items():
                if count:
                    reasons.append(f"{count} question(s) with non-finite logits in the {name} pass of repeat run "
                                   f"{run['run']}")
            for name, count in run["predictions_differ"].items():
                if count:
                    notes.append(f"repeat run {run['run']}: {count} {name} prediction(s) differ from run 1")
        if packing and packing["same_predictions_as_validation"] is None:
            notes.append(f"pack_tokens={packing['pack_tokens']}: predictions not compared with batch 1 (no validation pass)")
        elif packing:
            same = packing["same_predictions_as_validation"]
            text = (f"pack_tokens={packing['pack_tokens']}: {100 * same:.2f}% of inference predictions equal the "
                    f"validation pass's (batch 1, plain model); required {100 * PACKING_MIN_SAME:.1f}%")
            if same >= PACKING_MIN_SAME:
                notes.append(text)
            elif self.req.config.run.synthetic_weights or self.req.smoke:
                notes.append(text + " (not enforced: random weights make near-ties common)")
            else:
                reasons.append(text)
        layers = getattr(self.req.config.case, "model_layers", None)
        if layers is not None:
            reasons.append(f"shrunk model: model_layers={layers}, not the case's model")
        if self.req.config.run.synthetic_weights:
            notes.append("synthetic (random) weights: accuracy is not meaningful")
        elif not self.req.smoke and self.req.limit is None and getattr(self.req.case, "reference_accuracy", None):
            ref, tol = self.req.case.reference_accuracy, self.req.case.accuracy_tolerance
            for key in ("infer_acc", "val_acc"):
                acc = getattr(m, key)
                if acc is not None and abs(acc - ref) > tol:
                    reasons.append(f"{key} {acc:.3f} is outside the reference {ref} +- {tol}")
        if peak.value is None:
            notes.append(f"MFU not reported: {peak.source}")
        return {"status": "INVALID" if reasons else "VALID", "reasons": reasons, "notes": notes,
                "accuracy_meaningful": not (self.req.config.run.synthetic_weights or self.req.smoke or layers)}
