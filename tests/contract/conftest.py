"""Fixtures of the contract tests. Vendor contract: the vendor named by `--vendor` (tests/conftest.py declares
it), configured from its own YAML, and the reference case's tiny smoke model on the vendor's device. Case
contract: every registered case (`--case NAME` for one), including the test-only ones of tests/cases/.

Tests that need the device skip when `vendor.is_available()` is False (e.g. nvidia on a CPU machine).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.config import Config, load_config
from benchmarks.registry import REPO_ROOT, get_case, get_vendor, known_cases, vendor_home

CASE_NAME = "llama2_7b_mmlu"
# Prompt lengths for the toolkit checks: the toolkit is warmed up on these, then called on each.
PROMPT_LENGTHS = (7, 12, 23, 40)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per toolkit the vendor offers (the names come from the vendor itself), one per case."""
    if "toolkit_name" in metafunc.fixturenames:
        vendor = get_vendor(metafunc.config.getoption("--vendor"))
        # Every toolkit but the plain model compiles: the slow tier.
        metafunc.parametrize("toolkit_name", [pytest.param(n, marks=() if n == "none" else pytest.mark.slow)
                                              for n in sorted(vendor.toolkits())])
    if "case_name" in metafunc.fixturenames:
        only = metafunc.config.getoption("--case")
        metafunc.parametrize("case_name", [only] if only else known_cases(), scope="module")


_DESELECTED_TOOLKIT_TESTS: list[str] = []


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Remember the vendor's toolkit tests a tier left out (`-m "not slow"`: every toolkit but `none` compiles)."""
    _DESELECTED_TOOLKIT_TESTS.extend(item.name for item in items
                                     if "toolkit_name" in getattr(item, "fixturenames", ()))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say which of the vendor's toolkit tests did not run, so a fast tier that passes is not read as the whole
    contract passing."""
    if _DESELECTED_TOOLKIT_TESTS:
        vendor = config.getoption("--vendor")
        terminalreporter.write_line(
            f"vendor '{vendor}': {len(_DESELECTED_TOOLKIT_TESTS)} toolkit test(s) deselected, not run (the tests of "
            f"every toolkit but 'none' are marked slow: they compile): {', '.join(sorted(_DESELECTED_TOOLKIT_TESTS))}; "
            f"run them all with `pytest tests/contract/test_vendor_contract.py --vendor {vendor}` (no -m)", yellow=True)


def _switched_on(opt):
    first = dataclasses.fields(opt.Options)[0]
    value = 4096 if isinstance(first.default, int) and not isinstance(first.default, bool) else True
    return opt.Options(**{first.name: value})


@pytest.fixture(scope="session")
def switched_on():
    """opt -> the options that switch a declared optimization on: its first key truthy (a budget of 4096)."""
    return _switched_on


@pytest.fixture(scope="session")
def vendor_name(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--vendor")


@pytest.fixture(scope="session")
def vendor(vendor_name: str):
    return get_vendor(vendor_name)


@pytest.fixture(scope="session")
def config(vendor, vendor_name: str) -> Config:
    """The merged config of a run with this vendor (its YAML checked by the real loader), applied."""
    case = get_case(CASE_NAME)
    cfg = load_config(REPO_ROOT / "configs", case, vendor_name, vendor.Options,
                      vendor_home=vendor_home(vendor_name))
    vendor.configure(cfg.vendor)
    return cfg


@pytest.fixture(scope="session")
def device(vendor, config: Config) -> torch.device:
    """The vendor's device, after `configure`; skips the test when this machine has none."""
    if not vendor.is_available():
        pytest.skip(f"vendor '{vendor.name}' finds no device on this machine")
    return vendor.device()


@pytest.fixture(scope="session")
def precision(config: Config) -> str:
    return config.run.effective_precision


@pytest.fixture(scope="session")
def tiny_model(vendor, config: Config, device: torch.device, precision: str, smoke_data_dir: Path):
    """The case's model built the normal way from the smoke data_dir's tiny Llama, on the device."""
    case = get_case(CASE_NAME)
    return case.build_model(config.case, smoke_data_dir, precision=precision, device=device, synthetic=False, seed=0)


@pytest.fixture(scope="session")
def prompts(tiny_model, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random token-id prompts of `PROMPT_LENGTHS` tokens: (input_ids [1, n], last_pos [1]) on the device."""
    vocab = tiny_model.lm_head.out_features
    gen = torch.Generator().manual_seed(0)
    out = []
    for n in PROMPT_LENGTHS:
        ids = torch.randint(3, vocab, (1, n), generator=gen)
        ids[0, 0] = 1  # <s>
        out.append((ids.to(device), torch.tensor([n - 1], device=device)))
    return out
