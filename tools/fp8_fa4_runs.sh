#!/usr/bin/env bash
# Issue 26's runs on one card, on the same questions, each with a cold compile cache (an empty compile_cache_dir):
#   fp16      the nvidia YAML as committed (the baseline, re-measured here)
#   fp16-fa4  + --set packed_attention=fa4           (skipped, with the reason, where fa4 cannot run)
#   fp8       + --set precision=fp8, with the faster of flash / fa4 at fp16
# then prints one table (tools/fp8_fa4_table.py). Random Llama-2-7B weights (synthetic_weights), energy counter on.
#
#   tools/fp8_fa4_runs.sh OUT_DIR [LIMIT|full] [RUNS]    e.g. tools/fp8_fa4_runs.sh /tmp/runs 30
#   RUNS: the runs to make, default "fp16 fp16-fa4 fp8"; "fp8" alone for the full-case fp8 row.
# Data: $DATA (default .devdata/data: llama2_7b_hf/ with the tokenizer files, mmlu_dataset/data/). Before
# fp16-fa4 it waits up to $FA4_WAIT_S seconds (default 0) for the file $FA4_READY (an install still running).
# Behind the device tool's 10-minute limit: tools/gpu_poll.sh runs 580 tools/fp8_fa4_runs.sh /tmp/runs 30
set -uo pipefail
cd "$(dirname "$0")/.."
out=$1
limit=${2:-30}
runs=${3:-fp16 fp16-fa4 fp8}
data=${DATA:-.devdata/data}
mkdir -p "$out"
limit_args=()
[ "$limit" != full ] && limit_args=(--limit "$limit")

one() {  # one() NAME [--set ...]: one run into $out/NAME, its compile cache empty
  local name=$1; shift
  local cache=/tmp/compile-cache-$name
  rm -rf "$cache" && mkdir -p "$cache"
  echo "== $name: $* ($(date -u +%H:%M:%S))"
  python3 run_benchmark.py --case llama2_7b_mmlu --vendor nvidia --data_dir "$data" --set synthetic_weights=true \
    "${limit_args[@]}" --quiet --output_dir "$out/$name" --overwrite --set compile_cache_dir="$cache" "$@" \
    > "$out/$name.stdout.log" 2>&1
  local code=$?
  echo "== $name: exit $code ($(date -u +%H:%M:%S))"
  tail -n 3 "$out/$name.stdout.log"
}

attention=flash
for run in $runs; do
  case $run in
    fp16) one fp16 ;;
    fp16-fa4)
      for _ in $(seq 1 "${FA4_WAIT_S:-0}"); do [ -e "${FA4_READY:-/nonexistent}" ] && break; sleep 1; done
      if python3 -c "import sys; from vendors.nvidia.ragged import fa4_problem; p = fa4_problem(); print(p or 'fa4 ok'); sys.exit(bool(p))"; then
        python3 tools/fp8_fa4_check.py 2>&1 | tail -n 4
        one fp16-fa4 --set packed_attention=fa4
      fi ;;
    fp8)
      attention=$(python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
rate = {}
for name, kernel in (("fp16", "flash"), ("fp16-fa4", "fa4")):
    f = Path(sys.argv[1]) / name / "result.json"
    if f.is_file():
        r = json.loads(f.read_text())
        if r.get("status") == "completed":
            rate[kernel] = r["metrics"]["p_infer_core"]
print(max(rate, key=rate.get) if rate else "flash")
PY
)
      one fp8 --set precision=fp8 --set packed_attention="$attention" ;;
  esac
done
python3 tools/fp8_fa4_table.py "$out"
