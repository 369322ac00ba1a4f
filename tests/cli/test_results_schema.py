"""result.json against its documentation (docs/results_schema.md), the accuracy detail, result.csv, git provenance.

Every row of the documented tables is checked against a real `--smoke` run of the CLI: the field exists and
has the documented JSON type. The accuracy report is checked for consistency with the predictions file.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmarks.measure import metrics, provenance
from benchmarks.reporting.history import CSV_COLUMNS
from benchmarks.llama2_7b_mmlu import CASE
from benchmarks.llama2_7b_mmlu.categories import SUBJECT_CATEGORY
from benchmarks.llama2_7b_mmlu.data import SUBJECTS
from results_support import (PNG_MAGIC, SCHEMA_DOC, check_type, doc_tables, packed_run, read_csv, run_smoke, shared_runs,
                             telemetry_run, values_at)

REPO_ROOT = Path(__file__).resolve().parents[2]
BLOCK_KEYS = {"questions"} | {f"{p}_{k}" for p in ("val", "infer")
                              for k in ("correct", "acc", "choice_correct", "choice_acc")}


@pytest.fixture(scope="module")
def runs(smoke_cache: Path):
    runs = shared_runs(smoke_cache)
    assert runs.a.code == 0, runs.a.err
    assert runs.b.code == 1, runs.b.err
    return runs


@pytest.fixture(scope="module")
def result(runs) -> dict[str, Any]:
    return runs.a.result


def documented() -> list[dict[str, str]]:
    rows = doc_tables(SCHEMA_DOC, "field")
    assert len(rows) > 100
    return rows


def test_documented_fields_exist_with_their_types(runs, result, smoke_cache: Path) -> None:
    checked = Counter()
    for row in documented():
        present = row["present"]
        if present in ("always", "init", "completed"):
            target = result
        elif present == "baseline":
            target = runs.b.result
        elif present == "packing":
            target = packed_run(smoke_cache).result
        elif present == "telemetry":  # the cpu vendor has none: the test vendor with NVML on a scripted fake
            target = telemetry_run(smoke_cache).result
        else:  # failed: test_failed_run_fields; repeat (--repeat N): not run here, it costs N passes
            assert present in ("failed", "repeat", "distributed", "distributed-completed", "distributed-failed"), row
            continue
        for value in values_at(target, row["field"]):
            check_type(row["field"], value, row["type"])
        checked[present] += 1
    assert checked["always"] >= 20 and checked["completed"] >= 50 and checked["baseline"] >= 8
    assert checked["packing"] >= 6 and checked["telemetry"] >= 25


def test_failed_run_fields(smoke_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.harness.run

    def boom(name, *args, **kwargs):
        raise RuntimeError(f"injected failure in the {name} pass")

    monkeypatch.setattr(benchmarks.harness.run, "run_pass", boom)
    run = run_smoke(smoke_cache, tmp_path / "failed", "--set", "warmup_longest=false")
    assert run.code == 3
    r = run.result
    assert r["status"] == "failed" and "injected failure in the validation pass" in r["error"]
    for row in documented():
        if row["present"] in ("always", "init", "failed"):
            for value in values_at(r, row["field"]):
                check_type(row["field"], value, row["type"])


def test_top_level_and_metric_keys_are_all_documented(result, runs) -> None:
    fields = {row["field"] for row in documented()}
    top = {k: v for k, v in runs.b.result.items() if k != "repeat"}  # only with --repeat N
    for prefix, obj in [("", top), ("metrics.", result["metrics"]), ("accuracy.", result["accuracy"]),
                        ("accuracy.agreement.", result["accuracy"]["agreement"]),
                        ("gate.", runs.b.result["gate"]), ("verdict.", result["verdict"]),
                        ("peak_flops.", result["peak_flops"]),
                        ("throughput_by_length.", result["throughput_by_length"])]:
        missing = [prefix + k for k in obj if prefix + k not in fields]
        assert not missing, f"undocumented fields: {missing}"
    assert set(runs.b.result["gate"]["rows"][0]) == {f.split(".")[-1] for f in fields if f.startswith("gate.rows.*.")}


def test_header_essentials(result) -> None:
    env = result["environment"]
    assert result["schema_version"] == 3 and result["status"] == "completed"
    assert (result["case"], result["vendor"], result["toolkit"], result["precision"]) == \
        ("llama2_7b_mmlu", "cpu", "none", "fp32")
    assert result["tf32"] is True and result["batch_size"] == 1 and result["limit"] == 2
    assert result["config"]["few_shots"] == 0 and result["config_sources"]["few_shots"] == "--set"
    assert env["command_line"][:2] == ["run_benchmark.py", "--smoke"]
    assert env["device_count"] == 1 and env["driver"] is None and env["cuda"] is None
    assert result["peak_flops"] == {"value": None, "source": result["metrics"]["mfu_reason"]}
    assert result["verdict"]["status"] == "INVALID"
    assert "smoke run on a tiny generated model and data" in result["verdict"]["reasons"]


def test_git_provenance(result, tmp_path: Path) -> None:
    env = result["environment"]
    if (REPO_ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", env["git_commit"]) and isinstance(env["git_dirty"], bool)
        assert provenance.git_state(REPO_ROOT)["git_commit"] == env["git_commit"]
    assert provenance.git_state(tmp_path) == {"git_commit": None, "git_dirty": None}


def test_case_exposes_the_mmlu_categories() -> None:
    assert CASE.categories is SUBJECT_CATEGORY
    assert set(SUBJECT_CATEGORY) == set(SUBJECTS)
    assert Counter(SUBJECT_CATEGORY.values()) == {"STEM": 18, "humanities": 13, "social sciences": 12, "other": 14}
    assert (SUBJECT_CATEGORY["anatomy"], SUBJECT_CATEGORY["formal_logic"], SUBJECT_CATEGORY["econometrics"],
            SUBJECT_CATEGORY["astronomy"]) == ("other", "humanities", "social sciences", "STEM")


def test_accuracy_detail_adds_up(runs, result) -> None:
    acc, m, preds = result["accuracy"], result["metrics"], runs.a.predictions
    n = result["counts"]["questions"]
    assert n == len(preds) == 57 * 2 == acc["overall"]["questions"]
    subjects, categories = acc["by_subject"], acc["by_category"]
    assert set(subjects) == set(SUBJECTS) and acc["uncategorized_subjects"] == []
    assert all(b["questions"] == 2 and b["category"] == SUBJECT_CATEGORY[s] for s, b in subjects.items())
    assert sum(b["questions"] for b in subjects.values()) == n
    assert list(categories) == ["STEM", "humanities", "social sciences", "other"]
    assert sum(b["subjects"] for b in categories.values()) == 57
    for block in [acc["overall"], *categories.values(), *subjects.values()]:
        assert BLOCK_KEYS <= set(block)
    for cat, block in categories.items():
        members = [b for b in subjects.values() if b["category"] == cat]
        assert block["subjects"] == len(members)
        assert block["questions"] == sum(b["questions"] for b in members)
        for p in ("val", "infer"):
            for kind in ("", "choice_"):
                correct = sum(b[f"{p}_{kind}correct"] for b in members)
                assert block[f"{p}_{kind}correct"] == correct
                assert block[f"{p}_{kind}acc"] == pytest.approx(correct / block["questions"])
    for p in ("val", "infer"):
        assert acc["overall"][f"{p}_acc"] == pytest.approx(m[f"{p}_acc"])
        assert acc["overall"][f"{p}_correct"] == sum(r[f"pred_{p}"] == r["label"] for r in preds)
        assert acc["overall"][f"{p}_choice_correct"] == sum(r[f"choice_{p}"] == r["label"] for r in preds)
        assert sum(b[f"{p}_choice_correct"] for b in subjects.values()) == acc["overall"][f"{p}_choice_correct"]
    # the tiny random model answers some questions right when restricted to the letters
    assert 0 < acc["overall"]["infer_choice_correct"] < n
    assert acc["agreement"]["pred"] == pytest.approx(m["agreement"])
    assert acc["agreement"]["choice_differing"] == sum(r["choice_val"] != r["choice_infer"] for r in preds)
    # the same report, recomputed from predictions.jsonl alone
    assert metrics.accuracy_from_rows(preds, CASE.categories) == acc


def test_accuracy_detail_unit() -> None:
    rec = metrics.PassPredictions
    d = metrics.accuracy_detail(["x", "x", "y", "z"], [1, 2, 3, 4],
                        {"val": rec([1, 2, 0, 0], [1, 2, 3, 0]), "infer": rec([1, 0, 0, 0], None)},
                        {"x": "A", "y": "B"})
    assert d["overall"]["val_correct"] == 2 and d["overall"]["val_choice_acc"] == 0.75
    assert d["overall"]["infer_acc"] == 0.25 and d["overall"]["infer_choice_acc"] is None
    assert d["by_category"]["A"] == {"subjects": 1, "questions": 2, "val_correct": 2, "val_acc": 1.0,
                                     "val_choice_correct": 2, "val_choice_acc": 1.0, "infer_correct": 1,
                                     "infer_acc": 0.5, "infer_choice_correct": None, "infer_choice_acc": None}
    assert d["uncategorized_subjects"] == ["z"] and d["by_subject"]["z"]["category"] is None
    assert d["agreement"] == {"pred": 0.75, "pred_differing": 1, "choice": None, "choice_differing": None}
    none = metrics.accuracy_detail(["x"], [1], {"val": None, "infer": rec([1])})
    assert none["overall"]["val_acc"] is None and none["agreement"]["pred"] is None and none["by_category"] == {}


def test_result_csv_one_row_with_documented_columns(runs, result) -> None:
    header, rows = read_csv(runs.a.output_dir / "result.csv")
    assert tuple(header) == CSV_COLUMNS
    assert [r["column"] for r in doc_tables(SCHEMA_DOC, "column")] == list(CSV_COLUMNS)
    assert len(rows) == 1
    row = rows[0]
    assert float(row["p_infer_core"]) == result["metrics"]["p_infer_core"]
    assert float(row["infer_choice_acc"]) == result["accuracy"]["overall"]["infer_choice_acc"]
    assert (row["case"], row["verdict"], row["gate"], row["mfu"], row["smoke"]) == \
        ("llama2_7b_mmlu", "INVALID", "", "", "true")
    assert int(row["questions"]) == 114 and row["start_time"] == result["start_time"]
    assert row["git_commit"] == (result["environment"]["git_commit"] or "")
    assert row["result_dir"] == str(runs.a.output_dir)


def test_result_md_and_summary(runs, result) -> None:
    md = (runs.a.output_dir / "result.md").read_text(encoding="utf-8")
    assert "| category | subjects | questions |" in md and "| social sciences | 12 | 24 |" in md
    out = runs.a.out
    assert "verdict: INVALID" in out and "accuracy by category" in out
    for name in ("result.json", "result.md", "result.csv", "predictions.jsonl", "throughput_vs_length.png"):
        assert str(runs.a.output_dir / name) in out
    assert runs.a.err == ""  # --quiet: nothing but the summary (on stdout)


def test_throughput_vs_length(runs, result) -> None:
    png = runs.a.output_dir / "throughput_vs_length.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 1000
    t = result["throughput_by_length"]
    assert t["bin_tokens"] == 64 and sum(t["questions"]) == result["counts"]["questions"]
    assert set(t["tokens_per_s"]) == {"validation", "inference"}
    assert all(len(v) == len(t["bin_start"]) and all(x > 0 for x in v) for v in t["tokens_per_s"].values())
    lengths = [r["n_tokens"] for r in runs.a.predictions]
    assert [lo // 64 for lo in t["bin_start"]] == sorted({n // 64 for n in lengths})
