"""The guides are the product for plug-in authors: a vendor and a case written from docs/adding_a_vendor.md and
docs/adding_a_case.md alone pass their contract tests. The fenced snippets whose info string names a file
(```python acme/__init__.py) are written to a folder exactly as the pages show them, and the contract runs on
them, so a guide that drifts from what the harness accepts fails here."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SNIPPET = re.compile(r"^```(\w+) (\S+)\n(.*?)^```$", re.M | re.S)


def snippets(page: Path) -> dict[str, str]:
    """file path -> text of every fenced block of `page` whose info string names a file."""
    return {path: body for _, path, body in SNIPPET.findall(page.read_text(encoding="utf-8"))}


def write_snippets(page: Path, root: Path) -> list[str]:
    written = []
    for path, body in snippets(page).items():
        target = root / path
        assert root in target.resolve().parents, path  # a snippet names a file inside the folder
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
        written.append(path)
    return written


def test_the_guides_hold_a_whole_vendor_and_a_whole_case() -> None:
    assert sorted(snippets(REPO / "docs" / "adding_a_vendor.md")) == [
        "acme/__init__.py", "acme/configs/llama2_7b_mmlu/acme_configurations.yaml", "acme/exported.py"]
    assert sorted(snippets(REPO / "docs" / "adding_a_case.md")) == [
        "majority/__init__.py", "majority/configs/majority/configurations.yaml",
        "majority/configs/majority/parameters.yaml", "majority/configs/majority/vendor_config/cpu_configurations.yaml"]


def _pytest(args: list[str], env: dict[str, str], cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=REPO,
                          env={**os.environ, "LLAMA_BENCH_CACHE": str(cache), **env}, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_a_vendor_written_from_the_guide_passes_the_vendor_contract(tmp_path: Path, smoke_cache: Path) -> None:
    """Every vendor test on the guide's `acme`, its own `exported` toolkit (the recipe for a toolkit that is not
    torch.compile) included. Its `inductor` is the harness's own class, whose compile the cpu vendor's contract
    already runs in this tier: deselected here (a minute of CPU), and the summary must then name what it left out."""
    write_snippets(REPO / "docs" / "adding_a_vendor.md", tmp_path / "vendors")
    proc = _pytest(["tests/contract/test_vendor_contract.py", "--vendor", "acme", "-k", "not inductor"],
                   {"LLAMA_BENCH_VENDOR_PATH": str(tmp_path / "vendors")}, smoke_cache)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert re.search(r"\b(1[4-9]|[2-9]\d) passed", out) and " failed" not in out, out[-2000:]
    # the exported toolkit's two tests ran; the two inductor tests are named as not run
    assert "vendor 'acme': 2 toolkit test(s) deselected, not run" in out
    assert "test_toolkit_prepares_a_callable_that_predicts_like_the_plain_model[inductor]" in out


@pytest.mark.slow
def test_a_case_written_from_the_guide_passes_the_case_contract(tmp_path: Path, smoke_cache: Path) -> None:
    write_snippets(REPO / "docs" / "adding_a_case.md", tmp_path / "cases")
    proc = _pytest(["tests/contract/test_case_contract.py", "--case", "majority"],
                   {"LLAMA_BENCH_CASE_PATH": str(tmp_path / "cases")}, smoke_cache)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # every test but the packing one and the lower-precision one (the case offers no optimization) passed, its CLI
    # smoke run included
    assert re.search(r"\b9 passed, 2 skipped\b", out), out[-2000:]
