"""The optional hooks (benchmarks/contracts/hooks.py): each declared once, checked when a vendor or case is
registered, asked for through one function each."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from benchmarks.contracts import hooks
from benchmarks.errors import BenchmarkError
from benchmarks.registry import get_vendor

VENDOR = '''
from vendors.cpu import CpuVendor

class Odd(CpuVendor):
    name = "{name}"
{member}

VENDOR = Odd()
'''


def write_vendor(tmp_path: Path, name: str, member: str) -> None:
    folder = tmp_path / name
    (folder / "configs" / "llama2_7b_mmlu").mkdir(parents=True)
    (folder / "__init__.py").write_text(VENDOR.format(name=name, member=textwrap.indent(member, "    ")))
    (folder / "configs" / "llama2_7b_mmlu" / f"{name}_configurations.yaml").write_text("compiler: none\n")


@pytest.mark.parametrize("name, member, says", [
    ("odd1", "ragged_attention = 5", "'ragged_attention' is int, not a method"),
    ("odd2", "def ragged_attention(self):\n    return None",
     "'ragged_attention' cannot be called as ragged_attention(precision)"),
    ("odd3", "def telemetry(self, interval):\n    return None", "'telemetry' cannot be called as telemetry()"),
])
def test_a_vendor_s_malformed_optional_member_is_refused_when_registered(tmp_path, monkeypatch, name, member, says):
    write_vendor(tmp_path, name, member)
    monkeypatch.setenv("LLAMA_BENCH_VENDOR_PATH", str(tmp_path))
    with pytest.raises(BenchmarkError) as err:
        get_vendor(name)
    assert says in str(err.value) and f"vendor '{name}'" in str(err.value) and "hooks.py" in str(err.value)


def test_a_vendor_with_well_formed_hooks_or_none_registers(tmp_path, monkeypatch):
    write_vendor(tmp_path, "fine", "def ragged_attention(self, precision):\n    return None")
    monkeypatch.setenv("LLAMA_BENCH_VENDOR_PATH", str(tmp_path))
    vendor = get_vendor("fine")
    assert hooks.ragged_attention_of(vendor, "fp16") is None and hooks.telemetry_of(vendor) is None


def test_case_hooks_are_checked_too():
    class Case:
        architecture = {"layers": 2}

        def deviations(self, params):  # one argument short
            return []

    problems = hooks.check_hooks(Case(), hooks.CASE_HOOKS)
    assert problems == ["'deviations' cannot be called as deviations(params, workload, model_architecture)"]

    class Bad:
        def architecture(self):  # a method where a value is declared
            return {}

    assert "'architecture' is a method" in hooks.check_hooks(Bad(), hooks.CASE_HOOKS)[0]


def test_the_accessors_answer_for_an_object_without_the_hook():
    plain = object()
    assert hooks.model_architecture(plain) is None and hooks.flops_counter(plain) is None
    assert hooks.pad_multiple_of(plain) == 1 and hooks.untimed_seconds(plain) is None
    assert hooks.deviations_of(plain, None, None, {}) == [] and hooks.case_architecture(plain) is None
    assert hooks.is_reference_compiler(plain) is False
    hooks.mark_graph_baseline(plain)  # nothing to mark: no error

    class Model:
        def architecture(self):
            return {"layers": 1}

        def forward_flops(self, lengths):
            return 2.0 * sum(lengths)

    assert hooks.model_architecture(Model()) == {"layers": 1} and hooks.flops_counter(Model())([3, 4]) == 14.0
