#!/usr/bin/env bash
# Issue 17's GPU verification (run on an H200 on 2026-12-01: docs/results/README.md, session 7). On an H200 with the CUDA build
# of torch, the requirements, pynvml (nvidia-ml-py) and the data in .devdata/data (see docs/results/README.md):
#
#   tools/energy_check.sh [OUT_DIR]     (default docs/results/<today>-h200-fp16-energy)
#
# 1. the vendor contract's telemetry test on the real NVML;
# 2. the full case, fp16, the nvidia YAML as committed (the optimized scenario), random weights;
# 3. checks: energy from the counter for every phase, e_val_j / e_infer_j / tokens_per_joule / avg_power_w
#    / idle_power_w present, the inference pass's counter energy and integrated sampled power within 5%,
#    timeline.png and telemetry.csv written; prints the figures for docs/results/README.md.
# The full run takes ~14 min: behind the device tool's 10-minute call limit run it through tools/gpu_poll.sh,
#   tools/gpu_poll.sh energy 580 tools/energy_check.sh      (then: tools/gpu_poll.sh energy 580, until DONE)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/results/$(date +%Y-%m-%d)-h200-fp16-energy}
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,driver_version --format=csv
python3 -m pytest -q tests/contract/test_vendor_contract.py --vendor nvidia -k telemetry
python3 run_benchmark.py --vendor nvidia --data_dir .devdata/data --set synthetic_weights=true \
  --output_dir "$out" --overwrite 2>&1 | tee "$out.stdout.log"
mv "$out.stdout.log" "$out/stdout.log"
python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
r = json.loads((out / "result.json").read_text())
e, m = r["energy"], r["metrics"]
assert r["status"] == "completed" and e["available"], e
assert e["energy_source"] == "counter", f"energy not from the counter: {e['note']}"
for key in ("e_val_j", "e_infer_j", "tokens_per_joule_whole", "tokens_per_joule_core", "avg_power_w", "idle_power_w"):
    assert m[key] is not None, key
c = e["cross_check"]
print(f"cross-check inference: counter {c['counter_j']:,.0f} J, integrated power {c['integrated_power_j']:,.0f} J, "
      f"{100 * c['rel_diff']:+.2f}% (tolerance 5%): {'agrees' if c['agrees'] else 'DISAGREES'}")
for name, p in e["phases"].items():
    s = p["limit_shares"] or {}
    print(f"{name:>11}: {p['duration_s']:7.1f} s {p['energy_j'] or 0:11,.0f} J mean {p['mean_power_w'] or 0:5.0f} W "
          f"max {p['max_power_w'] or 0:5.0f} W SM {p['sm_clock_mhz'] or 0:5.0f} MHz {p['temperature_c'] or 0:3.0f} C "
          f"power cap {100 * s.get('power_cap', 0):3.0f}% thermal {100 * s.get('thermal', 0):3.0f}% "
          f"HW {100 * s.get('hw_slowdown', 0):3.0f}% ({p['samples']} samples)")
print(f"tokens/J whole {m['tokens_per_joule_whole']:.2f} core {m['tokens_per_joule_core']:.2f}; "
      f"avg {m['avg_power_w']:.0f} W, idle {m['idle_power_w']:.0f} W; p_infer_core {m['p_infer_core']:,.0f}")
assert (out / "timeline.png").stat().st_size > 20_000 and (out / "telemetry.csv").is_file()
assert c["agrees"], "counter and integrated sampled power differ by more than 5%"
print("energy check: OK")
PY
