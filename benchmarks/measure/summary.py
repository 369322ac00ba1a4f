"""One summary: the system's record (benchmarks.parallel.aggregate of every rank's; a single process is one rank)
and what the run measured it on, turned into every figure result.json reports: metrics, energy, verdict, accuracy
detail, throughput by length, the reference's final record. Nothing here measures or writes; the writer puts the
returned fields into result.json.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..config import Config, scenarios
from ..config.flops import parse_flops
from ..contracts import hooks
from . import metrics, verdict
from .records import RankRecord


@dataclass(frozen=True)
class Inputs:
    """What the summary needs besides the record: the case, the merged config, and how the run was asked for."""

    case: Any
    config: Config
    vendor_name: str
    smoke: bool = False
    limit: int | None = None
    repeat: int = 1


def summarize(system: RankRecord, inputs: Inputs) -> dict[str, Any]:
    """The completed run's result.json fields (name -> value), from the system record alone."""
    case, config, cfg = inputs.case, inputs.config, inputs.config.run
    samples = list(system.workload.samples)
    labels = [s.label for s in samples]
    val, infer = system.validation, system.inference
    peak = system.peak
    m = metrics.compute(e2e_s=system.e2e_s, val=val, infer=infer, labels=labels, flops_per_token=cfg.flops_per_token,
                        peak=peak, memory=system.memory, compile_s=system.phases_s.get("compile"),
                        val_warmup_s=system.phases_s.get("val_warmup"), executed_flops=system.executed_flops,
                        padding_flops=system.padding_flops,
                        prepare_in_whole=scenarios.prepare_in_whole(config.scenario),
                        nominal_unfit=nominal_flops_unfit(case, system.model, cfg.flops))
    toolkit = dict(system.toolkit or {})
    random_weights = cfg.synthetic_weights or inputs.smoke
    packing = metrics.packing(infer, val, verdict.agreement_floor(random_weights, cfg.effective_precision))
    repeat = _repeat_block(system, inputs.repeat) if inputs.repeat > 1 else None
    model = dict(system.model) if system.model else None
    fields: dict[str, Any] = {
        "status": "completed",
        "metrics": {**m.as_dict(), **metrics.energy_metrics(dict(system.energy), val, infer)},
        "energy": dict(system.energy), "host_cpu_wait": dict(system.host_cpu_wait),
        "phases_s": dict(system.phases_s), "peak_flops": {"value": peak.value, "source": peak.source},
        "memory": {"used_gib": system.memory.used_gib, "total_gib": system.memory.total_gib,
                   "source": system.memory.source, "samples": system.memory.samples, **dict(system.memory.details)},
        "toolkit_report": toolkit, "optimizations": list(toolkit.get("optimizations") or ()) + list(system.optimizations),
        "model": model, "forwards": {rec.name: metrics.forwards(rec) for rec in system.passes()},
        "packing": packing,
        "nonfinite_questions": {"validation": val.nonfinite_questions if val else None,
                                "inference": infer.nonfinite_questions if infer else None},
        "accuracy": metrics.accuracy_detail([s.subject for s in samples], labels, {"val": val, "infer": infer},
                                            case.categories),
        "throughput_by_length": metrics.throughput_by_length(
            [len(s.input_ids) for s in samples], {rec.name: rec.core_s_each for rec in system.passes()}),
        "reference_record": metrics.reference_record(
            vendor=inputs.vendor_name, compiler=cfg.compiler, precision=cfg.effective_precision,
            batch_size=cfg.batch_size, flops_per_token=cfg.flops_per_token, e2e_s=m.e2e_time, val=val, infer=infer,
            labels=labels, computed=m),
    }
    if repeat is not None:
        fields["repeat"] = repeat
    if system.world_size > 1:
        fields["distributed"] = {"ranks": metrics_per_rank(system.ranks),
                                 "token_balance": _token_balance(system.ranks)}
    fields["verdict"] = verdict.judge(verdict.Evidence(
        smoke=inputs.smoke, limit=inputs.limit, synthetic_weights=cfg.synthetic_weights,
        recompiles=int(toolkit.get("recompiles") or 0), compile_fallback=toolkit.get("compile_fallback"),
        passes=system.passes(), metrics=m, peak=peak,
        reference_accuracy=case.reference_accuracy, accuracy_tolerance=case.accuracy_tolerance, packing=packing,
        optimizations=tuple(system.optimizations), ranks=tuple(system.ranks), disagreements=system.disagreements,
        deviations=tuple(hooks.deviations_of(case, config.case, system.workload, model or {})),
        graph_recordings=toolkit.get("graph_recordings"), scenario=config.scenario,
        peak_source=peak.source if "peak_flops" in config.sources else None,
        flops_override=flops_override(config),
        repeat_runs=repeat["runs"][1:] if repeat else (), energy=fields["energy"],
        precision=cfg.effective_precision, compile_cache=(toolkit.get("compile_cache") or {}).get("state"),
        inference_skipped=infer is None))
    return fields


def _repeat_block(system: RankRecord, requested: int) -> dict[str, Any]:
    runs = [metrics.repeat_run(1, system.validation, system.inference, system.validation, system.inference)]
    for k, (val, infer) in enumerate(system.repeats, start=2):
        runs.append(metrics.repeat_run(k, val, infer, system.validation, system.inference))
    return metrics.summarize_repeats(runs, requested)


def metrics_per_rank(ranks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each rank's figures with its own throughputs and its share of the slowest rank's core time."""
    slowest = {key: max((r.get(f"{key}_core_s") or 0.0) for r in ranks) for key in ("val", "infer")}
    out = []
    for r in ranks:
        row = dict(r)
        for key in ("val", "infer"):
            core, whole = r.get(f"{key}_core_s"), r.get(f"{key}_whole_s")
            row[f"p_{key}_core"] = metrics.throughput(r["tokens"], core) if core is not None else None
            row[f"p_{key}_whole"] = metrics.throughput(r["tokens"], whole) if whole is not None else None
            row[f"{key}_core_share_of_slowest"] = core / slowest[key] if core is not None and slowest[key] else None
        out.append(row)
    return out


def _token_balance(ranks: Sequence[Mapping[str, Any]]) -> float | None:
    """The largest rank's tokens / the mean tokens per rank (1.0: perfectly balanced shards)."""
    tokens = [r["tokens"] for r in ranks]
    mean = sum(tokens) / len(tokens) if tokens else 0
    return max(tokens) / mean if mean else None


def nominal_flops_unfit(case: Any, model: Mapping[str, Any] | None, flops: str) -> str | None:
    """Why the configured `flops` per token (the case's model's) do not fit this run's model, or None: the case's
    stated architecture against the model's own; a smoke or shrunk model would otherwise report an MFU of
    thousands of percent."""
    expected = hooks.case_architecture(case)
    if expected is None or not model:
        return None
    differ = [f"{k}={model.get(k)} (case: {v})" for k, v in expected.items() if model.get(k) != v]
    if not differ:
        return None
    return (f"the configured flops ({flops} per token) describe the case's model, not this one "
            f"({', '.join(differ[:3])}{', ...' if len(differ) > 3 else ''}); mfu_executed counts this model's own FLOPs")


def flops_override(config: Config) -> str | None:
    """`flops` changed by --set (a value the files did not have), described for the verdict; else None."""
    cfg = config.run
    if config.sources.get("flops") != "--set":
        return None
    before = config.replaced.get("flops")
    if before is not None and parse_flops(str(before)) == cfg.flops_per_token:
        return None
    return f"{cfg.flops!r} = {cfg.flops_per_token:.4g} FLOPs per token" + (f" instead of {before!r}" if before else "")
