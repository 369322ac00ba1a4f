"""Shared test set-up: the repository on sys.path (plain `pytest` works, not only `python -m pytest`), the
`--vendor` option of the vendor contract tests (tests/contract), and the tiny smoke data, made once.

`--vendor` is declared here, in the top conftest, so that both `pytest tests` (CI) and
`pytest tests/contract --vendor NAME` know it: pytest only takes options from conftests it loads at startup.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
for path in (REPO_ROOT, TESTS):  # the repository, and the shared helpers (fault_helpers, results_support)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
# The test-only cases (tests/cases/: parity) are registered like out-of-tree cases, for this process and the
# CLI processes the tests start.
CASES = TESTS / "cases"
sys.path.insert(0, str(CASES))  # `import parity` for the tests that make its data
os.environ["LLAMA_BENCH_CASE_PATH"] = os.pathsep.join(
    p for p in (os.environ.get("LLAMA_BENCH_CASE_PATH", ""), str(CASES)) if p)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than ~1 s (inductor compiles, real processes, the real MMLU "
                                       "data, a headless browser), or is one of the ~190 cases of the hostile-input "
                                       "suite; the fast tier is `python3 -m pytest -q -m \"not slow\" tests`")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--vendor", default="cpu",
                     help="the vendor tests/contract checks (a name the registry knows; default: cpu)")
    parser.addoption("--case", default=None,
                     help="the case tests/contract checks (a name the registry knows; default: every case)")


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A $LLAMA_BENCH_CACHE holding the smoke data_dir, generated once per session (a few seconds).

    A fresh tmp folder, or the $LLAMA_BENCH_CACHE of the environment when set (the smoke data there is
    reused). Subprocesses given LLAMA_BENCH_CACHE=<this> (CLI runs, nested pytest) reuse it as well.
    """
    from benchmarks.llama2_7b_mmlu import smoke

    given = os.environ.get("LLAMA_BENCH_CACHE")
    root = Path(given) if given else tmp_path_factory.mktemp("llama_bench_cache")
    smoke.make_smoke_data(root / smoke.default_cache_dir().name)
    return root


@pytest.fixture(scope="session")
def smoke_data_dir(smoke_cache: Path) -> Path:
    """The smoke data_dir (tiny Llama + MMLU-format CSVs) in `smoke_cache`."""
    from benchmarks.llama2_7b_mmlu import smoke

    return smoke_cache / smoke.default_cache_dir().name
