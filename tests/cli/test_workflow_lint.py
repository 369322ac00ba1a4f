"""The example nightly workflow (.github/workflows/nightly-gpu.yml): valid for GitHub Actions by a real checker
(check-jsonschema's GitHub workflow schema, in requirements-dev.txt), and doing what docs/nightly.md says."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "nightly-gpu.yml"
CHECKER = shutil.which("check-jsonschema")


@pytest.mark.skipif(CHECKER is None, reason="check-jsonschema is not installed (pip install -r requirements-dev.txt)")
def test_workflow_passes_the_github_workflow_schema(tmp_path: Path) -> None:
    proc = subprocess.run([CHECKER, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the check can fail: a job without runs-on is refused
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    steps:\n      - run: echo\n", encoding="utf-8")
    proc = subprocess.run([CHECKER, "--builtin-schema", "vendor.github-workflows", str(broken)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "runs-on" in proc.stdout + proc.stderr


def test_workflow_runs_the_nightly_as_documented() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    job = flow["jobs"]["benchmark"]
    env, runs = job["env"], "\n".join(step.get("run", "") for step in job["steps"])
    assert env["NIGHTLY_REPEAT"] == "3" and env["NIGHTLY_PYTHON"].startswith(env["VENV"])
    assert 'python3 -m venv "$VENV"' in runs and '"$VENV/bin/python" -m pip install -r requirements.txt' in runs
    assert 'mkdir -p "$NIGHTLY_HOME"' in runs and "tools/nightly.sh" in runs
    upload = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    paths = upload["with"]["path"].splitlines()
    assert paths[0] == "${{ env.NIGHTLY_HOME }}/report/"
    for name in ("result.json", "run.log"):  # the night's files, under runs/<stamp>/ as the report links them
        assert f"${{{{ env.NIGHTLY_HOME }}}}/runs/${{{{ steps.night.outputs.stamp }}}}/{name}" in paths
