"""The public face of the generic toolkits for plug-ins (a vendor's toolkit subclasses or reuses them; import from
here, as docs/adding_a_vendor.md says): `Eager` ('none'), `Inductor` ('inductor', torch.compile) with its options,
right-padding, and the public helpers a toolkit of another kind builds on. They live in benchmarks.harness.toolkits.
"""
from __future__ import annotations

from .harness.toolkits import (  # noqa: F401
    DYNAMO_MODES,
    TOOLKITS,
    BuildCounter,
    Eager,
    Inductor,
    InductorOptions,
    PadRight,
    ReferenceInductor,
    ReferenceWarmup,
    cache_counts,
    cache_state,
    graph_count,
    longest_prompt,
    padded_call,
    padded_length,
    reference_compiler,
    reference_toolkit,
    warm_up,
    warmup_shapes,
)
