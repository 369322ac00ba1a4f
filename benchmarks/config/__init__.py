"""The configuration: three YAML files per case merged with the reference's rules into one frozen, typed `Config`
(loader.py); the safe `flops` parser (flops.py); the scenarios' settings (scenarios.py). This face re-exports the
names plug-ins and the harness use: `benchmarks.config.doc` documents a plug-in's option keys.
"""
from __future__ import annotations

from . import flops, scenarios  # noqa: F401
from .loader import (  # noqa: F401
    MAX_CONFIG_BYTES,
    Config,
    NoOptions,
    RunConfig,
    build,
    check_optimizations,
    doc,
    fields_of,
    load_config,
    parse_set,
    read_yaml,
    vendor_yaml_path,
)
