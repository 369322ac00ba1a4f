"""parse_flops (benchmarks/config/flops.py): the FLOPs-per-token string is parsed, never eval'd."""
from __future__ import annotations

import builtins

import pytest

from benchmarks.errors import BenchmarkError
from benchmarks.config.flops import parse_flops


@pytest.fixture(autouse=True)
def no_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here runs with eval/exec/compile unusable: the parser must not need them."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("parse_flops called eval/exec/compile")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, refuse)


@pytest.mark.parametrize(
    "text,value",
    [
        ("2*7e9", 1.4e10),
        ("2 * (6.5e9 + 0.5e9)", 1.4e10),
        ("1e3/2", 500.0),
        ("  2 *\t7e9  ", 1.4e10),
        ("14000000000", 1.4e10),
        ("1.4E+10", 1.4e10),
        ("2*7e9 - 1e9", 1.3e10),
        ("10-2-3", 5.0),  # left-associative
        ("100/10/2", 5.0),  # left-associative
        ("2+3*4", 14.0),  # * before +
        ("(2+3)*4", 20.0),
        ("((((7))))", 7.0),
        (".5*4", 2.0),
        ("3.", 3.0),
        ("1e-3*1e3", 1.0),
    ],
)
def test_parses(text: str, value: float) -> None:
    got = parse_flops(text)
    assert isinstance(got, float)
    assert got == pytest.approx(value, rel=1e-15)


def test_eval_is_really_unavailable() -> None:
    with pytest.raises(AssertionError):
        eval("1")  # noqa: S307 - proves the fixture is in force for the tests above
    assert parse_flops("2*7e9") == 1.4e10


@pytest.mark.parametrize(
    "text",
    ["-1", "0", "0*7e9", "1-1", "2-3", "1e-400", "1e999", "1e308*10", "1/0", "2**3", "__import__('os')", "2*",
     "(2", "2)", "()", "abc", "", "   ", "2 3", "7e", "e9", "2^3", "2%3", "1,5", "--1", "+1", "0x10",
     "1_000", "os.system('true')", "2*7e9\n; 1"],
)
def test_refused_with_the_key_named(text: str) -> None:
    with pytest.raises(BenchmarkError) as info:
        parse_flops(text)
    msg = str(info.value)
    assert "config key 'flops'" in msg
    assert "\n" not in msg


def test_error_names_a_custom_key() -> None:
    with pytest.raises(BenchmarkError, match="config key 'my_flops'"):
        parse_flops("2*", key="my_flops")
    with pytest.raises(BenchmarkError, match="config key 'my_flops'.*positive"):
        parse_flops("0", key="my_flops")


def test_non_string_input_is_read_as_text() -> None:
    assert parse_flops(14000000000) == 1.4e10  # type: ignore[arg-type]
