#!/usr/bin/env bash
# Measures the regression gate's noise rule on this machine (docs/nightly.md, "How the gate was measured"):
#   1. a smoke baseline: one run of the test vendor tests/vendors/slowdown (the cpu vendor with a test-only
#      knob) with --repeat $REPEAT;
#   2. $NIGHTS unchanged nights through tools/nightly.sh (NIGHTLY_SMOKE=1, the same vendor, --repeat $REPEAT):
#      none may be a REGRESSION (a NOISY gate is not one: exit 0);
#   3. $NIGHTS nights with the knob on (`--set slowdown=$SLOWDOWN`: every inference forward waits that fraction
#      of its own time longer), in the same history: each should be a REGRESSION (exit 1).
# Every night is recorded with its exit code, gate status, the gated drops and the load average; the summary
# (OUT/summary.txt) ends with the tally. Usage: tools/gate_noise_check.sh [OUT]  (default /tmp/gate_noise_check;
# OUT must not exist). NIGHTS=20 SLOWDOWN=0.15 REPEAT=3 by default; ~15 s a night on a 2-core VM.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-/tmp/gate_noise_check}"
nights="${NIGHTS:-20}"
slowdown="${SLOWDOWN:-0.15}"
repeat="${REPEAT:-3}"
[ -e "$out" ] && { echo "gate_noise_check: $out exists; give a new folder" >&2; exit 2; }
mkdir -p "$out" || exit 2
out="$(cd "$out" && pwd)"
export LLAMA_BENCH_VENDOR_PATH="$repo/tests/vendors${LLAMA_BENCH_VENDOR_PATH:+:$LLAMA_BENCH_VENDOR_PATH}"
export NIGHTLY_SMOKE=1 NIGHTLY_VENDOR=slowdown NIGHTLY_REPEAT="$repeat" NIGHTLY_HOME="$out/home"
export NIGHTLY_BASELINE="$out/baseline/result.json"

cd "$repo" || exit 2
echo "baseline run: load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
python3 run_benchmark.py --smoke --vendor slowdown --repeat "$repeat" --quiet --output_dir "$out/baseline" \
  > "$out/baseline.log" 2>&1 || { echo "gate_noise_check: the baseline run failed ($out/baseline.log)" >&2; exit 3; }

printf 'kind\tnight\texit\tload_before\tload_after\trun_dir\n' > "$out/nights.tsv"
for kind in unchanged slowed; do
  args=""
  [ "$kind" = slowed ] && args="--set slowdown=$slowdown"
  for i in $(seq 1 "$nights"); do
    before="$(cut -d' ' -f1 /proc/loadavg)"
    NIGHTLY_ARGS="$args" tools/nightly.sh > "$out/$kind-$i.log" 2>&1
    code=$?
    after="$(cut -d' ' -f1 /proc/loadavg)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$i" "$code" "$before" "$after" \
      "$out/home/runs/$(cat "$out/home/latest")" >> "$out/nights.tsv"
    echo "$kind night $i: exit $code, load $before -> $after"
  done
done

python3 - "$out" <<'EOF' | tee "$out/summary.txt"
import csv, json, sys
from pathlib import Path

out = Path(sys.argv[1])
nights = list(csv.DictReader(open(out / "nights.tsv"), delimiter="\t"))
tally = {}
print("kind       night exit gate        load      p_infer_core            p_infer_whole           p_val_core "
      "  host wait infer")
for n in nights:
    try:
        r = json.loads((Path(n["run_dir"]) / "result.json").read_text())
    except (OSError, ValueError):
        r = {}
    gate = r.get("gate") or {}
    rows = {x["metric"]: x for x in gate.get("rows", [])}

    def cell(metric):
        x = rows.get(metric)
        if not x or x.get("change") is None:
            return "n/a".ljust(23)
        allowed = x.get("allowed") or x.get("tolerance")
        return f"{100 * x['change']:+6.1f}% {x['verdict']:<10} /{100 * allowed:4.1f}%".ljust(23)

    wait = ((rows.get("p_infer_core") or {}).get("host_wait") or {}).get("run")
    print(f"{n['kind']:<10} {n['night']:>5} {n['exit']:>4} {gate.get('status', r.get('status', '?')):<11} "
          f"{n['load_before']:>4}-{n['load_after']:<4} {cell('p_infer_core')} {cell('p_infer_whole')} "
          f"{cell('p_val_core')} {'n/a' if wait is None else f'{100 * wait:.1f}%'}")
    key = (n["kind"], {"0": "pass", "1": "regression"}.get(n["exit"], f"exit {n['exit']}"))
    tally[key] = tally.get(key, 0) + 1
def noisy(kind):
    return sum(1 for n in nights if n["kind"] == kind and status.get(n["run_dir"]) == "NOISY")


status = {}
for n in nights:
    try:
        status[n["run_dir"]] = (json.loads((Path(n["run_dir"]) / "result.json").read_text()).get("gate") or {}).get("status")
    except (OSError, ValueError):
        pass
count = lambda kind: sum(v for (k, _), v in tally.items() if k == kind)  # noqa: E731
other = ", ".join(f"{k} {o}: {v}" for (k, o), v in sorted(tally.items()) if o not in ("pass", "regression"))
print(f"unchanged nights: {count('unchanged')}, false regressions (exit 1): {tally.get(('unchanged', 'regression'), 0)}, "
      f"gate NOISY (exit 0): {noisy('unchanged')}")
print(f"slowed nights: {count('slowed')}, caught (exit 1): {tally.get(('slowed', 'regression'), 0)}, "
      f"gate NOISY (exit 0): {noisy('slowed')}; other exit codes: {other or 'none'}")
EOF
