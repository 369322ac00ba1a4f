"""Issue 17 on CPU: the NVML telemetry against a scripted NVML (energy counter, power, clock-limit reasons),
the energy figures computed from its record, the verdict note, the gate and history columns, timeline.png."""
from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.measure import energy, metrics, verdict
from benchmarks.contracts import IDLE_PHASE, TelemetryMark, TelemetryRecord, TelemetrySample
from benchmarks.reporting import gate, history, markdown
from benchmarks.reporting import timeline as timeline_png
from benchmarks.measure.run_telemetry import RunTelemetry
from benchmarks.measure.timing import Spans
from telemetry_support import FakeClock, ScriptedNvml, check_telemetry
from vendors.nvidia.telemetry import HW_SLOWDOWN, HW_THERMAL, SW_POWER_CAP, NvmlTelemetry

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INTERVAL = 0.1


def scripted(nvml_kwargs=None, idle_s=2.0, **tel_kwargs):
    """An NvmlTelemetry on a fake clock: its `sleep` advances the clock, sampling every INTERVAL."""
    clock = FakeClock()
    nvml = ScriptedNvml(clock, **(nvml_kwargs or {}))
    holder = {}

    def advance(seconds: float) -> None:
        steps = round(seconds / INTERVAL)
        for _ in range(steps):
            clock.t += INTERVAL
            holder["tel"].sample()

    tel = NvmlTelemetry(0, interval_s=INTERVAL, idle_s=idle_s, nvml=nvml, clock=clock, sleep=advance, thread=False,
                        **tel_kwargs)
    holder["tel"] = tel
    return tel, nvml, advance


def run_phases(tel, advance, phases):
    with tel:
        for name, seconds in phases:
            tel.mark(name)
            advance(seconds)
            tel.mark(None)
    return tel.report()


def test_counter_energy_per_phase_is_the_counter_delta_and_idle_is_reported():
    # idle 80 W for 2 s, then 300 W; inference at 650 W from t=12 s
    tel, nvml, advance = scripted({"power": [(0, 80.0), (2.0, 300.0), (12.0, 650.0)]})
    record = run_phases(tel, advance, [("init", 4.0), ("validation", 6.0), ("inference", 5.0)])
    block = metrics.energy_block(record)
    p = block["phases"]
    assert list(p) == [IDLE_PHASE, "init", "validation", "inference"]
    assert block["energy_source"] == "counter" and block["note"] is None
    assert p[IDLE_PHASE]["energy_j"] == pytest.approx(160.0, abs=0.01)  # counter is whole mJ
    assert block["idle_power_w"] == pytest.approx(80.0, abs=0.01) and block["idle_s"] == pytest.approx(2.0)
    assert p["validation"]["energy_j"] == pytest.approx(nvml.energy_j(6.0, 12.0), abs=0.01) == pytest.approx(1800)
    assert p["inference"]["energy_j"] == pytest.approx(3250.0, abs=0.01)
    assert p["inference"]["mean_power_w"] == pytest.approx(650.0, abs=0.01)
    assert p["inference"]["max_power_w"] == 650.0 and p["inference"]["sm_clock_mhz"] == 1860.0
    assert p["inference"]["mem_clock_mhz"] == 2619.0 and p["inference"]["temperature_c"] == 60.0
    assert 50 <= p["inference"]["samples"] <= 51 and p["inference"]["energy_source"] == "counter"
    # the cross-check: integrated sampled power agrees with the counter on constant power
    cross = block["cross_check"]
    assert cross["phase"] == "inference" and abs(cross["rel_diff"]) < 1e-3 and cross["agrees"] is True
    # idle power is reported, not subtracted
    val = SimpleNamespace(tokens=6000, core_s=5.0, whole_s=6.0)
    inf = SimpleNamespace(tokens=13000, core_s=4.0, whole_s=5.0)
    m = metrics.energy_metrics(block, val, inf)
    assert m["e_infer_j"] == pytest.approx(3250.0, abs=0.01) and m["e_val_j"] == pytest.approx(1800.0, abs=0.01)
    assert m["tokens_per_joule_whole"] == pytest.approx(13000 / 3250, rel=1e-5)
    assert m["tokens_per_joule_core"] == pytest.approx(13000 / (650 * 4.0), rel=1e-5)
    assert m["avg_power_w"] == pytest.approx(650.0, abs=0.01) and m["idle_power_w"] == pytest.approx(80.0, abs=0.01)
    assert m["energy_reason"] is None
    json.dumps(block)


def test_counter_wrap_inside_a_phase_is_followed():
    # the counter wraps at 1,000,000 mJ (1 kJ) and starts 100 J below it: it wraps during validation, and
    # twice more during inference (2.4 kJ at 400 W over 6 s)
    tel, nvml, advance = scripted({"power": [(0, 400.0)], "counter_start_mj": 900_000, "wrap_mj": 1_000_000},
                                  idle_s=0.0, counter_wrap_mj=1_000_000)
    record = run_phases(tel, advance, [("validation", 1.0), ("inference", 6.0)])
    assert any(b.energy_j < a.energy_j for a, b in zip(record.samples, record.samples[1:]))  # it did wrap
    p = metrics.energy_block(record)["phases"]
    assert p["validation"]["energy_j"] == pytest.approx(400.0, abs=0.01)
    assert p["inference"]["energy_j"] == pytest.approx(2400.0, abs=0.01)
    assert p["inference"]["energy_source"] == "counter"


def test_counter_going_back_without_a_known_modulus_falls_back_to_power():
    readings = [(0.0, 900.0), (1.0, 100.0)]
    assert energy.counter_energy(readings, wrap_j=1000.0) == pytest.approx(200.0)
    assert energy.counter_energy(readings, wrap_j=None) is None
    # a step that would mean 1 MW is a reset, not energy
    assert energy.counter_energy([(0.0, 10.0), (1.0, 1e6 + 20.0)], wrap_j=2.0**64) is None
    assert energy.counter_energy([(0.0, 10.0), (1.0, None)], wrap_j=None) is None


def test_device_without_energy_counter_integrates_sampled_power_and_says_so():
    tel, nvml, advance = scripted({"power": [(0, 90.0), (2.0, 500.0)], "energy_counter": False})
    record = run_phases(tel, advance, [("inference", 10.0)])
    assert "Not Supported" in record.counter_missing
    block = metrics.energy_block(record)
    inf = block["phases"]["inference"]
    assert inf["energy_source"] == "integrated_power" and inf["counter_j"] is None
    assert inf["energy_j"] == pytest.approx(5000.0, rel=1e-6)
    assert block["energy_source"] == "integrated_power" and block["cross_check"] is None
    assert "no energy counter" in block["note"] and "integrated from power sampled every 0.1 s" in block["note"]
    # the sample at the idle phase's end already reads the 500 W step: trapezoids smear it over one interval
    assert block["idle_power_w"] == pytest.approx(90.0 + (500 - 90) / 2 * INTERVAL / 2.0)
    finding = list(verdict.energy_source(SimpleNamespace(energy=block)))
    assert finding == [(False, block["note"])]


def test_integration_interpolates_at_phase_edges():
    samples = [TelemetrySample(t, power_w=p) for t, p in ((0.0, 100.0), (1.0, 200.0), (2.0, 200.0))]
    assert energy.integrate_power(samples, 0.5, 1.5) == pytest.approx((150 + 200) / 2 * 0.5 + 200 * 0.5)
    assert energy.integrate_power(samples, 3.0, 4.0) == pytest.approx(200.0)  # held after the last sample
    assert energy.integrate_power([], 0.0, 1.0) is None


def test_limit_reason_shares_per_phase_and_the_verdict_note():
    # power cap all along; thermal from 6 s; HW slowdown from 8 s (idle 0-2 s, validation 2-4, inference 4-12)
    reasons = [(0, SW_POWER_CAP), (6.0, SW_POWER_CAP | HW_THERMAL), (8.0, SW_POWER_CAP | HW_THERMAL | HW_SLOWDOWN)]
    tel, nvml, advance = scripted({"reasons": reasons})
    record = run_phases(tel, advance, [("validation", 2.0), ("inference", 8.0)])
    p = metrics.energy_block(record)["phases"]
    assert p["validation"]["limit_shares"] == {"power_cap": 1.0, "thermal": 0.0, "hw_slowdown": 0.0}
    shares = p["inference"]["limit_shares"]
    assert shares["power_cap"] == 1.0
    assert shares["thermal"] == pytest.approx(0.75, abs=0.02) and shares["hw_slowdown"] == pytest.approx(0.5, abs=0.02)
    notes = list(verdict.slowed_down(SimpleNamespace(energy={"phases": p})))
    assert notes == [(False, "inference pass: thermal slowdown on 75% of samples and HW slowdown on 50% of samples "
                             "(clocks held down; numbers still reported)")]
    assert list(verdict.slowed_down(SimpleNamespace(energy={"phases": {"validation": p["validation"]}}))) == []


def test_a_reading_that_fails_is_switched_off_and_recorded():
    tel, nvml, advance = scripted()
    calls = {"n": 0}

    def flaky(handle, which):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("GPU is lost")
        return 1860

    nvml.nvmlDeviceGetClockInfo = flaky
    record = run_phases(tel, advance, [("inference", 1.0)])
    assert any("sm_clock unavailable" in e and "GPU is lost" in e for e in record.errors)
    assert record.samples[-1].sm_clock_mhz is None and record.samples[-1].power_w == 300.0
    assert metrics.energy_block(record)["phases"]["inference"]["energy_source"] == "counter"


def test_nvml_missing_gives_a_record_without_marks_and_no_energy():
    class Broken(ScriptedNvml):
        def nvmlInit(self):
            raise RuntimeError("Driver Not Loaded")

    clock = FakeClock()
    tel = NvmlTelemetry(0, nvml=Broken(clock), clock=clock, sleep=lambda s: None, thread=False)
    record = run_phases(tel, lambda s: None, [("inference", 1.0)])
    assert record.marks == () and record.counter_missing == "NVML unavailable"
    assert any("Driver Not Loaded" in e for e in record.errors)
    block = metrics.energy_block(record)
    assert block["phases"] == {} and metrics.energy_metrics(block, None, SimpleNamespace(tokens=1, core_s=1.0))[
        "energy_reason"] == "no energy reading for the inference pass"


def test_nvml_telemetry_meets_the_contract_with_its_thread():
    nvml = ScriptedNvml(time.monotonic, power=[(0, 250.0)])
    tel = NvmlTelemetry(0, interval_s=0.02, idle_s=0.1, nvml=nvml)
    record = check_telemetry(tel, work=lambda: time.sleep(0.2))
    assert len(record.samples) >= 20 and nvml.inits == nvml.shutdowns == 1
    block = metrics.energy_block(record)
    assert block["phases"]["inference"]["energy_j"] == pytest.approx(250 * block["phases"]["inference"]["duration_s"],
                                                                     rel=0.01)
    with pytest.raises(RuntimeError, match="one run"):
        tel.__enter__()


def test_exit_stops_the_thread_when_the_body_raises():
    tel = NvmlTelemetry(0, interval_s=0.01, idle_s=0.0, nvml=ScriptedNvml(time.monotonic))
    with pytest.raises(ValueError, match="boom"):
        with tel:
            raise ValueError("boom")
    assert not tel._thread.is_alive() and tel.report().samples
    with pytest.raises(RuntimeError, match="after the telemetry's with-block"):
        NvmlTelemetry(0, nvml=ScriptedNvml(time.monotonic)).report()


def test_run_telemetry_marks_span_phases_and_survives_a_failing_vendor():
    clock = FakeClock()
    spans = Spans()
    marks = []

    class Vendor:
        name = "acme"

        def telemetry(self):
            return SimpleNamespace(__enter__=None, mark=marks.append)

    # a telemetry that cannot even be entered: the run goes on, energy is unavailable with the reason
    class Broken:
        def __enter__(self):
            raise RuntimeError("no sensor")

        def __exit__(self, *exc):
            pass

        def mark(self, phase):
            marks.append(phase)

    vendor = SimpleNamespace(name="acme", telemetry=Broken)
    rt = RunTelemetry(vendor, spans, clock=clock)
    with rt:
        with spans.span("init"):
            clock.t += 1.0
    assert rt.record is None and rt.reason.startswith("telemetry failed to start: RuntimeError: no sensor")
    assert marks == [] and rt.timeline.phases == [("init", 0.0, 1.0)]
    assert metrics.energy_block(rt.record, rt.reason) == {"available": False, "reason": rt.reason}
    none = RunTelemetry(SimpleNamespace(name="cpu"), Spans(), clock=clock)
    assert none.reason == "vendor 'cpu' reports no telemetry (no energy counter or power readings)"


def test_run_telemetry_with_nvml_lines_up_phases_forwards_and_samples(tmp_path: Path):
    clock = FakeClock()
    nvml = ScriptedNvml(clock, power=[(0, 100.0), (1.0, 400.0)])
    tel = None

    def advance(seconds):
        for _ in range(round(seconds / INTERVAL)):
            clock.t += INTERVAL
            tel.sample()

    tel = NvmlTelemetry(0, interval_s=INTERVAL, idle_s=1.0, nvml=nvml, clock=clock, sleep=advance, thread=False)
    spans = Spans()
    rt = RunTelemetry(SimpleNamespace(name="fake", telemetry=lambda: tel), spans, clock=clock)
    with rt:
        with spans.span("inference"):
            cb = rt.wrap("inference", None, log_freq=10)
            for k in range(1, 21):
                advance(0.1)
                cb(k, 20, 0.1 * k, 500 * k)
    tl = rt.timeline
    assert [p[0] for p in tl.phases] == [IDLE_PHASE, "inference"]
    assert tl.phases[0][1:] == pytest.approx((0.0, 1.0)) and tl.phases[1][1:] == pytest.approx((1.0, 3.0))
    xs, ys, width = timeline_png.throughput_series(tl)
    assert width == pytest.approx(0.1) and sum(y * width for y in ys) == pytest.approx(10_000)
    assert max(ys) == pytest.approx(5000.0)
    csv_path = timeline_png.write_telemetry_csv(tmp_path / "telemetry.csv", tl)
    rows = csv_path.read_text().splitlines()
    assert rows[0].split(",") == list(timeline_png.TELEMETRY_COLUMNS) and len(rows) == 1 + len(rt.record.samples)
    assert rows[5].split(",")[1] == IDLE_PHASE and rows[-2].split(",")[1] == "inference"
    block = metrics.energy_block(rt.record)
    assert block["phases"]["inference"]["energy_j"] == pytest.approx(800.0, abs=0.01)
    png = timeline_png.plot_timeline(tmp_path / "timeline.png", tl, "case: device, fp16, scenario optimized", block)
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000


def _result(tpj: float | None, **energy_block) -> dict:
    return {"schema_version": 3, "status": "completed", "case": "llama2_7b_mmlu", "precision": "fp16", "tf32": True,
            "toolkit": "inductor", "vendor": "nvidia", "smoke": False, "limit": None, "synthetic_weights": True,
            "environment": {"device_name": "NVIDIA H200"},
            "metrics": {"p_infer_core": 44000.0, "tokens_per_joule_whole": tpj,
                        "tokens_per_joule_core": None if tpj is None else tpj * 1.01},
            "energy": energy_block}


def test_gate_tokens_per_joule_uses_the_throughput_tolerance(tmp_path: Path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(_result(60.0)))
    b = gate.load_baseline(base)
    assert [e.metric for e in b.expectations][-2:] == ["tokens_per_joule_whole", "tokens_per_joule_core"]
    assert all(e.tol == gate.KINDS["throughput"].default_tol for e in b.expectations[-2:])
    rows = {r["metric"]: r for r in gate.compare(_result(56.0), b)["rows"]}  # -6.7%: beyond 5%
    assert rows["tokens_per_joule_whole"]["verdict"] == "REGRESSION"
    rows = {r["metric"]: r for r in gate.compare(_result(57.5), b)["rows"]}  # -4.2%: within
    assert rows["tokens_per_joule_whole"]["verdict"] == "ok"
    assert {r["metric"]: r for r in gate.compare(_result(None), b)["rows"]}["tokens_per_joule_core"]["verdict"] == "missing"
    # a baseline without energy (a CPU run) gates no energy metric
    base.write_text(json.dumps(_result(None)))
    assert not any(e.metric.startswith("tokens_per_joule") for e in gate.load_baseline(base).expectations)


def test_history_row_and_markdown_carry_the_energy():
    r = _result(60.0, available=True, energy_source="counter", note=None, phases={}, cross_check=None)
    r["metrics"].update(e_val_j=1000.0, e_infer_j=2000.0, avg_power_w=650.0, idle_power_w=80.0)
    row = history.row(r)
    energy_at = history.CSV_COLUMNS.index("e_val_j")
    assert list(history.CSV_COLUMNS[energy_at:energy_at + 7]) == [
        "e_val_j", "e_infer_j", "tokens_per_joule_whole", "tokens_per_joule_core", "avg_power_w", "idle_power_w",
        "energy_source"]
    assert (row["e_infer_j"], row["tokens_per_joule_whole"], row["energy_source"]) == ("2000.0", "60.0", "counter")
    assert markdown.energy_line(r) == ("energy: inference 2,000 J (counter), 60.00 tokens/J whole / 60.60 core, "
                                       "650 W mean (idle 80 W); validation 1,000 J")
    off = {"metrics": {}, "energy": {"available": False, "reason": "vendor 'cpu' reports no telemetry"}}
    assert markdown.energy_line(off) == "energy: not measured (vendor 'cpu' reports no telemetry)"


def test_windows_pair_marks_and_drop_an_open_phase():
    marks = [TelemetryMark(0.0, "a", 1.0), TelemetryMark(1.0, "b", 2.0), TelemetryMark(2.0, None, 3.0),
             TelemetryMark(3.0, "c", 4.0)]
    assert energy.windows(marks) == [("a", 0.0, 1.0, 1.0, 2.0), ("b", 1.0, 2.0, 2.0, 3.0)]
    rec = TelemetryRecord("x", (), marks, 0.1, 0.0, counter_wrap_j=None)
    block = metrics.energy_block(rec)
    assert block["phases"]["a"]["energy_j"] == 1.0 and "c" not in block["phases"]
    assert block["idle_power_w"] is None and block["phases"]["a"]["limit_shares"] is None


def test_each_phase_reports_its_own_memory_peak_and_the_inference_pass_s_is_a_metric():
    """precision fp8: the run's peak is the fp16 validation pass's, the fp8 inference pass's own peak is lower."""
    samples = [TelemetrySample(t, power_w=100.0, mem_used_gib=m)
               for t, m in ((0.5, 1.0), (1.5, 14.0), (2.5, 15.5), (3.5, 9.0), (4.5, 11.25), (5.5, 8.0))]
    marks = [TelemetryMark(0.0, IDLE_PHASE), TelemetryMark(1.0, "validation"), TelemetryMark(3.0, "inference"),
             TelemetryMark(5.0, None)]
    record = TelemetryRecord("test", samples, marks, 1.0, 0.0)
    block = metrics.energy_block(record)
    assert block["phases"]["validation"]["max_mem_used_gib"] == 15.5
    assert block["phases"]["inference"]["max_mem_used_gib"] == 11.25  # the sample after its end is not its
    m = metrics.energy_metrics(block, None, SimpleNamespace(tokens=100, core_s=1.0, whole_s=2.0))
    assert m["mem_infer_gib"] == 11.25
    assert metrics.energy_metrics({"available": False, "reason": "none"}, None, None)["mem_infer_gib"] is None
