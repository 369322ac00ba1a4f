"""Reproducibility: --repeat N reports the throughputs' spread; the config hash and the data fingerprint
prove two results measure the same thing."""
from __future__ import annotations

import hashlib
import statistics
import sys
from pathlib import Path

import pytest

from fault_helpers import REPO_ROOT, one_torch_thread, run_cli  # noqa: E402

from benchmarks.measure import metrics, provenance  # noqa: E402
from benchmarks.config import load_config  # noqa: E402
from benchmarks.llama2_7b_mmlu import CASE  # noqa: E402
from vendors.cpu import CpuOptions  # noqa: E402


from fault_helpers import one_thread_per_module, smoke_cache_env  # noqa: E402,F401  (autouse fixtures)


@pytest.fixture(scope="module")
def repeated(tmp_path_factory: pytest.TempPathFactory, smoke_data_dir: Path):
    with one_torch_thread():
        return run_cli(smoke_data_dir, tmp_path_factory.mktemp("repeat") / "out", "--repeat", "3")


def test_repeat_reports_the_spread(repeated) -> None:
    assert repeated.code == 0, repeated.err
    result = repeated.result
    rep = result["repeat"]
    assert (rep["requested"], rep["completed"], len(rep["runs"])) == (3, 3, 3)
    assert [r["run"] for r in rep["runs"]] == [1, 2, 3]
    assert result["phases_done"] == ["init", "validation", "compile", "inference", "repeat_2", "repeat_3"]
    assert result["config"]["repeat"] == 1  # the reference's config key is untouched by --repeat
    for key in metrics.THROUGHPUTS:
        values = [r[key] for r in rep["runs"]]
        assert all(v > 0 for v in values)
        s = rep["spread"][key]
        assert s["min"] == min(values) and s["max"] == max(values)
        assert s["median"] == pytest.approx(statistics.median(values))
        assert s["cv"] == pytest.approx(statistics.stdev(values) / statistics.fmean(values))
        assert result["metrics"][key] == rep["runs"][0][key]  # the reported metrics are run 1's
        assert f"repeat x3 {key}: median" in repeated.out
    # the CPU is deterministic: the same answers in every run, so no note about it
    assert all(r["predictions_differ"] == {"validation": 0, "inference": 0} for r in rep["runs"][1:])
    assert not any("differ" in n for n in result["verdict"]["notes"])
    assert "repeats" in result["phases_s"]


@pytest.mark.slow  # a few seconds: keeps the fast tier under 90 s
def test_config_hash_and_fingerprint_identify_the_measurement(repeated, tmp_path: Path,
                                                              smoke_data_dir: Path) -> None:
    a = repeated.result
    canonical = provenance.canonical_json(a["config"]).encode("utf-8")
    assert a["config_sha256"] == hashlib.sha256(canonical).hexdigest()  # recomputable from the file itself
    assert set(a["fingerprint"]) == {"mmlu_csv_sha256", "mmlu_text_sha256", "weights_sha256", "weights_sample_sha256",
                                     "tokenizer_sha256", "model_config_sha256"}

    again = run_cli(smoke_data_dir, tmp_path / "again")  # no --repeat: the same measurement
    assert again.code == 0, again.err
    assert provenance.same_measurement(a, again.result) == []

    other = dict(again.result, fingerprint={**again.result["fingerprint"], "mmlu_csv_sha256": "0" * 64})
    assert provenance.same_measurement(a, other) == [
        f"fingerprint.mmlu_csv_sha256: {a['fingerprint']['mmlu_csv_sha256']!r} != {'0' * 64!r}"]
    assert provenance.same_measurement(a, dict(again.result, limit=None))[0].startswith("limit: 1 != None")


def test_config_hash_changes_with_any_key() -> None:
    def digest(*overrides: str) -> str:
        cfg = load_config(REPO_ROOT / "configs", CASE, "cpu", CpuOptions, list(overrides))
        return provenance.config_sha256(cfg.as_dict())

    base = digest()
    assert digest() == base
    assert digest("seed=1") != base
    assert digest("pad_multiple=64") != base  # vendor keys count too
    assert digest("few_shots=4") != base


def test_spread() -> None:
    s = metrics.spread([3.0, 1.0, 2.0, None])
    assert s == {"min": 1.0, "median": 2.0, "max": 3.0, "mean": 2.0, "cv": pytest.approx(0.5)}
    assert metrics.spread([5.0])["cv"] is None
    assert metrics.spread([None]) is None
