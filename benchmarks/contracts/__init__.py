"""The contracts between the harness, the cases and the vendors: one per file, and this face that re-exports them
(`benchmarks.interfaces` re-exports the same names for plug-ins written against it).

A *case* is one object implementing `Case`: what is measured. It owns its parameters (parameters.yaml),
its data (a `Workload` of tokenized `Sample`s with labels), its model (a `ModelFn` module built on the
vendor's device), and its named optimizations (`Optimization`s the harness switches on between the
validation and the inference pass). Cases are registered by name in `benchmarks.registry`.

A *vendor* is one object implementing `Vendor`: where tensors live, how to wait for the device, how to
measure its memory, its peak FLOP/s, and which toolkits (compilers/runtimes) it offers. A *toolkit* is one
class implementing `Toolkit`: it takes the case's plain model callable and returns an adapted callable with
the same contract, after compiling and warming it up.

The harness only talks to these Protocols and never branches on a case's, vendor's or optimization's name.
Vendors are found by the registry (`benchmarks.registry`): a folder `vendors/<name>/` (or one in
$LLAMA_BENCH_VENDOR_PATH) whose `__init__.py` defines `VENDOR`, or an installed package that declares an
entry point in the group `llama_bench.vendors`. Each vendor also needs its YAML,
`configs/<case>/vendor_config/<name>_configurations.yaml` or, shipped with the vendor,
`<vendor folder>/configs/<case>/<name>_configurations.yaml`.

The order of calls in one run (benchmarks/session.py, benchmarks/harness/run.py):
  registry: get_case(name) -> CASE, get_vendor(name) -> VENDOR (members checked against CASE_MEMBERS,
            VENDOR_MEMBERS, the optional ones against hooks.CASE_HOOKS, hooks.VENDOR_HOOKS)
  session:  load_config(..., case, vendor.Options) -> vendor.configure(options) -> vendor.is_available()
            -> case.check_data(params, data_dir) (or case.smoke_data())
            -> toolkit = vendor.toolkits()[compiler](options, vendor) (once)
            -> vendor.device_name(), vendor.environment() (result header)
  run:      vendor.supports(precision)
            -> with vendor.memory_monitor(): case.load_workload(); case.build_model() on vendor.device();
               validation pass; each active optimization's apply(model, ...); toolkit.prepare(model, calls)
               (timed as compile); inference pass (vendor.synchronize() around every timed forward)
               (all of it inside the optional vendor.telemetry(), whose mark(phase) sees every phase)
            -> toolkit.report(), vendor.peak_flops(precision, tf32), monitor.report(), telemetry.report()
               into the rank's record (benchmarks.measure.records.RankRecord)
Any vendor must pass `pytest tests/contract --vendor <name>`, any case `pytest tests/contract --case <name>`;
docs/adding_a_vendor.md and docs/adding_a_case.md are the walk-throughs.
"""
from __future__ import annotations

from .case import Case, Sample, Workload
from .hooks import (CASE_HOOKS, CASE_MEMBERS, TOOLKIT_MEMBERS, VENDOR_HOOKS, VENDOR_MEMBERS, check_hooks,
                    protocol_members, ragged_attention_of, telemetry_of)
from .optimization import Optimization, OptimizationContext, yaml_text
from .precision import PRECISIONS, VALIDATION_PRECISION, is_lossy, torch_dtype, validation_precision
from .telemetry import CLOCK_LIMITS, IDLE_PHASE, Telemetry, TelemetryMark, TelemetryRecord, TelemetrySample
from .toolkit import ModelFn, Toolkit, ToolkitReport
from .vendor import MemoryMonitor, MemoryReport, PeakFlops, RaggedAttention, ToolkitFactory, Vendor

# The optional members by their old names (a list of names; hooks.VENDOR_HOOKS / CASE_HOOKS declare them).
OPTIONAL_VENDOR_MEMBERS = tuple(m for h in VENDOR_HOOKS for m in protocol_members(h))
OPTIONAL_CASE_MEMBERS = tuple(m for h in CASE_HOOKS for m in protocol_members(h))

__all__ = [
    "CASE_HOOKS", "CASE_MEMBERS", "CLOCK_LIMITS", "IDLE_PHASE", "OPTIONAL_CASE_MEMBERS", "OPTIONAL_VENDOR_MEMBERS",
    "PRECISIONS", "TOOLKIT_MEMBERS", "VALIDATION_PRECISION", "VENDOR_HOOKS", "VENDOR_MEMBERS", "Case", "MemoryMonitor",
    "MemoryReport", "ModelFn", "Optimization", "OptimizationContext", "PeakFlops", "RaggedAttention", "Sample",
    "Telemetry", "TelemetryMark", "TelemetryRecord", "TelemetrySample", "Toolkit", "ToolkitFactory", "ToolkitReport",
    "Vendor", "Workload", "check_hooks", "is_lossy", "protocol_members", "ragged_attention_of", "telemetry_of",
    "torch_dtype", "validation_precision", "yaml_text",
]
