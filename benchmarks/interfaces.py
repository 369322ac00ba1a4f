"""The public face of the contracts for plug-ins (vendors and cases written outside this repository import from
here, as docs/adding_a_vendor.md and docs/adding_a_case.md say): every name of `benchmarks.contracts`, where each
contract lives in its own file (case.py, optimization.py, vendor.py, toolkit.py, telemetry.py, precision.py, and
hooks.py for the optional members).
"""
from __future__ import annotations

from .contracts import *  # noqa: F401,F403
from .contracts import __all__  # noqa: F401
