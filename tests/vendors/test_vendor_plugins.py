"""Adding an accelerator is one folder: vendors are found by name (folder, $LLAMA_BENCH_VENDOR_PATH, entry
point), bring their YAML, pass the contract tests and run the case, without a line of harness code.

The end-to-end proofs copy vendors/template/ into temporary folders as new vendors (`acme` on the vendor
path, `acme2` installed as an entry point) and run the real CLI in a subprocess; they write only to tmp.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.config import load_config, vendor_yaml_path
from benchmarks.errors import BenchmarkError
from benchmarks.registry import ENTRY_POINT_GROUP, REPO_ROOT, VENDOR_PATH_ENV, get_case, get_toolkit, get_vendor, known_vendors, vendor_home
from fault_helpers import cli

CASE_NAME = "llama2_7b_mmlu"
TEMPLATE = REPO_ROOT / "vendors" / "template"
TEMPLATE_NAME_LINE = "    name = Path(__file__).resolve().parent.name\n"


def copy_template(dest: Path, name: str, set_name: bool = False) -> Path:
    """vendors/template as vendor `name` in folder `dest`, its YAML renamed as docs/adding_a_vendor.md says."""
    shutil.copytree(TEMPLATE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    yaml_dir = dest / "configs" / CASE_NAME
    (yaml_dir / "template_configurations.yaml").rename(yaml_dir / f"{name}_configurations.yaml")
    if set_name:  # an installed package's folder is not its vendor name: the vendor writes its name
        init = dest / "__init__.py"
        text = init.read_text()
        assert text.count(TEMPLATE_NAME_LINE) == 1
        init.write_text(text.replace(TEMPLATE_NAME_LINE, f"    name = {name!r}\n"))
    return dest


def install_entry_point(site: Path, name: str, package: str) -> None:
    """A minimal installed distribution declaring `name = package:VENDOR` in the vendors' group."""
    dist = site / f"{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {package}:VENDOR\n")


def run_python(args: list[str], env_extra: dict[str, str], smoke_cache: Path) -> subprocess.CompletedProcess:
    """`python ARGS` in a fresh process: a vendor installed or added here must be found by a new interpreter."""
    env = {k: v for k, v in os.environ.items() if k != VENDOR_PATH_ENV}
    env.update(LLAMA_BENCH_CACHE=str(smoke_cache), PYTHONDONTWRITEBYTECODE="1", **env_extra)
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def check_result(out_dir: Path, vendor: str) -> dict:
    result = json.loads((out_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["vendor"] == vendor
    assert result["smoke"] is True and result["toolkit"] == "none"
    assert result["counts"]["questions"] == 57  # --limit 1: one question of each subject
    for key in ("p_val_whole", "p_val_core", "p_infer_whole", "p_infer_core", "mem_used_gib", "val_acc", "infer_acc"):
        assert result["metrics"][key] is not None, key
    assert result["metrics"]["mfu"] is None and result["peak_flops"]["source"]
    assert result["memory"]["source"] == "rss:process_peak" and result["toolkit_report"]["recompiles"] == 0
    assert result["verdict"]["status"] == "INVALID"  # a smoke run is never a valid benchmark result
    return result


@pytest.fixture
def no_vendor_path(monkeypatch: pytest.MonkeyPatch):
    """No $LLAMA_BENCH_VENDOR_PATH (tests set their own); vendors a test imported are forgotten after it."""
    monkeypatch.delenv(VENDOR_PATH_ENV, raising=False)
    before = set(sys.modules)
    yield monkeypatch
    for name in set(sys.modules) - before:
        if name.startswith(("llama_bench_vendor_", "acme")):
            del sys.modules[name]


# ------------------------------------------------------------------------------------------- registry


def test_unknown_vendor_lists_the_known_ones(no_vendor_path) -> None:
    known = known_vendors()
    assert {"cpu", "nvidia"} <= set(known) and "template" not in known  # the template folder is not a vendor
    for name in ("nope", "template"):
        with pytest.raises(BenchmarkError, match=f"unknown vendor '{name}'; known vendors: {', '.join(known)}$"):
            get_vendor(name)


def test_unknown_toolkit_lists_the_vendor_s_toolkits() -> None:
    vendor = get_vendor("cpu")
    with pytest.raises(BenchmarkError, match="vendor 'cpu' has no toolkit 'tensorrt' .* known toolkits: inductor, none$"):
        get_toolkit(vendor, "tensorrt", vendor.Options())


def test_a_vendor_missing_protocol_members_is_refused_naming_them(tmp_path: Path, no_vendor_path) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "__init__.py").write_text(
        "import torch\nclass V:\n    name = 'half'\n    def device(self):\n        return torch.device('cpu')\nVENDOR = V()\n"
    )
    no_vendor_path.setenv(VENDOR_PATH_ENV, str(tmp_path))
    with pytest.raises(BenchmarkError, match=r"vendor 'half' .* \(missing: Options, configure, is_available, device_name, "
                                             r"synchronize, supports, memory_monitor, peak_flops, toolkits, environment\)"):
        get_vendor("half")


def test_a_vendor_whose_options_are_not_a_frozen_dataclass_is_refused(tmp_path: Path, no_vendor_path) -> None:
    init = copy_template(tmp_path / "loose", "loose") / "__init__.py"
    init.write_text(init.read_text().replace("    Options = Options\n", "    Options = dict\n"))
    no_vendor_path.setenv(VENDOR_PATH_ENV, str(tmp_path))
    with pytest.raises(BenchmarkError, match="vendor 'loose' .*: Options must be a frozen dataclass"):
        get_vendor("loose")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_the_cli_refuses_a_vendor_without_its_device(tmp_path: Path) -> None:
    code, _, err = cli(["--smoke", "--vendor", "nvidia", "--output_dir", str(tmp_path / "out")])
    assert code == 2 and "vendor 'nvidia' finds no usable device on this machine" in err
    assert not (tmp_path / "out").exists()


def test_harness_never_branches_on_a_vendor_name() -> None:
    # The in-tree vendors' names appear in the harness only in registry.default_vendor (the default choice).
    pattern = re.compile(r"""["'](cpu|nvidia)["']|\bvendor(_name)?(\.name)?\s*(==|!=|\bin\b)""")
    hits = []
    for path in sorted((REPO_ROOT / "benchmarks").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line) and "device.type" not in line:
                hits.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert len(hits) == 1 and hits[0].startswith("benchmarks/registry.py:") and 'return "nvidia" if' in hits[0], hits


# --------------------------------------------------------------------------------------- vendor YAML


def test_a_vendor_may_ship_its_yaml_in_its_own_folder(tmp_path: Path, no_vendor_path) -> None:
    copy_template(tmp_path / "plugins" / "acme", "acme")
    no_vendor_path.setenv(VENDOR_PATH_ENV, str(tmp_path / "plugins"))
    home = vendor_home("acme")
    shipped = home / "configs" / CASE_NAME / "acme_configurations.yaml"
    assert home.resolve() == (tmp_path / "plugins" / "acme").resolve()
    assert vendor_yaml_path(REPO_ROOT / "configs", CASE_NAME, "acme", home) == shipped
    case, vendor = get_case(CASE_NAME), get_vendor("acme")
    cfg = load_config(REPO_ROOT / "configs", case, "acme", vendor.Options, vendor_home=home)
    assert cfg.run.compiler == "none" and cfg.sources["compiler"] == str(shipped)

    # A YAML under the config root wins over the shipped one (a site can override a vendor's defaults).
    root = tmp_path / "configs"
    shutil.copytree(REPO_ROOT / "configs" / CASE_NAME, root / CASE_NAME)
    site_yaml = root / CASE_NAME / "vendor_config" / "acme_configurations.yaml"
    site_yaml.write_text("fp16: false\n")
    cfg = load_config(root, case, "acme", vendor.Options, vendor_home=home)
    assert cfg.run.compiler == "inductor" and cfg.sources["fp16"] == str(site_yaml)


@pytest.mark.parametrize("line", ["few_shots: 0", "mmlu_dir: other", "weight_dir: other", 'flops: "1*7e9"'])
def test_a_shipped_yaml_may_not_change_what_is_measured(tmp_path: Path, no_vendor_path, line: str) -> None:
    home = copy_template(tmp_path / "acme", "acme")
    shipped = home / "configs" / CASE_NAME / "acme_configurations.yaml"
    shipped.write_text(shipped.read_text() + line + "\n")
    no_vendor_path.setenv(VENDOR_PATH_ENV, str(tmp_path))
    case, vendor = get_case(CASE_NAME), get_vendor("acme")
    key = line.split(":")[0]
    with pytest.raises(BenchmarkError, match=f"{re.escape(str(shipped))}: key '{key}' defines what is measured"):
        load_config(REPO_ROOT / "configs", case, "acme", vendor.Options, vendor_home=home)


def test_a_missing_vendor_yaml_names_every_path_tried(tmp_path: Path) -> None:
    home = tmp_path / "acme"
    with pytest.raises(BenchmarkError) as err:
        vendor_yaml_path(REPO_ROOT / "configs", CASE_NAME, "acme", home)
    msg = str(err.value)
    assert "vendor config not found for vendor 'acme'" in msg and "docs/adding_a_vendor.md" in msg
    assert str(REPO_ROOT / "configs" / CASE_NAME / "vendor_config" / "acme_configurations.yaml") in msg
    assert str(home / "configs" / CASE_NAME / "acme_configurations.yaml") in msg


def test_an_entry_point_vendor_is_found_with_its_home(tmp_path: Path, no_vendor_path) -> None:
    site = tmp_path / "site"
    copy_template(site / "acme2_pkg", "acme2", set_name=True)
    install_entry_point(site, "acme2", "acme2_pkg")
    no_vendor_path.syspath_prepend(str(site))
    importlib.invalidate_caches()
    assert "acme2" in known_vendors()
    vendor = get_vendor("acme2")
    assert vendor.name == "acme2" and vendor_home("acme2") == (site / "acme2_pkg").resolve()


# ------------------------------------------------------------------------------------ end to end (CLI)


@pytest.mark.slow
def test_a_new_vendor_on_the_vendor_path_passes_the_contract_and_runs_the_case(
    tmp_path: Path, smoke_cache: Path
) -> None:
    plugins = tmp_path / "plugins"
    copy_template(plugins / "acme", "acme")
    env = {VENDOR_PATH_ENV: str(plugins)}

    contract = run_python(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/contract/test_vendor_contract.py",
                        "--vendor", "acme", "--basetemp", str(tmp_path / "pytest")], env, smoke_cache)
    assert contract.returncode == 0, contract.stdout[-3000:] + contract.stderr[-3000:]
    # The template offers no ragged attention kernel and no telemetry (both optional): their tests skip, saying so.
    assert " passed, 2 skipped" in contract.stdout and "offers no ragged attention" in contract.stdout
    assert "vendor 'acme' offers no telemetry (optional)" in contract.stdout

    out = tmp_path / "out"
    run = run_python(["run_benchmark.py", "--smoke", "--vendor", "acme", "--limit", "1", "--quiet",
                   "--output_dir", str(out)], env, smoke_cache)
    assert run.returncode == 0, run.stderr[-3000:]
    result = check_result(out, "acme")
    shipped = plugins / "acme" / "configs" / CASE_NAME / "acme_configurations.yaml"
    assert Path(result["config_sources"]["compiler"]).resolve() == shipped.resolve()
    assert not (REPO_ROOT / "vendors" / "acme").exists()
    assert not (REPO_ROOT / "configs" / CASE_NAME / "vendor_config" / "acme_configurations.yaml").exists()


@pytest.mark.slow
def test_a_vendor_installed_as_an_entry_point_runs_the_case(tmp_path: Path, smoke_cache: Path) -> None:
    site = tmp_path / "site"
    copy_template(site / "acme2_pkg", "acme2", set_name=True)
    install_entry_point(site, "acme2", "acme2_pkg")
    out = tmp_path / "out"
    pythonpath = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    run = run_python(["run_benchmark.py", "--smoke", "--vendor", "acme2", "--limit", "1", "--quiet",
                   "--output_dir", str(out)], {"PYTHONPATH": pythonpath}, smoke_cache)
    assert run.returncode == 0, run.stderr[-3000:]
    result = check_result(out, "acme2")
    shipped = site / "acme2_pkg" / "configs" / CASE_NAME / "acme2_configurations.yaml"
    assert Path(result["config_sources"]["compiler"]).resolve() == shipped.resolve()
