"""What makes a llama2_7b_mmlu run "the case" (Llama2MMLU.deviations, fed to the verdict): the hendrycks
release's rows, all 14,042 questions, 5 shots, Llama-2-7B's shape; and what the harness refuses up front."""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
import torch
import transformers

from benchmarks.measure import metrics
from benchmarks.measure import verdict as V
from benchmarks.contracts import PeakFlops, Workload
from benchmarks.llama2_7b_mmlu import CASE
from benchmarks.llama2_7b_mmlu import data as D
from benchmarks.llama2_7b_mmlu.model import LastTokenLM

from fault_helpers import cli

SHARED = Path(os.environ.get("LLAMA_BENCH_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
RELEASE = SHARED / "mmlu" / "data"
needs_release = pytest.mark.skipif(not (RELEASE / "test").is_dir(), reason=f"the MMLU release is not at {RELEASE}")
LLAMA2_7B = {**CASE.architecture, "parameters": CASE.parameters}


def params(**kw):
    return CASE.Params(weight_dir="w", mmlu_dir="m", few_shots=kw.pop("few_shots", 5), **kw)


def workload(n: int = CASE.questions, text: str = CASE.mmlu_text_sha256, limit=None) -> Workload:
    samples = [D.Sample("anatomy", i, (1, 2), 319, 0) for i in range(n)]
    return Workload(samples=samples, fingerprint={"mmlu_text_sha256": text}, notes={"limit": limit})


@needs_release
def test_the_release_text_fingerprint_is_the_cases_and_ignores_line_endings(tmp_path: Path) -> None:
    dev, test = D.load_mmlu(RELEASE, 5)
    assert D.text_fingerprint(dev, test) == CASE.mmlu_text_sha256
    assert sum(len(rows) for rows in test.values()) == CASE.questions
    # The same rows with CRLF line endings: other bytes, the same text.
    copy = tmp_path / "data"
    shutil.copytree(RELEASE, copy, ignore=shutil.ignore_patterns("val"))
    path = copy / "test" / "anatomy_test.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert D.fingerprint(copy) != D.fingerprint(RELEASE)
    assert D.text_fingerprint(*D.load_mmlu(copy, 5)) == CASE.mmlu_text_sha256
    # One changed answer is another workload.
    rows = path.read_text(encoding="utf-8").splitlines()
    rows[0] = rows[0][:-1] + ("B" if rows[0][-1] != "B" else "C")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert D.text_fingerprint(*D.load_mmlu(copy, 5)) != CASE.mmlu_text_sha256


def test_the_case_itself_has_no_deviations() -> None:
    assert CASE.deviations(params(), workload(), LLAMA2_7B) == []
    assert CASE.deviations(params(), workload(n=57, limit=1), LLAMA2_7B) == []  # --limit is the harness's rule


@pytest.mark.parametrize("change, needle", [
    (dict(few_shots=0), "few_shots=0: the case is 5-shot"),
    (dict(n=14041), "14041 questions, the case has 14042"),
    (dict(text="0" * 64), "the MMLU rows are not the hendrycks release's"),
    (dict(model={**LLAMA2_7B, "layers": 2}), "the model is not Llama-2-7B: layers=2 (expected 32)"),
    (dict(model={**LLAMA2_7B, "kv_heads": 8}), "kv_heads=8 (expected 32)"),
    (dict(model={**LLAMA2_7B, "parameters": 7_000_000_000}), "7000000000 parameters"),
    (dict(model_layers=2), "shrunk model: model_layers=2"),
])
def test_each_deviation_is_named(change, needle) -> None:
    p = params(**{k: v for k, v in change.items() if k in ("few_shots", "model_layers")})
    w = workload(**{k: v for k, v in change.items() if k in ("n", "text")})
    found = CASE.deviations(p, w, change.get("model", LLAMA2_7B))
    assert len(found) == 1 and needle in found[0], found


def test_a_model_that_always_answers_A_on_a_crafted_workload_is_not_valid() -> None:
    """The adversarial run: a 2-layer model whose lm_head always picks "A" (id 319), on 14,042 crafted questions
    of which 45.8% have the answer A: the accuracy lands in the reference band, the run is still not the case."""
    cfg = transformers.LlamaConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=4)
    torch.manual_seed(0)
    model = LastTokenLM(transformers.LlamaForCausalLM._from_config(cfg)).eval()
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias = torch.nn.Parameter(torch.zeros(400))
        model.lm_head.bias[319] = 1.0
    n_a = round(0.458 * CASE.questions)
    labels = [319] * n_a + [350] * (CASE.questions - n_a)
    crafted = Workload(samples=[D.Sample("anatomy", i, (1, 5, 9), y, 0) for i, y in enumerate(labels)],
                       fingerprint={"mmlu_text_sha256": "crafted"}, notes={"limit": None})
    with torch.inference_mode():
        pred = int(model(torch.tensor([[1, 5, 9]]), torch.tensor([2])).argmax())
    preds = [pred] * CASE.questions
    acc = metrics.accuracy(preds, labels)
    assert pred == 319 and abs(acc - CASE.reference_accuracy) <= CASE.accuracy_tolerance
    m = metrics.Metrics(e2e_time=1.0, p_val_whole=1.0, p_val_core=1.0, p_infer_whole=1.0, p_infer_core=1.0,
                        mfu=0.5, mfu_reason=None, val_acc=acc, infer_acc=acc, mem_used_gib=1.0, mem_total_gib=2.0,
                        compile_time=0.0, val_warmup_time=0.0, agreement=1.0)
    deviations = CASE.deviations(params(), crafted, model.architecture())
    verdict = V.judge(V.Evidence(smoke=False, limit=None, synthetic_weights=False, recompiles=0, compile_fallback=None,
                                 passes=(), metrics=m, peak=PeakFlops(1e15, "table"), deviations=tuple(deviations),
                                 reference_accuracy=CASE.reference_accuracy,
                                 accuracy_tolerance=CASE.accuracy_tolerance))
    assert verdict["status"] == "INVALID"
    assert any("not Llama-2-7B" in r for r in verdict["reasons"])
    assert any("not the hendrycks release's" in r for r in verdict["reasons"])
    same = dataclasses.replace(V.Evidence(smoke=False, limit=None, synthetic_weights=False, recompiles=0,
                                          compile_fallback=None, passes=(), metrics=m, peak=PeakFlops(1e15, "t")))
    assert V.judge(same)["status"] == "VALID"  # without the case's checks it would have passed


def test_no_validation_with_a_named_optimization_is_refused_before_the_run(smoke_cache: Path, tmp_path: Path) -> None:
    code, _, err = cli(["--smoke", "--limit", "1", "--quiet", "--output_dir", str(tmp_path / "out"),
                        "--set", "no_validation=true", "--set", "pack_tokens=500"], smoke_cache)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'no_validation': true with the named optimization(s) pack_tokens on" in err
    assert not (tmp_path / "out" / "result.json").exists()
