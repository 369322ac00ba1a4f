"""Scenarios: which semantics a run measures (`--scenario`, recorded as result.json `scenario`).

optimized (the default): the three YAML files as they are (the vendor YAML's toolkit settings and the case's
    named optimizations it switches on); the model loaded directly in the run's precision; the toolkit compiles
    and warms up on every prompt shape before the timed inference pass.
reference: the reference's semantics end to end, so a row can be put next to the published reference table:
    - config: configurations.yaml + parameters.yaml only; the vendor YAML is not read: the vendor's `Options`
      stay at their dataclass defaults (the plain settings) except the toolkit keys the reference vendor YAML
      sets (REFERENCE_TOOLKIT_SETTINGS, set only where the vendor's Options has them); every named
      optimization of the case at its default (off); REFERENCE_RUN_SETTINGS; `--set` still applies on top;
    - model: the case's reference load path (`Case.build_model(..., load_path="reference")`);
    - inference pass: the configured toolkit with the reference's warm-up rule
      (`benchmarks.toolkits.reference_toolkit`): compiled lazily inside the pass, the first
      REFERENCE_WARMUP_CALLS calls each first run REFERENCE_WARMUP_FORWARDS extra forwards whose time is
      subtracted from core only; p_infer_whole is the pass alone (the wrapper's prepare step is outside, as
      the reference's); with `compiler: none` no inference pass at all (`skips_inference`), as the reference
      without a compiler; a vendor without a toolkit named `inductor` compiles with its own compiling
      toolkit (`benchmarks.toolkits.reference_compiler`).
This module holds the settings only (no torch import): benchmarks.config and the CLI read it before torch loads.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import BenchmarkError

OPTIMIZED = "optimized"
REFERENCE = "reference"
SCENARIOS = (OPTIMIZED, REFERENCE)
DEFAULT = OPTIMIZED

# Where result.json's config_sources says a scenario's setting came from.
SOURCE = "scenario reference"

# Harness keys the reference scenario sets: the reference's validation pass has no warm-up.
REFERENCE_RUN_SETTINGS: Mapping[str, Any] = {"warmup_longest": False}
# Toolkit keys of the reference vendor YAML (its torch.compile arguments), and one prompt per forward without
# padding. Applied only to keys the vendor's Options declares (benchmarks.toolkits.InductorOptions has them).
REFERENCE_TOOLKIT_SETTINGS: Mapping[str, Any] = {"dynamo_mode": "reduce-overhead", "dynamo_dynamic": True,
                                                 "pad_multiple": 0}
# The reference toolkit adapter's warm-up rule (its vendor YAML: dynamo_wamrup_iters, dynamo_wamrup_times).
REFERENCE_WARMUP_CALLS = 10
REFERENCE_WARMUP_FORWARDS = 10

# The model load path each scenario asks the case for (Case.build_model's `load_path`).
LOAD_PATHS = {OPTIMIZED: "direct", REFERENCE: "reference"}


def check(scenario: str) -> str:
    if scenario not in SCENARIOS:
        raise BenchmarkError(f"--scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}")
    return scenario


def load_path(scenario: str) -> str:
    return LOAD_PATHS[check(scenario)]


def skips_inference(scenario: str, compiler: str) -> bool:
    """The reference runs no inference pass without a compiler (its `compiler: null`, this project's 'none'),
    and records p_inference_* and infer_average_acc as None; its scenario does the same."""
    return scenario == REFERENCE and compiler == "none"


def prepare_in_whole(scenario: str) -> bool:
    """Whether p_infer_whole counts the toolkit's prepare step (its compile and warm-up). The reference
    scenario's prepare only wraps the model (the torch.compile call, ~2 s of imports on its first use): its
    compile and warm-up happen lazily inside the timed pass, and the reference keeps the wrapper's time out of
    its p_inference_whole."""
    return scenario != REFERENCE
