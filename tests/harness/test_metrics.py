"""metrics.compute, passes.run_pass, HostBatch and Spans on tiny deterministic fake models on the CPU."""
from __future__ import annotations

import time

import pytest
import torch

from benchmarks.measure import metrics
from benchmarks.contracts import MemoryReport, PeakFlops
from benchmarks.harness.passes import HostBatch, run_pass
from benchmarks.measure.records import PassRecord
from benchmarks.measure.timing import Spans

CPU = torch.device("cpu")
VOCAB = 50
PROMPTS = [[1, 5, 7], [1, 9], [1, 2, 3, 4, 11], [1, 13, 17, 19]]  # 14 tokens


def last_token_model(ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Logits whose argmax is the token at last_pos (a fixed, known answer per prompt)."""
    logits = torch.zeros(ids.shape[0], VOCAB)
    logits[torch.arange(ids.shape[0]), ids[torch.arange(ids.shape[0]), last]] = 1.0
    return logits


def fixed_model(answer: int):
    def fn(ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(ids.shape[0], VOCAB)
        logits[:, answer] = 5.0
        return logits

    return fn


def sleeping_model(seconds: float):
    def fn(ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        time.sleep(seconds)
        return last_token_model(ids, last)

    return fn


class CountingSync:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def record(name: str, tokens: int, core: float, whole: float, preds: tuple[int, ...]) -> PassRecord:
    n = len(preds)
    return PassRecord(name=name, n_questions=n, tokens=tokens, core_s=core, whole_s=whole, predictions=preds,
                      core_s_each=tuple([core / n] * n), nonfinite_questions=0)


# ------------------------------------------------------------------------------------------- HostBatch


def test_hostbatch_slices_exact_ids() -> None:
    batch = HostBatch(PROMPTS, CPU)
    assert len(batch) == 4
    assert batch.lengths == [3, 2, 5, 4]
    assert batch.offsets == [0, 3, 5, 10, 14]
    for i, prompt in enumerate(PROMPTS):
        ids, last = batch.get(i)
        assert ids.shape == (1, len(prompt)) and ids.dtype == torch.int64
        assert ids[0].tolist() == prompt
        assert last.tolist() == [len(prompt) - 1]
        assert ids.device == CPU and last.device == CPU


def test_hostbatch_cpu_copies_do_not_alias_the_buffer() -> None:
    batch = HostBatch(PROMPTS, CPU)
    ids, last = batch.get(2)
    assert ids.storage_offset() == 0 and last.storage_offset() == 0
    ids[0, 0] = 999
    assert batch.get(2)[0][0].tolist() == PROMPTS[2]


# ---------------------------------------------------------------------------------------------- Spans


def test_spans_record_and_accumulate() -> None:
    spans, sync = Spans(), CountingSync()
    with spans.span("a", sync):
        time.sleep(0.02)
    assert sync.calls == 2
    first = spans.seconds["a"]
    assert 0.02 <= first < 1.0
    with spans.span("a"):
        time.sleep(0.01)
    assert spans.seconds["a"] >= first + 0.01
    with spans.span("b"):
        pass
    assert list(spans.seconds) == ["a", "b"]


def test_spans_record_time_when_the_body_raises() -> None:
    spans, sync = Spans(), CountingSync()
    with pytest.raises(RuntimeError, match="boom"):
        with spans.span("failing", sync):
            time.sleep(0.02)
            raise RuntimeError("boom")
    assert spans.seconds["failing"] >= 0.02
    assert sync.calls == 2  # the closing sync ran too


# -------------------------------------------------------------------------------------------- run_pass


def test_run_pass_counts_tokens_once_and_scores_argmax() -> None:
    batch = HostBatch(PROMPTS, CPU)
    sync = CountingSync()
    rec = run_pass("validation", last_token_model, batch, sync, log_freq=1)
    assert rec.name == "validation" and rec.n_questions == 4
    assert rec.tokens == 14 == sum(len(p) for p in PROMPTS)
    assert rec.predictions == (7, 9, 11, 19)
    assert rec.nonfinite_questions == 0
    assert rec.choice_predictions is None
    assert len(rec.core_s_each) == 4 and all(t > 0 for t in rec.core_s_each)
    assert rec.core_s == pytest.approx(sum(rec.core_s_each), abs=0)
    assert rec.whole_s >= rec.core_s
    assert sync.calls == 2 + 2 * 4  # before/after the pass, and around every forward


def test_run_pass_times_a_known_sleep() -> None:
    batch = HostBatch(PROMPTS, CPU)
    rec = run_pass("inference", sleeping_model(0.02), batch, lambda: None)
    assert all(0.02 <= t < 0.5 for t in rec.core_s_each)
    assert rec.core_s == sum(rec.core_s_each)
    assert 0.08 <= rec.core_s <= rec.whole_s
    assert rec.predictions == (7, 9, 11, 19)


def test_run_pass_choice_predictions_and_nonfinite() -> None:
    def fn(ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(1, VOCAB)
        n = ids.shape[1]
        logits[0, 40] = 10.0  # the full-vocab argmax, not a choice
        logits[0, 20 + n % 4] = 1.0  # best of the choices 20..23
        if n == 5:
            logits[0, 1] = float("-inf")  # non-finite, but not the argmax
        return logits

    batch = HostBatch(PROMPTS, CPU)
    rec = run_pass("validation", fn, batch, lambda: None, choice_ids=(20, 21, 22, 23))
    assert rec.predictions == (40, 40, 40, 40)
    assert rec.choice_predictions == tuple(20 + len(p) % 4 for p in PROMPTS) == (23, 22, 21, 20)
    assert rec.nonfinite_questions == 1


def test_run_pass_reports_progress() -> None:
    calls = []
    run_pass("v", fixed_model(3), HostBatch(PROMPTS, CPU), lambda: None, progress=lambda *a: calls.append(a))
    assert [c[:2] for c in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(b[2] >= a[2] >= 0 for a, b in zip(calls, calls[1:]))  # elapsed seconds
    if len(calls[0]) >= 4:  # progress(done, n, elapsed_s, tokens_done)
        assert [c[3] for c in calls] == [3, 5, 10, 14]


# --------------------------------------------------------------------------------------------- compute

PEAK = PeakFlops(1e12, "test table")
MEM = MemoryReport(used_gib=1.5, total_gib=8.0, source="test")


def compute(**kw):
    args = dict(e2e_s=10.0, val=None, infer=None, labels=[], flops_per_token=2.0, peak=PEAK, memory=MEM,
                compile_s=None, val_warmup_s=None)
    args.update(kw)
    return metrics.compute(**args)


def test_compute_exact_values() -> None:
    labels = [7, 9, 11, 5]
    val = record("validation", tokens=1000, core=4.0, whole=5.0, preds=(7, 9, 0, 0))  # 2/4 right
    infer = record("inference", tokens=1000, core=2.0, whole=2.5, preds=(7, 9, 11, 0))  # 3/4 right
    m = compute(e2e_s=12.5, val=val, infer=infer, labels=labels, flops_per_token=1.4e10,
                peak=PeakFlops(1e15, "x"), compile_s=3.0, val_warmup_s=0.25)
    assert m.e2e_time == 12.5
    assert m.p_val_core == 250.0 and m.p_val_pass == 200.0 and m.p_val_whole == 1000 / (5.0 + 0.25)
    assert m.p_infer_core == 500.0 and m.p_infer_pass == 400.0 and m.p_infer_whole == 1000 / (2.5 + 3.0)
    assert m.val_acc == 0.5 and m.infer_acc == 0.75
    assert m.mfu == pytest.approx(1.4e10 * 500.0 / 1e15) and m.mfu_reason is None
    assert m.mem_used_gib == 1.5 and m.mem_total_gib == 8.0
    assert m.compile_time == 3.0 and m.val_warmup_time == 0.25
    assert m.agreement == 0.75  # the predictions agree on 3 of 4 questions
    d = m.as_dict()
    for key in ("e2e_time", "p_val_whole", "p_val_core", "p_infer_whole", "p_infer_core", "mfu", "val_acc",
                "infer_acc", "mem_used_gib", "mem_total_gib", "compile_time"):
        assert key in d
    assert d["p_infer_core"] == 500.0


def test_reference_mfu_row() -> None:
    """CASE.md: 10052.2 tokens/s x 14e9 / 312e12 = 45.1%."""
    infer = record("inference", tokens=100522, core=10.0, whole=11.0, preds=(1,))
    m = compute(infer=infer, labels=[1], flops_per_token=2 * 7e9, peak=PeakFlops(312e12, "A100 fp16"))
    assert m.p_infer_core == pytest.approx(10052.2)
    assert round(100 * m.mfu, 1) == 45.1


@pytest.mark.parametrize("peak", [PeakFlops(None, "CPU peak FLOP/s unknown"), PeakFlops(0.0, "zero peak")])
def test_mfu_none_with_reason_when_peak_unknown(peak: PeakFlops) -> None:
    infer = record("inference", tokens=10, core=1.0, whole=1.0, preds=(1,))
    m = compute(infer=infer, labels=[1], peak=peak)
    assert m.mfu is None and m.mfu_reason == peak.source
    assert m.p_infer_core == 10.0


def test_missing_passes_and_memory() -> None:
    m = compute(memory=None)
    assert m.p_val_core is m.p_val_whole is m.p_infer_core is m.p_infer_whole is None
    assert m.val_acc is None and m.infer_acc is None and m.agreement is None
    assert m.mfu is None and m.mfu_reason == "no inference pass"
    assert m.mem_used_gib is None and m.mem_total_gib is None


def test_no_validation_pass() -> None:
    infer = record("inference", tokens=30, core=3.0, whole=6.0, preds=(1, 2, 3))
    m = compute(infer=infer, labels=[1, 2, 0])
    assert m.p_val_core is None and m.val_acc is None and m.agreement is None
    assert m.p_infer_core == 10.0 and m.p_infer_whole == 5.0 and m.infer_acc == pytest.approx(2 / 3)


def test_zero_time_gives_no_throughput() -> None:
    assert metrics.throughput(10, 0.0) is None
    assert metrics.throughput(10, 4.0) == 2.5


def test_accuracy() -> None:
    assert metrics.accuracy([1, 2, 3, 4], [1, 2, 0, 0]) == 0.5
    assert metrics.accuracy([], []) == 0.0
    with pytest.raises(AssertionError):
        metrics.accuracy([1], [1, 2])


def test_compute_on_real_passes() -> None:
    """run_pass -> compute: the throughputs are the pass's own tokens over its own times."""
    batch = HostBatch(PROMPTS, CPU)
    labels = [7, 9, 0, 19]
    val = run_pass("validation", last_token_model, batch, lambda: None)
    infer = run_pass("inference", sleeping_model(0.005), batch, lambda: None)
    m = compute(val=val, infer=infer, labels=labels, flops_per_token=3.0, peak=PeakFlops(1e6, "p"))
    assert m.p_val_core == 14 / val.core_s and m.p_val_whole == 14 / val.whole_s
    assert m.p_infer_core == 14 / infer.core_s and m.p_infer_whole == 14 / infer.whole_s
    assert m.p_infer_whole <= m.p_infer_core and m.p_val_whole <= m.p_val_core
    assert m.val_acc == m.infer_acc == 0.75
    assert m.agreement == 1.0
    assert m.mfu == pytest.approx(3.0 * (14 / infer.core_s) / 1e6)
