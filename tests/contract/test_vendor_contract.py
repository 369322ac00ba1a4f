"""The contract every vendor must pass: `pytest tests/contract --vendor NAME` (default: cpu).

Each test checks one promise of `benchmarks.interfaces` that the harness relies on, device-generically
(torch ops on `vendor.device()`), with the case's tiny smoke model. A vendor that passes runs the case.
"""
from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from typing import Mapping

import pytest
import torch

from benchmarks.config import RunConfig, fields_of
from benchmarks.contracts import PRECISIONS, VENDOR_MEMBERS, MemoryMonitor, MemoryReport, PeakFlops, Toolkit, ToolkitReport, Vendor

CASE_NAME = "llama2_7b_mmlu"

# How far apart the plain model's top-2 logits may be for a toolkit to pick the other one (rounding).
ARGMAX_TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2, "fp16": 1e-2}


# ------------------------------------------------------------------------------------------ the object


def test_vendor_implements_the_protocol(vendor, vendor_name: str) -> None:
    assert isinstance(vendor, Vendor)
    assert vendor.name == vendor_name, "name must be the name the vendor is registered (and run) under"
    for member in VENDOR_MEMBERS:
        if member not in ("name", "Options"):
            assert callable(getattr(vendor, member)), member


def test_options_is_a_frozen_documented_dataclass_whose_defaults_construct(vendor, config) -> None:
    options_cls = vendor.Options
    assert dataclasses.is_dataclass(options_cls) and options_cls.__dataclass_params__.frozen
    options = options_cls()
    fields = dataclasses.fields(options_cls)
    for f in fields:
        assert f.metadata.get("doc"), f"Options.{f.name} has no doc text (use benchmarks.config.doc)"
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(options, fields[0].name, getattr(options, fields[0].name))
    taken = set(fields_of(RunConfig)) | set(fields_of(type(config.case)))
    taken |= {k for opts in config.optimizations.values() for k in fields_of(type(opts))}
    clash = sorted(taken & {f.name for f in fields})
    assert not clash, f"Options repeats harness/case keys: {clash}"


def test_vendor_yaml_loads_and_names_a_supported_precision_and_offered_toolkit(vendor, config, device) -> None:
    # `config` is the real loader's merge of the case files and the vendor's YAML (refusing case keys, flops).
    assert isinstance(config.vendor, vendor.Options)
    assert vendor.supports(config.run.effective_precision)
    assert config.run.compiler in vendor.toolkits(), "the YAML's compiler must be one of vendor.toolkits()"


def test_device_name_environment_and_availability(vendor, device: torch.device) -> None:
    assert isinstance(vendor.is_available(), bool)
    assert isinstance(device, torch.device) and vendor.device() == device
    assert torch.ones(3, device=device).sum().item() == 3
    name = vendor.device_name()
    assert isinstance(name, str) and name.strip()
    env = vendor.environment()
    assert isinstance(env, Mapping)
    json.dumps(dict(env))  # goes into result.json


def test_supports_answers_every_precision(vendor, device) -> None:
    answers = {p: vendor.supports(p) for p in PRECISIONS}
    assert all(isinstance(a, bool) for a in answers.values()), answers
    assert any(answers.values()), "supports() is False for every precision"


# ------------------------------------------------------------------------------------------ synchronize


def _workload_seconds(step, steps: int) -> float:
    """Seconds for `steps` steps, with a read-back to the host (which always waits for the device)."""
    t0 = time.perf_counter()
    y = None
    for _ in range(steps):
        y = step()
    float(y.sum())
    return time.perf_counter() - t0


def test_synchronize_waits_for_queued_work(vendor, device: torch.device) -> None:
    # Find a matmul size whose step takes >= 2 ms, so device work, not launch overhead, sets the pace
    # (on an asynchronous device the host then runs ahead and work queues up); then enough steps for 50 ms.
    n = 128
    while True:
        x = torch.randn(n, n, device=device)
        w = torch.randn(n, n, device=device) / math.sqrt(n)

        def step() -> torch.Tensor:
            return torch.tanh(x @ w)

        _workload_seconds(step, 1)  # first use: library initialisation
        one = _workload_seconds(step, 3) / 3
        if one >= 2e-3 or n >= 8192:
            break
        n *= 2
    steps = max(3, math.ceil(0.05 / one))
    total = _workload_seconds(step, steps)

    vendor.synchronize()
    for _ in range(steps):
        y = step()
    vendor.synchronize()
    t0 = time.perf_counter()
    float(y.sum())  # after a real synchronize the work is done: this is only a small read-back
    read_back = time.perf_counter() - t0
    assert read_back < 0.5 * total, (
        f"synchronize() returned before the queued work finished: reading the result afterwards took "
        f"{read_back * 1e3:.1f} ms of a {total * 1e3:.1f} ms workload ({steps} x {n}x{n} matmuls)"
    )


# -------------------------------------------------------------------------------------- memory monitor


def _new_threads(before: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate() if t not in before and t.is_alive()]


def _check_report(report: MemoryReport) -> None:
    assert isinstance(report, MemoryReport)
    assert math.isfinite(report.used_gib) and report.used_gib > 0, report
    if report.total_gib is not None:
        assert 0 < report.used_gib <= report.total_gib, report
    assert isinstance(report.source, str) and report.source.strip(), report
    assert report.samples >= 0
    json.dumps({k: float(v) for k, v in report.details.items()})


def test_memory_monitor_reports_a_plausible_peak(vendor, device: torch.device) -> None:
    before = set(threading.enumerate())
    monitor = vendor.memory_monitor()
    assert isinstance(monitor, MemoryMonitor)
    size_gib = 0.125
    with monitor as entered:
        assert entered is monitor
        block = torch.ones(int(size_gib * 2**30) // 4, device=device)  # 128 MiB, held for 0.3 s
        vendor.synchronize()
        time.sleep(0.3)
        del block
    report = monitor.report()
    _check_report(report)
    assert report.used_gib >= 0.9 * size_gib, f"the peak misses a {size_gib} GiB allocation: {report}"
    assert monitor.report() == report, "report() must return the same peak when called again"
    assert not _new_threads(before), f"threads left running after __exit__: {_new_threads(before)}"


def test_memory_monitor_exits_cleanly_when_the_body_raises(vendor, device: torch.device) -> None:
    before = set(threading.enumerate())
    monitor = vendor.memory_monitor()
    with pytest.raises(RuntimeError, match="the run failed"):
        with monitor:
            torch.ones(1024, device=device)
            raise RuntimeError("the run failed")  # __exit__ must not swallow it
    _check_report(monitor.report())
    assert not _new_threads(before), f"threads left running after __exit__: {_new_threads(before)}"


# -------------------------------------------------------------------------------------------- peak table


def test_peak_flops_table_is_consistent(vendor, device) -> None:
    peaks: dict[tuple[str, bool], float | None] = {}
    for precision in PRECISIONS:
        if not vendor.supports(precision):
            continue
        for tf32 in (False, True):
            peak = vendor.peak_flops(precision, tf32)
            assert isinstance(peak, PeakFlops), (precision, tf32)
            if peak.value is not None:
                assert isinstance(peak.value, (int, float)) and not isinstance(peak.value, bool)
                assert math.isfinite(peak.value) and peak.value > 0, f"{precision}: {peak} (use None, never 0)"
            assert isinstance(peak.source, str) and peak.source.strip(), f"{precision}: empty source"
            peaks[precision, tf32] = peak.value

    def known(a: tuple[str, bool], b: tuple[str, bool]) -> bool:
        return peaks.get(a) is not None and peaks.get(b) is not None

    for half in ("fp16", "bf16"):
        if known((half, False), ("fp32", False)):
            assert peaks[half, False] >= peaks["fp32", False], f"{half} peak below the fp32 peak: {peaks}"
        if (half, False) in peaks:
            assert peaks[half, True] == peaks[half, False], f"tf32 must not change the {half} peak: {peaks}"
    if known(("fp32", True), ("fp32", False)):
        assert peaks["fp32", True] >= peaks["fp32", False], f"TF32 peak below the fp32 peak: {peaks}"


# ---------------------------------------------------------------------------------------------- toolkits


def test_toolkits_are_offered_by_name_and_none_is_one(vendor, config) -> None:
    factories = vendor.toolkits()
    assert isinstance(factories, Mapping) and "none" in factories, sorted(factories)
    for name, factory in factories.items():
        assert isinstance(name, str) and callable(factory), name


def test_toolkit_prepares_a_callable_that_predicts_like_the_plain_model(
    toolkit_name: str, vendor, config, device: torch.device, precision: str, tiny_model, prompts
) -> None:
    toolkit = vendor.toolkits()[toolkit_name](config.vendor, vendor)
    assert isinstance(toolkit, Toolkit)
    vocab = tiny_model.lm_head.out_features
    with torch.inference_mode():
        expected = [tiny_model(ids, last) for ids, last in prompts]

    fn = toolkit.prepare(tiny_model, [(ids.shape[1],) for ids, _ in prompts])
    assert callable(fn)
    with torch.inference_mode():
        for (ids, last), ref in zip(prompts, expected):
            # Like the timed pass: inputs made under inference_mode (compiled graphs guard on it).
            ids, last = ids.clone(), last.clone()
            out = fn(ids, last)
            vendor.synchronize()
            assert tuple(out.shape) == (1, vocab), out.shape
            assert out.device.type == device.type
            assert torch.isfinite(out).all()
            got, want = int(out[0].argmax()), int(ref[0].argmax())
            ref32 = ref[0].float()
            tolerance = ARGMAX_TOLERANCE[precision] * max(1.0, float(ref32.abs().max()))
            assert got == want or float(ref32[want] - ref32[got]) <= tolerance, (
                f"toolkit '{toolkit_name}' predicts token {got}, the plain model {want} "
                f"(logit gap {float(ref32[want] - ref32[got]):.3g}) on a {ids.shape[1]}-token prompt"
            )

    report = toolkit.report()
    assert isinstance(report, ToolkitReport)
    assert report.name == toolkit_name
    assert report.recompiles == 0, f"toolkit '{toolkit_name}' compiled again after prepare(): {report}"
    assert all(isinstance(o, str) for o in report.optimizations)
    json.dumps(dict(report.details), default=str)


def test_toolkit_scores_packed_prompts_like_each_alone(
    toolkit_name: str, vendor, config, device: torch.device, precision: str, smoke_data_dir, prompts, switched_on
) -> None:
    """With the case's packing optimizations on, the inference pass hands the toolkit's callable several prompts
    in one input (benchmarks.interfaces, ModelFn); each must get the logits it gets alone. The case's named
    optimizations are switched on one after the other, as the runner applies them (with this vendor's ragged
    attention kernel, or the case's fallback)."""
    from benchmarks.contracts import OptimizationContext
    from benchmarks.registry import get_case

    case = get_case(CASE_NAME)
    model = case.build_model(config.case, smoke_data_dir, precision=precision, device=device, synthetic=False, seed=0)
    with torch.inference_mode():
        alone = [model(ids, last)[0] for ids, last in prompts]
    lengths = [ids.shape[1] for ids, _ in prompts]
    ctx = OptimizationContext(vendor=vendor, precision=precision, longest_prompt=max(lengths))
    packs = [(0, 2), (2, len(prompts)), (0, len(prompts))]
    applied = []
    for opt in case.optimizations:
        if opt.needs_compiler:  # checked by the toolkit test above; the 'none' toolkit would not exercise it
            continue
        if opt.precisions and precision not in opt.precisions:  # on only at its own (lossy) precision
            continue
        opt.apply(model, switched_on(opt), ctx)
        applied.append(opt.name)
        torch._dynamo.reset()
        toolkit = vendor.toolkits()[toolkit_name](config.vendor, vendor)
        fn = toolkit.prepare(model, [tuple(lengths[i:j]) for i, j in packs])
        with torch.inference_mode():
            for i, j in packs:
                ids = torch.cat([p[0] for p in prompts[i:j]], dim=1)
                last = torch.tensor(lengths[i:j], device=device).cumsum(0) - 1
                out = fn(ids, last)
                vendor.synchronize()
                assert tuple(out.shape) == (j - i, alone[0].shape[-1]), out.shape
                for row, ref in zip(out, alone[i:j]):
                    got, want = int(row.argmax()), int(ref.argmax())
                    ref32 = ref.float()
                    tolerance = ARGMAX_TOLERANCE[precision] * max(1.0, float(ref32.abs().max()))
                    assert got == want or float(ref32[want] - ref32[got]) <= tolerance, (
                        f"toolkit '{toolkit_name}' predicts {got} for a packed prompt ({', '.join(applied)}), "
                        f"{want} for it alone")
                    if precision == "fp32":
                        torch.testing.assert_close(row.float(), ref32, atol=1e-4, rtol=1e-4)
        assert toolkit.report().recompiles == 0, f"toolkit '{toolkit_name}' compiled again after prepare()"
    assert applied, "the case declares no optimization that packs prompts"


def test_ragged_attention_when_offered_attends_within_each_block(vendor, device: torch.device, precision: str) -> None:
    """Vendor.ragged_attention (optional): block-diagonal attention, causal within a block, grouped-query
    heads, checked against plain softmax attention of each block alone."""
    from benchmarks.contracts import ragged_attention_of

    kernel = ragged_attention_of(vendor, precision)
    if kernel is None:
        pytest.skip(f"vendor '{vendor.name}' offers no ragged attention (the case uses its own fallback)")
    dtype = torch.float32 if precision == "fp32" else {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    gen = torch.Generator().manual_seed(0)
    lens, heads, kv_heads, dim = [5, 17, 9], 4, 2, 64
    q = torch.randn(sum(lens), heads, dim, generator=gen)
    k, v = (torch.randn(sum(lens), kv_heads, dim, generator=gen) for _ in range(2))
    cu = torch.tensor([0, *lens]).cumsum(0).to(torch.int32)
    out = kernel(*(t.to(device, dtype) for t in (q, k, v)), cu.to(device), cu.to(device), max(lens), max(lens),
                 True, dim ** -0.5).float().cpu()
    for b, n in enumerate(lens):
        lo = int(cu[b])
        qq, kk, vv = (t[lo:lo + n].transpose(0, 1) for t in (q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)))
        scores = qq @ kk.transpose(1, 2) * dim ** -0.5 + torch.full((n, n), float("-inf")).triu(1)
        want = (torch.softmax(scores, -1) @ vv).transpose(0, 1)
        tol = 1e-4 if precision == "fp32" else 2e-2
        torch.testing.assert_close(out[lo:lo + n], want, atol=tol, rtol=tol)


# ------------------------------------------------------------------------------------------ telemetry


def test_telemetry_when_offered_meets_its_contract(vendor, device: torch.device) -> None:
    """Vendor.telemetry (optional): a fresh Telemetry per call; marks in order with counter readings, samples
    in time order, report() after exit (see benchmarks.interfaces.Telemetry)."""
    from benchmarks.contracts import telemetry_of
    from telemetry_support import check_telemetry

    first = telemetry_of(vendor)
    if first is None:
        pytest.skip(f"vendor '{vendor.name}' offers no telemetry (optional)")
    assert telemetry_of(vendor) is not first, "telemetry() must return a new object per call"
    x = torch.randn(512, 512, device=device)

    def work() -> None:
        for _ in range(20):
            x @ x
        vendor.synchronize()

    check_telemetry(first, work=work)
