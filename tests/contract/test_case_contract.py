"""The contract every case must pass: `pytest tests/contract --case NAME` (default: every registered case,
including the test-only ones of tests/cases/). Each test checks one promise of `benchmarks.interfaces.Case`
that the harness relies on, on the case's own smoke data, on the CPU.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from benchmarks.config import RunConfig, fields_of, load_config
from benchmarks.errors import BenchmarkError
from benchmarks.contracts import CASE_MEMBERS, PRECISIONS, Case, Optimization, OptimizationContext, Sample, Workload, is_lossy
from benchmarks.registry import case_config_root, get_case, get_vendor

from fault_helpers import cli


@pytest.fixture(scope="module")
def case(case_name: str) -> Case:
    return get_case(case_name)


@pytest.fixture(scope="module")
def data_dir(case: Case, smoke_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLAMA_BENCH_CACHE", str(smoke_cache))
        return case.smoke_data()


@pytest.fixture(scope="module")
def config(case: Case):
    vendor = get_vendor("cpu")
    return load_config(case_config_root(case.name), case, "cpu", vendor.Options)


@pytest.fixture(scope="module")
def workload(case: Case, config, data_dir: Path) -> Workload:
    return case.load_workload(config.case, data_dir, 2)


def test_case_implements_the_protocol(case: Case, case_name: str) -> None:
    assert isinstance(case, Case)
    assert case.name == case_name
    for member in CASE_MEMBERS:
        assert hasattr(case, member), member
    assert case.reference_accuracy is None or 0 < case.reference_accuracy <= 1
    assert 0 <= case.accuracy_tolerance < 1
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in case.categories.items())


def test_params_and_optimization_options_are_frozen_documented_dataclasses(case: Case) -> None:
    classes = [case.Params, *(o.Options for o in case.optimizations)]
    seen = set(fields_of(RunConfig))
    for cls in classes:
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), f"{cls.__name__}.{f.name} has no doc text (use benchmarks.config.doc)"
            assert f.name not in seen, f"key {f.name!r} declared twice"
            seen.add(f.name)


def test_optimizations_are_declared_off_by_default_and_name_what_they_need(case: Case, switched_on) -> None:
    names = [o.name for o in case.optimizations]
    assert len(set(names)) == len(names)
    for opt in case.optimizations:
        assert isinstance(opt, Optimization) and opt.name
        if opt.precisions:  # implements a lossy precision: on exactly at it, whatever its keys
            assert set(opt.precisions) <= set(PRECISIONS) and all(is_lossy(p) for p in opt.precisions), opt.precisions
            for p in PRECISIONS:
                assert opt.switched_on(opt.Options(), p) is (p in opt.precisions), (opt.name, p)
            continue
        assert dataclasses.fields(opt.Options), f"{opt.name}: Options has no key to switch it on"
        assert not opt.is_on(opt.Options()), f"{opt.name} is on by default; the reference runs without it"
        assert opt.is_on(switched_on(opt))
        assert set(opt.needs) <= set(names) - {opt.name}, f"{opt.name} needs undeclared {opt.needs}"
        assert opt.off_setting().startswith(f"--set {dataclasses.fields(opt.Options)[0].name}=")
        assert all(isinstance(label, str) for label in opt.labels(switched_on(opt)))
        assert all(h.startswith("--set ") for h in opt.memory_hints(switched_on(opt)))


def test_shipped_configs_load_and_the_smoke_data_passes_check_data(case: Case, config, data_dir: Path) -> None:
    assert type(config.case) is case.Params
    assert set(config.optimizations) == {o.name for o in case.optimizations}
    case.check_data(config.case, data_dir, "--smoke")
    with pytest.raises(BenchmarkError):
        case.check_data(config.case, data_dir / "missing", "--smoke")


def test_workload_holds_samples_with_labels_and_a_fingerprint(case: Case, workload: Workload) -> None:
    assert isinstance(workload, Workload) and workload.samples
    per_subject: dict[str, int] = {}
    for s in workload.samples:
        assert isinstance(s, Sample) and s.subject and isinstance(s.index, int)
        assert s.input_ids and all(isinstance(t, int) for t in s.input_ids) and isinstance(s.label, int)
        per_subject[s.subject] = per_subject.get(s.subject, 0) + 1
    assert max(per_subject.values()) <= 2, "limit=2 keeps at most 2 samples per subject"
    keys = [(s.subject, s.index) for s in workload.samples]
    assert len(set(keys)) == len(keys), "(subject, index) must identify a sample"
    assert workload.fingerprint and all(isinstance(v, str) and v for v in workload.fingerprint.values())
    assert all(isinstance(t, int) for t in workload.choice_ids)
    json.dumps(dict(workload.notes))


def test_model_scores_the_last_position_and_ignores_right_padding(case: Case, config, data_dir: Path,
                                                                 workload: Workload) -> None:
    model = case.build_model(config.case, data_dir, precision="fp32", device=torch.device("cpu"), synthetic=False,
                             seed=0)
    with torch.inference_mode():
        for s in workload.samples[:4]:
            ids, n = torch.tensor([s.input_ids]), len(s.input_ids)
            logits = model(ids, torch.tensor([n - 1]))
            assert logits.ndim == 2 and logits.shape[0] == 1 and torch.isfinite(logits).all()
            assert 0 <= s.label < logits.shape[1] and all(t < logits.shape[1] for t in workload.choice_ids)
            padded = torch.cat([ids, ids[:, :3]], dim=1)  # causal: tokens after last_pos change nothing
            torch.testing.assert_close(model(padded, torch.tensor([n - 1])), logits, atol=1e-5, rtol=1e-5)


def test_reference_load_path_keeps_the_model_contract(case: Case, config, data_dir: Path, workload: Workload) -> None:
    """build_model(load_path="reference") (the reference scenario's model): the same ModelFn contract, and at fp32
    the same logits as the direct load up to float error (the load paths differ in casts and in computing every
    position's logits, not in the model)."""
    kwargs = dict(precision="fp32", device=torch.device("cpu"), synthetic=False, seed=0)
    direct = case.build_model(config.case, data_dir, **kwargs)
    reference = case.build_model(config.case, data_dir, load_path="reference", **kwargs)
    with torch.inference_mode():
        for s in workload.samples[:4]:
            ids, last = torch.tensor([s.input_ids]), torch.tensor([len(s.input_ids) - 1])
            logits = reference(ids, last)
            assert logits.ndim == 2 and logits.shape[0] == 1 and torch.isfinite(logits).all()
            torch.testing.assert_close(logits, direct(ids, last), atol=1e-5, rtol=1e-5)
            padded = torch.cat([ids, ids[:, :3]], dim=1)
            torch.testing.assert_close(reference(padded, last), logits, atol=1e-5, rtol=1e-5)


def test_synthetic_weights_build_the_same_shapes_deterministically(case: Case, config, data_dir: Path,
                                                                  workload: Workload) -> None:
    ids = torch.tensor([workload.samples[0].input_ids])
    last = torch.tensor([ids.shape[1] - 1])
    outs = []
    for _ in range(2):
        model = case.build_model(config.case, data_dir, precision="fp32", device=torch.device("cpu"), synthetic=True,
                                 seed=3)
        with torch.inference_mode():
            outs.append(model(ids, last))
    torch.testing.assert_close(outs[0], outs[1])


def test_packing_optimizations_score_each_prompt_as_alone(case: Case, config, data_dir: Path, workload: Workload,
                                                         switched_on) -> None:
    packers = [o for o in case.optimizations if o.pack_tokens(switched_on(o)) > 0]
    if not packers:
        pytest.skip(f"case '{case.name}' declares no optimization that packs prompts")
    model = case.build_model(config.case, data_dir, precision="fp32", device=torch.device("cpu"), synthetic=False,
                             seed=0)
    samples = workload.samples[:5]
    with torch.inference_mode():
        alone = torch.cat([model(torch.tensor([s.input_ids]), torch.tensor([len(s.input_ids) - 1])) for s in samples])
        longest = max(len(s.input_ids) for s in samples)
        ctx = OptimizationContext(vendor=get_vendor("cpu"), precision="fp32", longest_prompt=longest)
        for opt in packers:
            opt.apply(model, switched_on(opt), ctx)
        ids = torch.tensor([[t for s in samples for t in s.input_ids]])
        last = torch.tensor([len(s.input_ids) for s in samples]).cumsum(0) - 1
        torch.testing.assert_close(model(ids, last), alone, atol=1e-4, rtol=1e-4)


def test_precision_optimizations_keep_the_model_contract(case: Case, config, data_dir: Path,
                                                         workload: Workload) -> None:
    """An optimization implementing a lossy precision (e.g. fp8) is applied after the validation pass to the plain
    model built at that precision: the model keeps the ModelFn contract (last position, right padding ignored)
    and its logits stay near the plain model's."""
    lossy = [(o, p) for o in case.optimizations for p in o.precisions]
    if not lossy:
        pytest.skip(f"case '{case.name}' implements no lossy precision")
    for opt, precision in lossy:
        if not get_vendor("cpu").supports(precision):
            pytest.skip(f"this torch cannot run {precision} on the host")
        model = case.build_model(config.case, data_dir, precision=precision, device=torch.device("cpu"),
                                 synthetic=False, seed=0)
        s = workload.samples[0]
        ids, last = torch.tensor([s.input_ids]), torch.tensor([len(s.input_ids) - 1])
        with torch.inference_mode():
            plain = model(ids, last).float()
            opt.apply(model, opt.Options(), OptimizationContext(vendor=get_vendor("cpu"), precision=precision,
                                                                longest_prompt=ids.shape[1]))
            lowered = model(ids, last).float()
            assert lowered.shape == plain.shape and torch.isfinite(lowered).all()
            assert not torch.equal(lowered, plain), f"{opt.name} changed nothing at {precision}"
            assert ((lowered - plain).norm() / plain.norm()).item() < 0.25
            padded = torch.cat([ids, ids[:, :3]], dim=1)
            torch.testing.assert_close(model(padded, last).float(), lowered, atol=1e-2, rtol=1e-2)


def test_a_smoke_run_completes_through_the_cli(case: Case, smoke_cache: Path, tmp_path: Path) -> None:
    code, out, err = cli(["--case", case.name, "--vendor", "cpu", "--smoke", "--limit", "1", "--quiet",
                          "--output_dir", str(tmp_path)], smoke_cache)
    assert code == 0, err
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["case"] == case.name and result["status"] == "completed"
    assert result["verdict"]["status"] == "INVALID" and "smoke run" in result["verdict"]["reasons"][0]
