"""The aggregate of a data-parallel run's records (benchmarks.parallel.aggregate): one test per rule of RULES, on
made-up records of two or three ranks; and the system's figures the summary computes from them (tokens per joule of
the system = all tokens / all ranks' joules)."""
from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from benchmarks.contracts import MemoryReport, PeakFlops
from benchmarks.measure import metrics
from benchmarks.measure.energy import energy_metrics
from benchmarks.measure.records import PassRecord, RankRecord
from benchmarks.measure.summary import metrics_per_rank
from benchmarks.parallel.aggregate import RULES, aggregate, system_pass


def pass_(name: str, preds: list[int], core: float, whole: float, tokens_each: int = 10) -> PassRecord:
    n = len(preds)
    return PassRecord(name=name, n_questions=n, tokens=tokens_each * n, core_s=core, whole_s=whole,
                      predictions=tuple(preds), core_s_each=tuple([core / n] * n), nonfinite_questions=1,
                      choice_predictions=tuple(p + 100 for p in preds), forwards=n, max_prompts_per_forward=n)


def phase(energy: float, duration: float, power: float, clock: float, temp: float, shares: dict, mem: float) -> dict:
    return {"duration_s": duration, "energy_j": energy, "energy_source": "counter", "counter_j": energy,
            "integrated_power_j": energy * 1.01, "mean_power_w": power, "max_power_w": power + 10,
            "sm_clock_mhz": clock, "mem_clock_mhz": 2600.0, "temperature_c": temp, "max_temperature_c": temp + 5,
            "limit_shares": shares, "max_mem_used_gib": mem, "samples": 10}


def energy(infer_j: float, power: float, clock: float, temp: float, shares: dict, mem: float) -> dict:
    inference = phase(infer_j, infer_j / power, power, clock, temp, shares, mem)
    return {"available": True, "reason": None, "source": "nvml", "energy_source": "counter", "note": None,
            "idle_power_w": 80.0, "idle_s": 3.0, "interval_s": 0.1, "samples": 100,
            "phases": {"idle": phase(240.0, 3.0, 80.0, 345.0, 30.0, {}, 0.5), "inference": inference},
            "cross_check": {"phase": "inference", "counter_j": infer_j, "integrated_power_j": infer_j * 1.01,
                            "rel_diff": 0.01, "tolerance": 0.05, "agrees": True}, "errors": []}


def record(rank: int, preds: list[int], core: float, whole: float, infer_j: float, power: float, **kw) -> RankRecord:
    base = dict(
        rank=rank, world_size=3, local_rank=rank, host="h0", device=f"cuda:{rank}", device_type="cuda",
        device_name="NVIDIA H200", first_question=0, questions=len(preds), tokens=10 * len(preds), e2e_s=100.0 + rank,
        phases_s={"init": 10.0 + rank, "compile": 60.0 - rank, "inference": whole},
        validation=pass_("validation", preds, core * 2, whole * 2), inference=pass_("inference", preds, core, whole),
        repeats=((pass_("validation", preds, core * 2.1, whole * 2.1), pass_("inference", preds, core * 1.1, whole)),),
        toolkit={"name": "inductor", "recompiles": rank, "graph_recordings": None,
                 "compile_cache": {"state": "cold" if rank else "warm"}, "optimizations": ["pad_multiple=128"],
                 "details": {"graphs": 1}, "compile_fallback": None},
        optimizations=("pack_tokens=12288",),
        memory=MemoryReport(used_gib=15.0 + rank, total_gib=140.0, source="nvml:device", samples=100),
        peak=PeakFlops(989.4e12, "peak table row 'H200 SXM'"), executed_flops=1e15 * (rank + 1), padding_flops=1e12,
        energy=energy(infer_j, power, 1400.0 + 20 * rank, 50.0 + rank, {"power_cap": 0.5 + 0.25 * rank}, 12.0 + rank),
        host_cpu_wait={"available": True, "source": "x", "spans": {"inference": {"run_s": 10.0, "wait_s": 1.0 * rank,
                                                                                 "wait_share": 0.0}}},
        fingerprint={"mmlu": "abc"}, config_sha256="cfg", model={"layers": 32})
    base.update(kw)
    return RankRecord(**base)


@pytest.fixture
def ranks() -> list[RankRecord]:
    # shards of 3, 2 and 1 questions; rank 1 is the slowest
    return [record(0, [1, 2, 3], 2.0, 3.0, 1000.0, 500.0),
            dataclasses.replace(record(1, [4, 5], 4.0, 5.0, 2000.0, 600.0), first_question=3),
            dataclasses.replace(record(2, [6], 1.0, 1.5, 400.0, 400.0), first_question=5)]


def test_one_record_is_its_own_aggregate() -> None:
    r = record(0, [1, 2], 1.0, 2.0, 10.0, 100.0, world_size=1)
    assert aggregate([r]) is r


def test_every_rule_is_stated_in_the_docs() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "multi_gpu.md").read_text()
    for figure, rule in RULES.items():
        assert f"| {figure} | {rule} |" in doc, figure


def test_questions_and_tokens_are_summed(ranks) -> None:
    s = aggregate(ranks)
    assert (s.questions, s.tokens, s.first_question) == (6, 60, 0)


def test_predictions_choices_and_per_question_times_concatenate_in_rank_order(ranks) -> None:
    s = aggregate(list(reversed(ranks)))  # gathered in any order
    assert s.inference.predictions == (1, 2, 3, 4, 5, 6)
    assert s.inference.choice_predictions == (101, 102, 103, 104, 105, 106)
    assert s.inference.core_s_each == pytest.approx((2 / 3,) * 3 + (2.0,) * 2 + (1.0,))


def test_a_pass_takes_the_slowest_rank_s_core_and_wall_time(ranks) -> None:
    s = aggregate(ranks)
    assert (s.inference.core_s, s.inference.whole_s) == (4.0, 5.0)
    assert (s.validation.core_s, s.validation.whole_s) == (8.0, 10.0)
    assert metrics.throughput(s.inference.tokens, s.inference.core_s) == 15.0  # all tokens / the slowest time


def test_nonfinite_questions_and_forwards_are_summed(ranks) -> None:
    s = aggregate(ranks)
    assert (s.inference.nonfinite_questions, s.inference.forwards, s.inference.max_prompts_per_forward) == (3, 6, 3)


def test_e2e_and_phase_times_are_the_slowest_rank_s(ranks) -> None:
    s = aggregate(ranks)
    assert s.e2e_s == 102.0 and s.phases_s == {"init": 12.0, "compile": 60.0, "inference": 5.0}


def test_energy_per_phase_is_summed_over_ranks(ranks) -> None:
    e = aggregate(ranks).energy
    inf = e["phases"]["inference"]
    assert inf["energy_j"] == inf["counter_j"] == 3400.0
    assert inf["integrated_power_j"] == pytest.approx(3434.0)
    assert e["cross_check"]["counter_j"] == 3400.0 and e["cross_check"]["agrees"] is True


def test_phase_duration_is_the_slowest_rank_s(ranks) -> None:
    assert aggregate(ranks).energy["phases"]["inference"]["duration_s"] == pytest.approx(2000.0 / 600.0)


def test_power_is_summed_the_system_s_draw(ranks) -> None:
    e = aggregate(ranks).energy
    assert e["phases"]["inference"]["mean_power_w"] == 1500.0 and e["phases"]["inference"]["max_power_w"] == 1530.0
    assert e["idle_power_w"] == 240.0


def test_tokens_per_joule_of_the_system_is_all_tokens_over_all_joules(ranks) -> None:
    s = aggregate(ranks)
    m = energy_metrics(dict(s.energy), s.validation, s.inference)
    assert m["tokens_per_joule_whole"] == pytest.approx(60 / 3400.0)  # not rank 0's joules alone (60 / 1000)
    assert m["e_infer_j"] == 3400.0 and m["avg_power_w"] == 1500.0
    # each rank alone: its own tokens over its own joules
    assert energy_metrics(dict(ranks[0].energy), None, ranks[0].inference)["tokens_per_joule_whole"] == 30 / 1000.0


def test_clocks_and_temperature_are_the_mean_the_hottest_is_the_max(ranks) -> None:
    inf = aggregate(ranks).energy["phases"]["inference"]
    assert inf["sm_clock_mhz"] == 1420.0 and inf["temperature_c"] == 51.0 and inf["max_temperature_c"] == 57.0


def test_limit_shares_and_memory_per_phase_are_the_worst_rank_s(ranks) -> None:
    inf = aggregate(ranks).energy["phases"]["inference"]
    assert inf["limit_shares"] == {"power_cap": 1.0} and inf["max_mem_used_gib"] == 14.0


def test_energy_is_unavailable_when_a_rank_has_no_telemetry(ranks) -> None:
    ranks[1] = dataclasses.replace(ranks[1], energy={"available": False, "reason": "no counter"})
    assert aggregate(ranks).energy == {"available": False, "reason": "rank 1: no counter"}


def test_memory_is_per_device_the_rank_using_the_most(ranks) -> None:
    m = aggregate(ranks).memory
    assert (m.used_gib, m.total_gib) == (17.0, 140.0) and "largest of 3 ranks, rank 2" in m.source


def test_the_peak_is_n_times_the_device_s(ranks) -> None:
    p = aggregate(ranks).peak
    assert p.value == pytest.approx(3 * 989.4e12) and p.source.startswith("3 x ")


def test_executed_and_padding_flops_are_summed_or_unknown(ranks) -> None:
    s = aggregate(ranks)
    assert (s.executed_flops, s.padding_flops) == (6e15, 3e12)
    ranks[2] = dataclasses.replace(ranks[2], executed_flops=None)
    assert aggregate(ranks).executed_flops is None


def test_recompiles_and_graph_recordings_are_summed(ranks) -> None:
    t = aggregate(ranks).toolkit
    assert t["recompiles"] == 3 and t["graph_recordings"] is None
    ranks[1] = dataclasses.replace(ranks[1], toolkit={**ranks[1].toolkit, "graph_recordings": 2,
                                                       "compile_fallback": "RuntimeError: x"})
    t = aggregate(ranks).toolkit
    assert t["graph_recordings"] == 2 and t["compile_fallback"] == "rank 1: RuntimeError: x"


def test_compile_cache_state_is_rank_0_s_with_every_rank_s(ranks) -> None:
    c = aggregate(ranks).toolkit["compile_cache"]
    assert c["state"] == "warm" and c["ranks"] == ["warm", "cold", "cold"]


def test_host_cpu_wait_sums_run_and_wait_and_recomputes_the_share(ranks) -> None:
    span = aggregate(ranks).host_cpu_wait["spans"]["inference"]
    assert (span["run_s"], span["wait_s"]) == (30.0, 3.0) and span["wait_share"] == pytest.approx(3 / 33)


def test_fingerprints_configs_and_devices_must_be_equal(ranks) -> None:
    assert aggregate(ranks).disagreements == ()
    ranks[1] = dataclasses.replace(ranks[1], config_sha256="other")
    ranks[2] = dataclasses.replace(ranks[2], device_name="NVIDIA H100", fingerprint={"mmlu": "xyz"})
    found = aggregate(ranks).disagreements
    assert "ranks [1] saw another config than rank 0: config_sha256 differs" in found
    assert any("ranks [2]" in d and "fingerprint" in d for d in found)
    assert any("ranks [2]" in d and "device_name" in d for d in found)


def test_repeat_runs_aggregate_like_run_1(ranks) -> None:
    (val, infer), = aggregate(ranks).repeats
    assert infer.core_s == pytest.approx(4.4) and val.predictions == (1, 2, 3, 4, 5, 6)


def test_each_rank_s_figures_and_its_share_of_the_slowest(ranks) -> None:
    s = aggregate(ranks)
    rows = metrics_per_rank(s.ranks)
    assert [r["rank"] for r in rows] == [0, 1, 2] and [r["tokens"] for r in rows] == [30, 20, 10]
    assert [r["p_infer_core"] for r in rows] == [15.0, 5.0, 10.0]
    assert [r["infer_core_share_of_slowest"] for r in rows] == [0.5, 1.0, 0.25]
    assert [r["e_infer_j"] for r in rows] == [1000.0, 2000.0, 400.0]


def test_a_pass_on_some_ranks_only_cannot_be_combined() -> None:
    with pytest.raises(ValueError, match="ran on 1 of 2 ranks"):
        system_pass([pass_("inference", [1], 1.0, 1.0), None])
    assert system_pass([None, None]) is None


def test_a_record_survives_its_trip_to_rank_0(ranks) -> None:
    back = RankRecord.of_json(json.loads(json.dumps(ranks[1].as_json())))
    assert back == ranks[1] and back.timeline is None and back.workload is None


def test_the_summary_of_two_ranks_reports_the_system_s_tokens_per_joule(ranks) -> None:
    """The bug of issue 22: the system's tokens were divided by rank 0's joules alone."""
    from benchmarks.config import load_config
    from benchmarks.measure.summary import Inputs, summarize
    from benchmarks.registry import get_case, get_vendor
    from pathlib import Path

    case = get_case("llama2_7b_mmlu")
    config = load_config(Path(__file__).resolve().parents[2] / "configs", case, "cpu", get_vendor("cpu").Options, [])
    samples = [SimpleNamespace(subject="s", index=i, input_ids=(1,) * 10, label=i % 3) for i in range(6)]
    workload = SimpleNamespace(samples=samples, fingerprint={"mmlu": "abc"}, notes={})
    system = dataclasses.replace(aggregate(ranks), workload=workload)
    out = summarize(system, Inputs(case=case, config=config, vendor_name="nvidia"))
    assert out["metrics"]["tokens_per_joule_whole"] == pytest.approx(60 / 3400.0)
    assert out["metrics"]["p_infer_core"] == 15.0 and out["distributed"]["token_balance"] == 1.5
    assert out["peak_flops"]["value"] == pytest.approx(3 * 989.4e12)
