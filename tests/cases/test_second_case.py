"""The case seam, end to end: the test-only case tests/cases/parity (a hand-written model on made-up bit
strings, sharing nothing with Llama or MMLU) runs through the real CLI with no harness code of its own."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fault_helpers import cli
from parity import write_data


def run(data_dir: Path, out: Path, *extra: str) -> tuple[int, dict, str]:
    code, _, err = cli(["--case", "parity", "--vendor", "cpu", "--data_dir", str(data_dir), "--output_dir", str(out),
                        "--quiet", *extra])
    result = json.loads((out / "result.json").read_text()) if (out / "result.json").exists() else {}
    return code, result, err


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_data(tmp_path_factory.mktemp("parity"))


def test_the_parity_case_with_its_true_weights_is_valid_and_right_on_every_question(data_dir, tmp_path) -> None:
    code, r, err = run(data_dir, tmp_path / "out")
    assert code == 0, err
    assert r["case"] == "parity" and r["verdict"]["status"] == "VALID", r["verdict"]
    assert r["metrics"]["infer_acc"] == r["metrics"]["val_acc"] == 1.0
    assert r["counts"] == {"questions": 18, "tokens": r["counts"]["tokens"], "longest_bits": r["counts"]["longest_bits"]}
    assert set(r["accuracy"]["by_category"]) == {"easy", "hard"} and r["accuracy"]["by_category"]["hard"]["questions"] == 6
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [row["subject"] for row in rows[:6]] == ["short"] * 6 and all(row["pred_infer"] == row["label"] for row in rows)


def test_its_named_optimization_packs_forwards_and_is_checked_against_validation(data_dir, tmp_path) -> None:
    code, r, err = run(data_dir, tmp_path / "out", "--set", "parity_pack=64")
    assert code == 0, err
    assert r["optimizations"] == ["parity_pack"] and r["verdict"]["status"] == "VALID"
    assert r["packing"]["pack_tokens"] == 64 and r["packing"]["forwards"] < 18
    assert r["packing"]["same_predictions_as_validation"] == 1.0
    code, _, err = run(data_dir, tmp_path / "bad", "--set", "parity_pack=-1")
    assert code == 2 and "'parity_pack'" in err and len(err.strip().splitlines()) == 1


def test_wrong_weights_fall_outside_the_reference_accuracy_and_are_invalid(tmp_path) -> None:
    wrong = {"weight": torch.zeros(8, 2), "bias": torch.zeros(8)}
    wrong["weight"][2, 1] = wrong["weight"][3, 0] = 4.0  # even and odd swapped
    code, r, err = run(write_data(tmp_path / "data", weights=wrong), tmp_path / "out")
    assert code == 0, err
    assert r["metrics"]["infer_acc"] == 0.0 and r["verdict"]["status"] == "INVALID"
    assert any("outside the reference 1.0" in reason for reason in r["verdict"]["reasons"])


def test_a_case_name_the_registry_does_not_know_lists_the_known_ones(tmp_path) -> None:
    code, _, err = cli(["--case", "parityy", "--output_dir", str(tmp_path)])
    assert code == 2 and "unknown case 'parityy'" in err and "llama2_7b_mmlu" in err and "parity" in err
