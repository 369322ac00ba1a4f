"""Every user mistake ends in exit 2 and ONE stderr line "error: ..." naming the file/key/value and the fix.

Each case copies the smoke data_dir (or configs/) into tmp, breaks one thing and runs the real CLI
(`benchmarks.cli.main`) in-process with --limit 1 --quiet. Mistakes found inside the run (CSV rows,
tokenizer, weights) also leave result.json with status "failed" and the same message.
"""
from __future__ import annotations

import json
import shutil
import sys
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


# A case: (tmp, base data_dir) -> (data_dir to run on, extra CLI args, strings the error line must contain)
Setup = Callable[[Path, Path], tuple[Path, list[str], list[str]]]


def _data(tmp: Path, base: Path, copy_weights: bool = False) -> Path:
    return clone_data(base, tmp / "data", copy_weights)


def _csv_case(content: bytes | str, needle: str, subject: str = "abstract_algebra", split: str = "test") -> Setup:
    def setup(tmp: Path, base: Path):
        d = _data(tmp, base)
        path = csv_path(d, subject, split)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return d, [], [str(path), needle]
    return setup


def _missing_data_dir(tmp: Path, base: Path):
    return tmp / "nope", [], ["data_dir", str(tmp / "nope"), "does not exist", "--smoke"]


def _empty_data_dir(tmp: Path, base: Path):
    (tmp / "empty").mkdir()
    return tmp / "empty", [], ["weight_dir", str(tmp / "empty" / WEIGHTS), "not found"]


def _missing_mmlu_dir(tmp: Path, base: Path):
    d = _data(tmp, base)
    shutil.rmtree(d / MMLU)
    return d, [], ["mmlu_dir", str(d / MMLU), "not found", "data.tar"]


def _empty_mmlu_dir(tmp: Path, base: Path):
    d = _data(tmp, base)
    shutil.rmtree(d / MMLU)
    (d / MMLU).mkdir()
    return d, [], ["mmlu_dir", str(d / MMLU), "is empty"]


def _empty_weight_dir(tmp: Path, base: Path):
    d = _data(tmp, base)
    (d / WEIGHTS).unlink()
    (d / WEIGHTS).mkdir()
    return d, [], ["weight_dir", str(d / WEIGHTS), "is empty", "convert_llama_weights_to_hf"]


def _missing_subject(tmp: Path, base: Path):
    d = _data(tmp, base)
    csv_path(d, "virology").unlink()
    return d, [], [str(csv_path(d, "virology")), "not found", "data.tar"]


def _weights(mutate: Callable[[Path], None], *needles: str) -> Setup:
    def setup(tmp: Path, base: Path):
        d = _data(tmp, base, copy_weights=True)
        mutate(d / WEIGHTS)
        return d, [], [str(d / WEIGHTS), *needles]
    return setup


def _not_llama(w: Path) -> None:
    cfg = json.loads((w / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (w / "config.json").write_text(json.dumps(cfg))


def _foreign_weights(w: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"transformer.h.0.attn.c_attn.weight": torch.zeros(4, 4)}, str(w / "model.safetensors"))


def _no_letter_tokens(w: Path) -> None:
    # Without the merge "▁"+"A", " A" is two tokens: the answer letters are no longer single tokens.
    tok = json.loads((w / "tokenizer.json").read_text(encoding="utf-8"))
    merges = tok["model"]["merges"]
    tok["model"]["merges"] = [m for m in merges if (m if isinstance(m, list) else m.split(" ")) != ["\u2581", "A"]]
    del tok["model"]["vocab"]["\u2581A"]
    (w / "tokenizer.json").write_text(json.dumps(tok), encoding="utf-8")


def _config_case(mutate: Callable[[Path], None], file: str, *needles: str) -> Setup:
    def setup(tmp: Path, base: Path):
        case_dir = copy_configs(tmp / "configs")
        mutate(case_dir)
        return base, ["--config_dir", str(tmp / "configs")], [str(case_dir / file), *needles]
    return setup


def _append(file: str, text: str) -> Callable[[Path], None]:
    def mutate(case_dir: Path) -> None:
        with open(case_dir / file, "a", encoding="utf-8") as f:
            f.write(text)
    return mutate


def _replace(file: str, old: str, new: str) -> Callable[[Path], None]:
    def mutate(case_dir: Path) -> None:
        text = (case_dir / file).read_text(encoding="utf-8")
        assert old in text
        (case_dir / file).write_text(text.replace(old, new), encoding="utf-8")
    return mutate


def _args(*extra: str, needles: tuple[str, ...]) -> Setup:
    return lambda tmp, base: (base, list(extra), list(needles))


def _unwritable_output(tmp: Path, base: Path):
    (tmp / "a_file").write_text("x")
    target = tmp / "a_file" / "out"
    return base, ["--output_dir", str(target)], ["output_dir", str(target), "not writable", "--output_dir"]


VENDOR_YAML = "vendor_config/cpu_configurations.yaml"

CASES: dict[str, Setup] = {
    # data_dir, mmlu_dir, weight_dir
    "missing data_dir": _missing_data_dir,
    "empty data_dir": _empty_data_dir,
    "missing mmlu_dir": _missing_mmlu_dir,
    "empty mmlu_dir": _empty_mmlu_dir,
    "empty weight_dir": _empty_weight_dir,
    # the MMLU CSVs
    "missing subject file": _missing_subject,
    "5 columns": _csv_case("q,a,b,c,A\nq,a,b,c,B\n", "has 5 columns, expected 6"),
    "7 columns": _csv_case("q,a,b,c,d,A,x\n", "has 7 columns, expected 6"),
    "ragged row": _csv_case("q,a,b,c,d,A\nq,a,b,c,d,A,extra\n", "Expected 6 fields in line 2"),
    "empty question": _csv_case("q,a,b,c,d,A\n,a,b,c,d,B\n", "row 2 has an empty question"),
    "answer outside A-D": _csv_case("q,a,b,c,d,A\nq,a,b,c,d,E\n", "row 2 has answer 'E'"),
    "fewer dev rows than few_shots": _csv_case("q,a,b,c,d,A\n", "fewer than few_shots = 5", split="dev"),
    "undecodable CSV": _csv_case(b"q\xff\xfe,a,b,c,d,A\n", "not valid UTF-8"),
    "NUL bytes in CSV": _csv_case(b"q\x00q,a,b,c,d,A\n", "NUL bytes"),
    "empty CSV": _csv_case("", "file is empty"),
    # weights and tokenizer
    "not a Llama model": _weights(_not_llama, "config.json", "model_type is 'gpt2'", "expected 'llama'"),
    "config.json does not parse": _weights(lambda w: (w / "config.json").write_text("{not json"),
                                           "config.json", "not valid JSON"),
    "garbage weight file": _weights(lambda w: (w / "model.safetensors").write_bytes(b"garbage" * 9),
                                    "cannot load the weights"),
    "weights of another model": _weights(_foreign_weights, "lack", "lm_head.weight", "synthetic_weights"),
    "tokenizer without letter tokens": _weights(_no_letter_tokens, "'A' encodes to", "single-token answer letters"),
    "tokenizer.json garbage": _weights(lambda w: (w / "tokenizer.json").write_text('{"a": 1}'),
                                       "cannot load the tokenizer"),
    # names
    "unknown case": _args("--case", "nope", needles=("unknown case 'nope'", "llama2_7b_mmlu")),
    "unknown vendor": _args("--vendor", "nope", needles=("unknown vendor 'nope'", "known vendors", "cpu")),
    "unknown toolkit": _args("--set", "compiler=nope", needles=("no toolkit 'nope'", "compiler", "none")),
    # config files
    "unknown key": _config_case(_append("configurations.yaml", "dynamo_wamrup_iters: 5\n"), "configurations.yaml",
                                "unknown key 'dynamo_wamrup_iters'", "known keys"),
    "duplicate key": _config_case(_append("configurations.yaml", "log_freq: 5\n"), "configurations.yaml",
                                  "key 'log_freq' appears twice"),
    "mistyped value": _config_case(_replace("parameters.yaml", "few_shots: 5", "few_shots: five"), "parameters.yaml",
                                   "few_shots", "expected int"),
    "flops refused in YAML": _config_case(_replace("configurations.yaml", '"2*7e9"', '"2**7e9"'),
                                          "configurations.yaml", "flops", "cannot parse '2**7e9'", "2*7e9"),
    "vendor sets a case key": _config_case(_append(VENDOR_YAML, "few_shots: 1\n"), VENDOR_YAML,
                                           "few_shots", "may not be set by a vendor"),
    "path escape in YAML": _config_case(_replace("parameters.yaml", '"mmlu_dataset/data"', '"../mmlu"'),
                                        "parameters.yaml", "mmlu_dir", "leaves data_dir"),
    "required key missing": _config_case(_replace("parameters.yaml", "few_shots: 5", ""), "parameters.yaml",
                                         "few_shots", "required"),
    "config not a mapping": _config_case(lambda c: (c / "configurations.yaml").write_text("- a\n- b\n"),
                                         "configurations.yaml", "expected a mapping"),
    "undecodable YAML": _config_case(lambda c: (c / "parameters.yaml").write_bytes(b"few_shots: \xff\n"),
                                     "parameters.yaml", "not valid YAML"),
    # --set and other options
    "--set without =": _args("--set", "precision", needles=("--set 'precision'", "key=value")),
    "--set unknown key": _args("--set", "presicion=bf16", needles=("unknown key 'presicion'", "precision")),
    "--set mistyped": _args("--set", "few_shots=five", needles=("few_shots", "expects int", "five")),
    "--set bad value": _args("--set", "precision=int4", needles=("precision", "int4", "fp16, bf16, fp32, fp8")),
    "--set flops refused": _args("--set", "flops=__import__('os')", needles=("flops", "cannot parse", "2*7e9")),
    "--set path escape": _args("--set", "weight_dir=../../etc", needles=("weight_dir", "leaves data_dir")),
    "--set control chars": _args("--set", "mmlu_dir=a\x00b", needles=("mmlu_dir", "control characters")),
    "--limit 0": _args("--limit", "0", needles=("--limit 0", "positive")),
    "--limit not a number": _args("--limit", "x", needles=("--limit", "invalid int value: 'x'", "--help")),
    "--repeat 0": _args("--repeat", "0", needles=("--repeat 0", "positive")),
    "unwritable output_dir": _unwritable_output,
}

# Mistakes found after the run started: result.json records them (status "failed", the same message).
FOUND_IN_RUN = {"missing subject file", "5 columns", "7 columns", "ragged row", "empty question",
                "answer outside A-D", "fewer dev rows than few_shots", "undecodable CSV", "NUL bytes in CSV",
                "empty CSV", "not a Llama model", "config.json does not parse", "garbage weight file",
                "weights of another model", "tokenizer without letter tokens", "tokenizer.json garbage"}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2(name: str, tmp_path: Path, smoke_data_dir: Path) -> None:
    data_dir, extra, needles = CASES[name](tmp_path, smoke_data_dir)
    run = run_cli(data_dir, tmp_path / "out", *extra)
    line = assert_usage_error(run, *needles)
    if name in FOUND_IN_RUN:
        result = run.result
        assert result["status"] == "failed"
        assert result["error"].startswith("BenchmarkError: ")
        assert result["error"][len("BenchmarkError: "):] in line
        assert "status failed recorded in" in line


def test_python_yaml_tag_is_refused_and_not_run(tmp_path: Path, smoke_data_dir: Path) -> None:
    case_dir = copy_configs(tmp_path / "configs")
    marker = tmp_path / "pwned"
    with open(case_dir / "configurations.yaml", "a", encoding="utf-8") as f:
        f.write(f"seed: !!python/object/apply:os.system ['touch {marker}']\n")
    run = run_cli(smoke_data_dir, tmp_path / "out", "--config_dir", str(tmp_path / "configs"))
    assert_usage_error(run, str(case_dir / "configurations.yaml"), "python/object/apply")
    assert not marker.exists()


def test_unsupported_precision(tmp_path: Path, smoke_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vendors.cpu import CpuVendor

    monkeypatch.setattr(CpuVendor, "supports", lambda self, precision: precision != "bf16")
    run = run_cli(smoke_data_dir, tmp_path / "out", "--set", "precision=bf16")
    assert_usage_error(run, "precision", "cannot run bf16", "--set precision=")


def test_explicit_absolute_path_may_leave_data_dir(tmp_path: Path, smoke_data_dir: Path) -> None:
    """Paths from configs stay inside data_dir unless absolute: an explicit absolute mmlu_dir is honoured."""
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(smoke_data_dir / MMLU, elsewhere)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / WEIGHTS).symlink_to(smoke_data_dir / WEIGHTS, target_is_directory=True)
    (data_dir / "mmlu_dataset").mkdir()  # the relative default would be empty: only the --set path works
    (data_dir / "mmlu_dataset" / "placeholder").write_text("")
    run = run_cli(data_dir, tmp_path / "out", "--set", f"mmlu_dir={elsewhere}", "--set", "no_validation=true")
    assert run.code == 0, run.err
    assert run.result["config"]["mmlu_dir"] == str(elsewhere)
