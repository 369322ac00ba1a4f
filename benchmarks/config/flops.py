"""A safe parser for FLOP-count strings such as "2*7e9": numbers, + - * /, parentheses. Never eval."""
from __future__ import annotations

import math
import re

from ..errors import BenchmarkError

MAX_CHARS = 200  # an expression of a model's FLOPs per token is a short product
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|(.))")


def _tokens(text: str) -> list[str]:
    out = []
    for number, other in _TOKEN.findall(text):
        if number:
            out.append(number)
        elif other.strip():
            if other not in "+-*/()":
                raise ValueError(f"unexpected character {other!r}")
            out.append(other)
    return out


class _Parser:
    """expr := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*; factor := number | '(' expr ')'."""

    MAX_DEPTH = 20  # "2*7e9" needs none; deep parentheses would exhaust Python's stack (one frame each)

    def __init__(self, tokens: list[str]):
        self.tokens, self.pos, self.depth = tokens, 0, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ValueError("unexpected end")
        self.pos += 1
        return tok

    def expr(self) -> float:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> float:
        value = self.factor()
        while self.peek() in ("*", "/"):
            if self.take() == "*":
                value *= self.factor()
            else:
                value /= self.factor()
        return value

    def factor(self) -> float:
        tok = self.take()
        if tok == "(":
            self.depth += 1
            if self.depth > self.MAX_DEPTH:
                raise ValueError(f"parentheses nested deeper than {self.MAX_DEPTH}")
            value = self.expr()
            self.depth -= 1
            if self.take() != ")":
                raise ValueError("missing ')'")
            return value
        if tok in "+-*/)":
            raise ValueError(f"unexpected {tok!r}")
        return float(tok)


def parse_flops(text: str, key: str = "flops") -> float:
    """Parse a FLOPs-per-token expression like "2*7e9" into a positive finite float."""
    try:
        if len(str(text)) > MAX_CHARS:
            raise ValueError(f"{len(str(text))} characters, more than {MAX_CHARS}")
        parser = _Parser(_tokens(str(text)))
        value = parser.expr()
        if parser.peek() is not None:
            raise ValueError(f"unexpected {parser.peek()!r}")
    except (ValueError, ZeroDivisionError) as exc:
        shown = repr(text) if len(str(text)) <= 60 else repr(str(text)[:40]) + f"... ({len(str(text))} characters)"
        raise BenchmarkError(
            f"config key '{key}': cannot parse {shown} ({exc}); expected numbers with + - * / and "
            f"parentheses, e.g. \"2*7e9\""
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise BenchmarkError(f"config key '{key}': {text!r} gives {value}; expected a positive number")
    return value
