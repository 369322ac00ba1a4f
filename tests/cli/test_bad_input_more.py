"""More bad inputs (issue 15), each through the real CLI on a corrupted copy of the smoke data or configs:
exit 2 and one stderr line naming the file/key and the problem; never exit 3, a hang, or a traceback."""
from __future__ import annotations

import json
import pickle
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from fault_helpers import (  # noqa: E402
    MMLU,
    WEIGHTS,
    assert_usage_error,
    clone_data,
    copy_configs,
    csv_path,
    run_cli,
)
from fault_helpers import one_thread_per_module, smoke_cache_env  # noqa: E402,F401  (autouse fixtures)

FAST = ("--set", "few_shots=0")
VENDOR_YAML = "vendor_config/cpu_configurations.yaml"
LAUGHS = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
                 for p, c in zip([""] + list("abcdefgh"), "abcdefghi"))  # 9**9 values from ~400 bytes


def _config(tmp: Path, file: str, text: str) -> list[str]:
    case_dir = copy_configs(tmp / "configs")
    with open(case_dir / file, "a", encoding="utf-8") as f:
        f.write(text)
    return ["--config_dir", str(tmp / "configs")]


# ------------------------------------------------------------------------------------------------- YAML


@pytest.mark.parametrize("name, file, text, needle", [
    ("unhashable key", "configurations.yaml", "? [a, b]\n: 1\n", "unhashable"),
    ("deep nesting", "configurations.yaml", "x: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper than 100"),
    ("billion laughs", "configurations.yaml", LAUGHS, "anchors/aliases are expanded"),
    ("inductor_options bomb", VENDOR_YAML, LAUGHS.replace("i: &i", "inductor_options: &i").replace("[*h", "{k: [*h")
     .rstrip("\n") + "}\n", "anchors/aliases are expanded"),
])
def test_config_yaml_bounds(tmp_path: Path, smoke_data_dir: Path, name: str, file: str, text: str,
                            needle: str) -> None:
    extra = _config(tmp_path, file, text)
    start = time.perf_counter()
    run = run_cli(smoke_data_dir, tmp_path / "out", *extra)
    assert time.perf_counter() - start < 5  # in-process: no model, no data; the bomb is never walked
    assert_usage_error(run, str(tmp_path / "configs" / "llama2_7b_mmlu" / file), "not valid YAML", needle)
    assert not (tmp_path / "out").exists()  # never reaches result.json


def test_billion_laughs_is_refused_in_well_under_a_second(tmp_path: Path) -> None:
    from benchmarks.config import read_yaml
    from benchmarks.errors import BenchmarkError

    path = tmp_path / "bomb.yaml"
    path.write_text(LAUGHS)
    assert len(LAUGHS) < 500
    start = time.perf_counter()
    with pytest.raises(BenchmarkError, match="anchors/aliases are expanded"):
        read_yaml(path)
    assert time.perf_counter() - start < 0.5


# --------------------------------------------------------------------------------------------- baselines


def _result(metrics: dict) -> dict:
    return {"schema_version": 3, "status": "completed", "case": "llama2_7b_mmlu", "metrics": metrics}


@pytest.mark.parametrize("name, content, needles", [
    ("unhashable key", "metrics:\n  ? [a, b]\n  : 1\n", ("not valid YAML", "unhashable")),
    ("deep nesting", "metrics: " + "[" * 3000 + "]" * 3000 + "\n", ("nesting deeper than 100",)),
    ("billion laughs", LAUGHS + "metrics: {p_infer_core: 1}\n", ("anchors/aliases are expanded",)),
    ("non-numeric tolerance", "metrics:\n  p_infer_core: {value: 10, rel_tol: five}\n", ("rel_tol", "five")),
    ("boolean tolerance", "metrics:\n  p_infer_core: {value: 10, abs_tol: true}\n", ("abs_tol", "True")),
    ("NaN value", "metrics:\n  p_infer_core: .nan\n", ("p_infer_core", "expected a number")),
    ("unknown key", "metric:\n  p_infer_core: 1\n", ("unknown key(s) metric",)),
    ("unknown metric key", "metrics:\n  p_infer_core: {value: 1, tol: 2}\n", ("unknown key(s) tol",)),
    ("empty metrics", "metrics: {}\n", ("'metrics' missing or empty",)),
    ("json NaN metrics", json.dumps(_result({"p_infer_core": float("nan")})), ("p_infer_core", "finite number")),
    ("json empty metrics", json.dumps(_result({"p_infer_core": None, "mfu": None})), ("gate would compare nothing",)),
    ("json deep", '{"schema_version": 2, "status": "completed", "metrics": {}, "x": ' + "[" * 200 + "]" * 200 + "}",
     ("nested deeper than 100",)),
    ("json recursion", '{"schema_version": 2, "x": ' + "[" * 100000 + "]" * 100000 + "}", ("nested too deeply",)),
])
def test_bad_baseline(tmp_path: Path, smoke_data_dir: Path, name: str, content: str, needles: tuple[str, ...]) -> None:
    path = tmp_path / ("baseline.json" if name.startswith("json") else "baseline.yaml")
    path.write_text(content)
    run = run_cli(smoke_data_dir, tmp_path / "out", "--baseline", str(path))
    assert_usage_error(run, f"--baseline {path}", *needles)
    assert not (tmp_path / "out").exists()  # reported before the run: not a PASS with nothing compared


# ---------------------------------------------------------------------------------- flops and integer ranges


@pytest.mark.parametrize("setting, needles", [
    ("flops=" + "(" * 50 + "2" + ")" * 50, ("flops", "nested deeper than 20")),
    ("flops=" + "1+" * 500 + "1", ("flops", "more than 200")),
    (f"seed={2**64}", ("seed", "out of range", "torch.manual_seed")),
    ("seed=-1", ("seed", "out of range")),
    ("log_freq=0", ("log_freq",)),
    (f"log_freq={10**30}", ("log_freq", "out of range")),
    (f"pack_tokens={2**40}", ("pack_tokens", "out of range")),
    ("pad_multiple=-3", ("pad_multiple",)),
])
def test_out_of_range_values(tmp_path: Path, smoke_data_dir: Path, setting: str, needles: tuple[str, ...]) -> None:
    run = run_cli(smoke_data_dir, tmp_path / "out", "--set", setting)
    assert_usage_error(run, *needles)


def test_device_index_out_of_range_in_a_vendor_yaml(tmp_path: Path, smoke_data_dir: Path) -> None:
    extra = _config(tmp_path, "vendor_config/nvidia_configurations.yaml", "device_index: 100000\n")
    run = run_cli(smoke_data_dir, tmp_path / "out", *extra, vendor="nvidia")
    assert_usage_error(run, "nvidia_configurations.yaml", "device_index", "out of range")


# ----------------------------------------------------------------------------------------------- weights


def _weights_case(tmp: Path, base: Path, mutate: Callable[[Path], None]) -> Path:
    data = clone_data(base, tmp / "data", copy_weights=True)
    mutate(data / WEIGHTS)
    return data


def _edit_config(**changes) -> Callable[[Path], None]:
    def mutate(w: Path) -> None:
        cfg = json.loads((w / "config.json").read_text())
        cfg.update(changes)
        (w / "config.json").write_text(json.dumps(cfg))
    return mutate


def _vocab_plus(n: int) -> Callable[[Path], None]:
    def mutate(w: Path) -> None:
        cfg = json.loads((w / "config.json").read_text())
        cfg["vocab_size"] += n
        (w / "config.json").write_text(json.dumps(cfg))
    return mutate


def _extra_shard(w: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(w / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    (w / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {n: "model.safetensors" for n in names}}))
    import torch

    save_file({"model.layers.0.mlp.up_proj.weight": torch.zeros(2, 2)}, str(w / "model-extra.safetensors"))


def _to_fp16_undeclared(w: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(w / "model.safetensors"))
    save_file({k: v.half() for k, v in tensors.items()}, str(w / "model.safetensors"), metadata={"format": "pt"})


def _pickle_payload(marker: Path) -> Callable[[Path], None]:
    class Payload:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    def mutate(w: Path) -> None:
        (w / "model.safetensors").unlink()
        with open(w / "pytorch_model.bin", "wb") as f:
            pickle.dump({"model.embed_tokens.weight": Payload()}, f)
    return mutate


WEIGHT_CASES = {
    "config.json wrong type": (_edit_config(hidden_size="64"), ("config.json", "'hidden_size' is '64'",
                                                                "positive integer")),
    "config.json bool layers": (_edit_config(num_hidden_layers=True), ("'num_hidden_layers' is True",)),
    "config.json unknown dtype": (_edit_config(dtype="float8"), ("'dtype' is 'float8'",)),
    "vocabulary larger than the weights": (_vocab_plus(10), ("do not match config.json's shapes",
                                                             "lm_head.weight is [1057, 64] in the files", "vocab_size")),
    "tokenizer larger than vocab_size": (_vocab_plus(-10), ("the tokenizer has", "vocab_size")),
    "fewer layers declared than held": (_edit_config(num_hidden_layers=1), ("model.layers.1.",
                                                                           "fewer layers")),
    "extra unindexed shard": (_extra_shard, ("model-extra.safetensors", "does not list")),
    "weights in another dtype than declared": (_to_fp16_undeclared, ("model.safetensors", "is F16",
                                                                     "declares dtype float32")),
}


@pytest.mark.parametrize("name", list(WEIGHT_CASES))
def test_bad_weights(tmp_path: Path, smoke_data_dir: Path, name: str) -> None:
    mutate, needles = WEIGHT_CASES[name]
    data = _weights_case(tmp_path, smoke_data_dir, mutate)
    run = run_cli(data, tmp_path / "out", *FAST)
    line = assert_usage_error(run, *needles)
    assert run.result["status"] == "failed" and run.result["error"].split(": ", 1)[1] in line


def test_pickle_weights_with_a_payload_are_refused(tmp_path: Path, smoke_data_dir: Path) -> None:
    marker = tmp_path / "PWNED"
    data = _weights_case(tmp_path, smoke_data_dir, _pickle_payload(marker))
    run = run_cli(data, tmp_path / "out", *FAST)
    assert_usage_error(run, str(data / WEIGHTS / "pytorch_model.bin"), "weights-only loading", "safetensors")
    assert not marker.exists()
    assert "weights-only loading" in (tmp_path / "out" / "run.log").read_text()


# ------------------------------------------------------------------------------------------------ vendors


VENDOR_CODE = {
    "import error": ("import no_such_module_xyz\n", "ModuleNotFoundError"),
    "syntax error": ("def broken(:\n", "SyntaxError"),
    "sys.exit in import": ("import sys\nsys.exit(0)\n", "sys.exit(0)"),
    "raising is_available": ("from vendors.cpu import CpuVendor\n\nclass V(CpuVendor):\n    name = 'bad'\n\n"
                             "    def is_available(self):\n        raise RuntimeError('no driver')\n\nVENDOR = V()\n",
                             "is_available() failed (RuntimeError: no driver)"),
}


@pytest.mark.parametrize("name", list(VENDOR_CODE))
def test_broken_out_of_tree_vendor(tmp_path: Path, smoke_data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                   name: str) -> None:
    code, needle = VENDOR_CODE[name]
    (tmp_path / "vendors" / "bad").mkdir(parents=True)
    (tmp_path / "vendors" / "bad" / "__init__.py").write_text(code)
    case_dir = copy_configs(tmp_path / "configs")
    shutil.copy(case_dir / VENDOR_YAML, case_dir / "vendor_config" / "bad_configurations.yaml")
    monkeypatch.setenv("LLAMA_BENCH_VENDOR_PATH", str(tmp_path / "vendors"))
    monkeypatch.delitem(sys.modules, "llama_bench_vendor_bad", raising=False)
    run = run_cli(smoke_data_dir, tmp_path / "out", "--config_dir", str(tmp_path / "configs"), vendor="bad")
    assert_usage_error(run, "vendor 'bad'", str(tmp_path / "vendors" / "bad"), needle)


# --------------------------------------------------------------------------------------------- smoke cache


def _smoke(tmp: Path, cache: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LLAMA_BENCH_CACHE", str(cache))
    return run_cli(None, tmp / "out", "--smoke", *FAST)


def test_cache_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache").write_text("x")
    assert_usage_error(_smoke(tmp_path, tmp_path / "cache", monkeypatch), f"LLAMA_BENCH_CACHE {tmp_path / 'cache'}",
                       "not a folder")


def test_cache_under_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_usage_error(_smoke(tmp_path, Path("/proc/self/llama"), monkeypatch), "LLAMA_BENCH_CACHE /proc/self/llama",
                       "kernel file system")


def test_cache_on_a_read_only_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):  # what EROFS looks like (root ignores chmod, so chmod cannot show it)
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert_usage_error(_smoke(tmp_path, tmp_path / "ro", monkeypatch), f"LLAMA_BENCH_CACHE {tmp_path / 'ro'}",
                       "Read-only file system", "writable folder")


@pytest.mark.slow
def test_corrupt_smoke_cache_is_rebuilt(tmp_path: Path, smoke_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(smoke_cache / "smoke-v1", cache / "smoke-v1")
    weights = cache / "smoke-v1" / WEIGHTS / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # the marker still says "complete"
    run = _smoke(tmp_path, cache, monkeypatch)
    assert run.code == 0, run.err
    assert weights.stat().st_size > 1000


# --------------------------------------------------------------------------------- data and library warnings


@pytest.mark.slow
def test_a_one_megabyte_question_names_the_file_and_row(tmp_path: Path, smoke_data_dir: Path) -> None:
    data = clone_data(smoke_data_dir, tmp_path / "data")
    path = csv_path(data, "anatomy")
    rows = path.read_text().splitlines()
    rows[1] = '"' + "why " * 250_000 + '?",a,b,c,d,A'
    path.write_text("\n".join(rows) + "\n")
    run = run_cli(data, tmp_path / "out", "--limit", "2")
    line = assert_usage_error(run, str(path), "row 2", "2048 tokens", "shorten that row")
    assert len(line) < 600


def test_library_warnings_of_a_quiet_run_go_to_run_log(tmp_path: Path, smoke_data_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import logging
    import warnings

    from benchmarks.llama2_7b_mmlu import Llama2MMLU

    build = Llama2MMLU.build_model

    def noisy(self, *args, **kwargs):
        logging.getLogger("transformers.modeling_utils").warning("a transformers warning")
        warnings.warn("a torch-style UserWarning", UserWarning)
        return build(self, *args, **kwargs)

    monkeypatch.setattr(Llama2MMLU, "build_model", noisy)
    run = run_cli(smoke_data_dir, tmp_path / "out", *FAST)
    assert run.code == 0 and run.err == "", run.err
    log = (tmp_path / "out" / "run.log").read_text()
    assert "a transformers warning" in log and "a torch-style UserWarning" in log
    # and the loggers are given back afterwards
    assert logging.getLogger("transformers").propagate is True or logging.getLogger("transformers").handlers
