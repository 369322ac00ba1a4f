"""End-to-end runs of the command line (`benchmarks.cli.main`) on the tiny smoke model, on the CPU.

One default --smoke run (eager, all 228 smoke questions), one torch.compile (inductor) run and one run on a
copy of the smoke data through --data_dir (both --limit 1), and the exits for missing data. The smoke data
is generated once into a temporary $LLAMA_BENCH_CACHE for the whole session.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reporting import markdown
from benchmarks.reporting.record import SCHEMA_VERSION
from benchmarks.llama2_7b_mmlu.smoke import SUBJECTS

N_SUBJECTS = 57
SMOKE_TEST_ROWS = 4  # make_smoke_data's default n_test
REFERENCE_METRICS = ("e2e_time", "p_val_whole", "p_val_core", "p_infer_whole", "p_infer_core", "mfu",
                     "val_acc", "infer_acc", "mem_used_gib", "mem_total_gib", "compile_time")
PREDICTION_KEYS = {"subject", "index", "n_tokens", "label", "pred_val", "pred_infer", "choice_val", "choice_infer"}
TIMED_PHASES = ("init", "val_warmup", "validation", "compile", "inference")
EPS = 1e-6


from fault_helpers import CliRun, cli  # noqa: E402  (the one in-process CLI runner of the tests)


def run_quiet(argv: list[str], output_dir: Path) -> CliRun:
    return CliRun(*cli([*argv, "--output_dir", str(output_dir), "--quiet"]), output_dir)


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("llama_bench_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLAMA_BENCH_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session")
def smoke_run(bench_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    return run_quiet(["--smoke"], tmp_path_factory.mktemp("smoke_out") / "out")


@pytest.fixture(scope="session")
def inductor_run(smoke_run: CliRun, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    return run_quiet(["--smoke", "--set", "compiler=inductor", "--limit", "1"],
                     tmp_path_factory.mktemp("inductor_out") / "out")


@pytest.fixture(scope="session")
def smoke_data_copy(smoke_run: CliRun, bench_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = bench_cache / "smoke-v1"
    assert (src / "llama2_7b_hf").is_dir() and (src / "mmlu_dataset" / "data").is_dir()
    dst = tmp_path_factory.mktemp("data_copy") / "data"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock", ".complete-*"))
    return dst


@pytest.fixture(scope="session")
def data_dir_run(smoke_data_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    return run_quiet(["--vendor", "cpu", "--data_dir", str(smoke_data_copy), "--limit", "1"],
                     tmp_path_factory.mktemp("data_dir_out") / "out")


# ------------------------------------------------------------------------------------------- checks


def check_complete(run: CliRun, questions: int, toolkit: str) -> dict[str, Any]:
    assert run.code == 0, run.err
    for name in ("result.json", "result.md", "predictions.jsonl", "run.log"):
        assert (run.output_dir / name).is_file(), name
    r = run.result
    assert r["status"] == "completed"
    assert r["schema_version"] == SCHEMA_VERSION
    assert r["case"] == "llama2_7b_mmlu" and r["vendor"] == "cpu" and r["toolkit"] == toolkit
    assert r["precision"] == "fp32" and r["batch_size"] == 1
    done = [ph for ph in r["phases_done"] if ph in ("init", "validation", "compile", "inference")]
    assert done[:3] == ["init", "validation", "compile"] and set(done) <= {*done[:3], "inference"}
    m = r["metrics"]
    for key in REFERENCE_METRICS:
        assert key in m, key
    for key in ("e2e_time", "p_val_whole", "p_val_core", "p_infer_whole", "p_infer_core", "compile_time",
                "mem_used_gib", "mem_total_gib"):
        assert isinstance(m[key], float) and m[key] > 0, key
    assert 0.0 <= m["val_acc"] <= 1.0 and 0.0 <= m["infer_acc"] <= 1.0
    # No peak FLOP/s is known for a CPU: MFU is null and says why.
    assert m["mfu"] is None and m["mfu_reason"] and "peak" in m["mfu_reason"]
    assert r["peak_flops"]["value"] is None
    assert m["mem_used_gib"] <= m["mem_total_gib"]

    # Counts: one prediction line per question; tokens are the sum of the prompts' lengths.
    preds = run.predictions
    assert r["counts"]["questions"] == questions == len(preds)
    for row in preds:
        assert set(row) == PREDICTION_KEYS
        assert row["subject"] in SUBJECTS
        assert isinstance(row["n_tokens"], int) and row["n_tokens"] > 0
        assert isinstance(row["pred_val"], int) and isinstance(row["pred_infer"], int)
        assert row["label"] in r["counts"]["letter_ids"].values()
        assert row["choice_val"] in r["counts"]["letter_ids"].values()
    assert len({(row["subject"], row["index"]) for row in preds}) == questions
    tokens = sum(row["n_tokens"] for row in preds)
    assert r["counts"]["tokens"] == tokens

    # Accuracy is recomputed exactly from the predictions file.
    assert m["val_acc"] == sum(p["pred_val"] == p["label"] for p in preds) / questions
    assert m["infer_acc"] == sum(p["pred_infer"] == p["label"] for p in preds) / questions

    # Timings add up: core <= the pass's span; whole <= the pass's span; e2e covers every phase.
    phases = r["phases_s"]
    for name in TIMED_PHASES:
        assert phases[name] >= 0, name
    assert tokens / m["p_val_core"] <= phases["validation"] + EPS
    assert tokens / m["p_val_pass"] <= phases["validation"] + EPS
    assert tokens / m["p_infer_core"] <= phases["inference"] + EPS
    assert tokens / m["p_infer_pass"] <= phases["inference"] + EPS
    # whole = the pass plus what the reference counts with it: the validation warm-up; compile and warm-up.
    assert tokens / m["p_val_whole"] == pytest.approx(tokens / m["p_val_pass"] + phases["val_warmup"], rel=1e-9)
    assert tokens / m["p_infer_whole"] == pytest.approx(tokens / m["p_infer_pass"] + phases["compile"], rel=1e-9)
    assert m["p_val_whole"] <= m["p_val_pass"] <= m["p_val_core"]
    assert m["p_infer_whole"] <= m["p_infer_pass"] <= m["p_infer_core"]
    assert m["e2e_time"] >= sum(phases[name] for name in TIMED_PHASES) - EPS
    assert m["compile_time"] == phases["compile"] and m["val_warmup_time"] == phases["val_warmup"]

    # result.md holds the reference table with this run's row.
    md = (run.output_dir / "result.md").read_text(encoding="utf-8")
    row = markdown.table_row(r)
    assert markdown.TABLE_HEADER in md and row in md
    assert row.startswith(f"| {toolkit} | fp32+tf32 | ") and row.count(" | ") == 9
    assert str(run.output_dir) in run.out  # the summary says where the results are
    assert r["verdict"]["status"] == "INVALID"  # a smoke-sized run is never a valid benchmark result
    return r


# -------------------------------------------------------------------------------------------- tests


def test_default_smoke_run(smoke_run: CliRun) -> None:
    r = check_complete(smoke_run, N_SUBJECTS * SMOKE_TEST_ROWS, toolkit="none")
    assert r["counts"]["questions"] == 228
    assert r["smoke"] is True and r["limit"] is None
    assert r["config"]["compiler"] == "none" and r["config_sources"]["compiler"].endswith("cpu_configurations.yaml")
    assert r["toolkit_report"]["name"] == "none" and r["toolkit_report"]["recompiles"] == 0
    # Toolkit none runs the same model in both passes: identical predictions, accuracy, agreement.
    preds = smoke_run.predictions
    assert all(p["pred_val"] == p["pred_infer"] for p in preds)
    assert all(p["choice_val"] == p["choice_infer"] for p in preds)
    assert r["metrics"]["val_acc"] == r["metrics"]["infer_acc"]
    assert r["metrics"]["agreement"] == 1.0
    assert r["nonfinite_questions"] == {"validation": 0, "inference": 0}
    assert any("smoke" in reason for reason in r["verdict"]["reasons"])
    # Every subject gets its n_test questions, in order.
    by_subject: dict[str, list[int]] = {}
    for p in preds:
        by_subject.setdefault(p["subject"], []).append(p["index"])
    assert sorted(by_subject) == sorted(SUBJECTS)
    assert all(len(v) == SMOKE_TEST_ROWS for v in by_subject.values())
    log_text = (smoke_run.output_dir / "run.log").read_text(encoding="utf-8")
    assert "validation: 228/228 questions" in log_text and "inference: 228/228 questions" in log_text


@pytest.mark.slow
def test_inductor_run(inductor_run: CliRun) -> None:
    r = check_complete(inductor_run, N_SUBJECTS, toolkit="inductor")
    assert r["limit"] == 1 and r["config_sources"]["compiler"] == "--set"
    tk = r["toolkit_report"]
    assert tk["name"] == "inductor" and tk["compile_fallback"] is None
    assert tk["recompiles"] == 0
    assert tk["details"]["warmed_shapes"] == len({p["n_tokens"] for p in inductor_run.predictions})
    assert r["metrics"]["compile_time"] > 0
    # The compiled model computes the same function: the scored answers agree (fp32, tiny model).
    assert r["metrics"]["agreement"] >= 0.9
    assert any("--limit 1" in reason for reason in r["verdict"]["reasons"])


@pytest.mark.slow
def test_inductor_limit_rows_match_the_full_run(inductor_run: CliRun, smoke_run: CliRun) -> None:
    """--limit 1 takes the first question of every subject: the same prompts as the full run's index-0 rows."""
    full = {(p["subject"], p["index"]): p for p in smoke_run.predictions}
    for p in inductor_run.predictions:
        ref = full[(p["subject"], p["index"])]
        assert (p["n_tokens"], p["label"], p["pred_val"]) == (ref["n_tokens"], ref["label"], ref["pred_val"])


def test_data_dir_run_on_a_copy_of_the_smoke_data(data_dir_run: CliRun, smoke_run: CliRun) -> None:
    r = check_complete(data_dir_run, N_SUBJECTS, toolkit="none")
    assert r["smoke"] is False and r["limit"] == 1
    assert not any("smoke" in reason for reason in r["verdict"]["reasons"])
    assert r["fingerprint"] == smoke_run.result["fingerprint"]  # same files, same fingerprints
    full = {(p["subject"], p["index"]): p for p in smoke_run.predictions}
    for p in data_dir_run.predictions:
        assert p == full[(p["subject"], p["index"])]


def test_missing_data_exits_2_naming_the_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty_data"
    empty.mkdir()
    out = tmp_path / "out"
    code, _, err = cli(["--vendor", "cpu", "--data_dir", str(empty), "--output_dir", str(out), "--quiet"])
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(empty / "llama2_7b_hf") in err and "--smoke" in err
    assert not (out / "result.json").exists()


def test_missing_mmlu_exits_2_naming_the_path(smoke_data_copy: Path, tmp_path: Path) -> None:
    data = tmp_path / "weights_only"
    data.mkdir()
    (data / "llama2_7b_hf").symlink_to(smoke_data_copy / "llama2_7b_hf", target_is_directory=True)
    code, _, err = cli(["--vendor", "cpu", "--data_dir", str(data), "--output_dir", str(tmp_path / "out"), "--quiet"])
    assert code == 2
    assert str(data / "mmlu_dataset" / "data") in err and "--smoke" in err


def test_nonexistent_data_dir_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    code, _, err = cli(["--vendor", "cpu", "--data_dir", str(missing), "--output_dir", str(tmp_path / "out")])
    assert code == 2 and str(missing) in err and "--smoke" in err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--smoke", "--set", "nosuchkey=1"], "unknown key 'nosuchkey'"),
        (["--smoke", "--set", "batch_size=abc"], "'batch_size' expects int"),
        (["--smoke", "--limit", "0"], "--limit 0"),
        (["--smoke", "--vendor", "nosuchvendor"], "unknown vendor 'nosuchvendor'"),
        (["--case", "nosuchcase", "--smoke"], "unknown case 'nosuchcase'"),
        (["--smoke", "--set", "compiler=tensorrt"], "no toolkit 'tensorrt'"),
        (["--smoke", "--bogus"], "--bogus"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], needle: str, bench_cache: Path, tmp_path: Path) -> None:
    code, _, err = cli([*argv, "--output_dir", str(tmp_path / "out"), "--quiet"])
    assert code == 2, err
    assert needle in err and err.startswith("error: ") and err.count("\n") == 1
