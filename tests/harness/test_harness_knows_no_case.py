"""The harness (benchmarks/ outside the case folders) names no case, model, dataset or optimization in its
code: cases and their optimizations are plug-ins. Docstrings and comments may name them as examples."""
from __future__ import annotations

import io
import re
import token
import tokenize
from pathlib import Path

from benchmarks.contracts import Optimization
from benchmarks.registry import CASES, get_case, known_cases

REPO = Path(__file__).resolve().parents[2]
HARNESS = [p for p in sorted((REPO / "benchmarks").rglob("*.py"))
           if not any((REPO / "benchmarks" / name) in p.parents for name in CASES)]
WORDS = re.compile(r"llama|mmlu|fuse|prune|flash|varlen|2048", re.IGNORECASE)
# The project's own name (env variables, entry-point groups) and the two places that must name the shipped
# case: its registration and the CLI's default.
ALLOWED = re.compile(r"LLAMA_BENCH_\w+|llama[-_]bench[._]?\w*|refuse")
REGISTRATION = {("registry.py", 'CASES = {"llama2_7b_mmlu": "benchmarks.llama2_7b_mmlu"}'),
                ("cli.py", 'p.add_argument("--case", default="llama2_7b_mmlu", help="case name (default: llama2_7b_mmlu)")')}


def code_tokens(path: Path):
    """(line number, text) of every name and string that is not a docstring, comments excluded."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    previous = token.NEWLINE
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == token.STRING and previous in (token.NEWLINE, token.INDENT, token.DEDENT, tokenize.NL):
            previous = tok.type  # a statement that is only a string: a docstring
            continue
        if tok.type in (token.NAME, token.STRING) or tok.type == getattr(token, "FSTRING_MIDDLE", -1):
            yield tok.start[0], tok.string, lines[tok.start[0] - 1].strip()
        if tok.type not in (tokenize.COMMENT, tokenize.NL):
            previous = tok.type


def test_harness_code_names_no_case_model_or_optimization() -> None:
    assert len(HARNESS) > 15
    # An optimization's name in a string would be the harness switching it by name. (The llama case's
    # pack_tokens shares its name with the harness's generic packing, Optimization.pack_tokens.)
    names = {o.name for c in known_cases() for o in get_case(c).optimizations} - set(dir(Optimization))
    found = []
    for path in HARNESS:
        for line, text, whole in code_tokens(path):
            hits = [w for w in WORDS.findall(ALLOWED.sub("", text))] + [n for n in names if n in text]
            if hits and (path.name, whole) not in REGISTRATION:
                found.append(f"{path.relative_to(REPO)}:{line}: {text[:80]} ({', '.join(hits)})")
    assert not found, "\n".join(found)
