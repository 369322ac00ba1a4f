"""No input is ever executed: no eval/exec in the code, YAML through safe loaders only, config paths bound.

The scan parses every .py file of the repository outside tests/ (the AST, so `model.eval()` and strings
that mention eval are not calls of the builtin).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from benchmarks.config import read_yaml
from benchmarks.errors import BenchmarkError
from benchmarks.llama2_7b_mmlu import Params

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"tests", "outputs", "data", "__pycache__"}
UNSAFE_YAML = {"unsafe_load", "full_load", "load_all", "unsafe_load_all", "full_load_all", "Loader", "FullLoader",
               "UnsafeLoader", "UnsafeConstructor", "FullConstructor"}


def _sources() -> list[Path]:
    out = []
    for path in sorted(REPO_ROOT.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).parts
        if not any(p in SKIP_DIRS or p.startswith(".") for p in parts[:-1]):
            out.append(path)
    return out


def findings(source: str, name: str = "<string>") -> list[str]:
    """Calls of eval/exec (also builtins.eval), and YAML's unsafe loaders, in one file's source."""
    out = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("eval", "exec"):
                out.append(f"{name}:{node.lineno}: {f.id}()")
            if isinstance(f, ast.Attribute) and f.attr in ("eval", "exec") and isinstance(f.value, ast.Name) \
                    and f.value.id in ("builtins", "__builtins__"):
                out.append(f"{name}:{node.lineno}: builtins.{f.attr}()")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "yaml" \
                and node.attr in UNSAFE_YAML:
            out.append(f"{name}:{node.lineno}: yaml.{node.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "yaml" \
                and not any(k.arg == "Loader" for k in node.keywords):
            out.append(f"{name}:{node.lineno}: yaml.load without a Loader")
    return out


def test_the_scan_finds_what_it_looks_for() -> None:
    code = "eval('1')\nexec('x = 1')\nimport builtins\nbuiltins.eval('2')\nmodel.eval()\ns = 'eval(x)'\n" \
           "yaml.load(t)\nyaml.unsafe_load(t)\nyaml.load(t, Loader=yaml.FullLoader)\nyaml.load(t, Loader=Safe)\n"
    assert findings(code) == ["<string>:1: eval()", "<string>:2: exec()", "<string>:4: builtins.eval()",
                              "<string>:7: yaml.load without a Loader", "<string>:8: yaml.unsafe_load",
                              "<string>:9: yaml.FullLoader"]


def test_no_eval_exec_or_unsafe_yaml_in_the_code() -> None:
    sources = _sources()
    assert REPO_ROOT / "benchmarks" / "config" / "loader.py" in sources and REPO_ROOT / "run_benchmark.py" in sources
    found = [f for path in sources
             for f in findings(path.read_text(encoding="utf-8"), str(path.relative_to(REPO_ROOT)))]
    assert found == []


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['true']", "!!python/name:os.system",
                                 "!!python/object:benchmarks.config.RunConfig {}", "!!python/tuple [1, 2]"])
def test_python_yaml_tags_are_refused(tmp_path: Path, tag: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"seed: {tag}\n", encoding="utf-8")
    with pytest.raises(BenchmarkError, match=r"c\.yaml: not valid YAML \(could not determine a constructor"):
        read_yaml(path)


@pytest.mark.parametrize("value", ["../mmlu", "a/../../b", "..", "mmlu/../../x"])
def test_config_paths_cannot_leave_data_dir(value: str) -> None:
    with pytest.raises(BenchmarkError, match="leaves data_dir; use a path inside data_dir or an absolute path"):
        Params(weight_dir="w", mmlu_dir=value, few_shots=5)


def test_absolute_config_paths_are_explicit_and_allowed() -> None:
    assert Params(weight_dir="/models/llama", mmlu_dir="/data/mmlu/../mmlu", few_shots=5).mmlu_dir.startswith("/")
