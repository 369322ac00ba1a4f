#!/usr/bin/env bash
# Data-parallel scaling on one host: the optimized case (vendor YAML, random 7B weights, full MMLU, fp16) on
# 1 GPU, then on N GPUs (default 2) with the same code; prints the ratios and checks the issue-16 targets.
#   tools/scaling_check.sh DATA_DIR [N] [extra run_benchmark.py args...]
# VENDOR=cpu (with --smoke) tries the script itself on a CPU. Needs DATA_DIR/llama2_7b_hf (tokenizer + config.json) and DATA_DIR/mmlu_dataset/data. Output: outputs/scaling-<stamp>/
set -euo pipefail
DATA=${1:?usage: tools/scaling_check.sh DATA_DIR [N] [args...]}
N=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
OUT=outputs/scaling-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
ARGS=(--case llama2_7b_mmlu --vendor "${VENDOR:-nvidia}" --data_dir "$DATA" --set synthetic_weights=true --set precision=fp16 --quiet "$@")
echo "1 GPU:  python run_benchmark.py ${ARGS[*]} --output_dir $OUT/gpu1"
/usr/bin/time -f "%e" -o "$OUT/gpu1.wall" python run_benchmark.py "${ARGS[@]}" --output_dir "$OUT/gpu1" | tee "$OUT/gpu1.txt"
echo "$N GPUs: torchrun --standalone --nproc_per_node $N run_benchmark.py ${ARGS[*]} --output_dir $OUT/gpu$N"
/usr/bin/time -f "%e" -o "$OUT/gpu$N.wall" python -m torch.distributed.run --standalone --nproc_per_node "$N" run_benchmark.py "${ARGS[@]}" \
    --output_dir "$OUT/gpu$N" | tee "$OUT/gpu$N.txt"
python - "$OUT" "$N" <<'PY'
import json, sys
from pathlib import Path
out, n = Path(sys.argv[1]), int(sys.argv[2])
one, many = (json.loads((out / f"gpu{k}" / "result.json").read_text()) for k in (1, n))
walls = [float((out / f"gpu{k}.wall").read_text().split()[-1]) for k in (1, n)]
print(f"\n| metric | 1 GPU | {n} GPUs | ratio | target |\n|---|---|---|---|---|")
ok = True
for key, target in (("p_infer_core", 0.95 * n), ("p_val_core", 0.95 * n), ("p_infer_whole", None),
                    ("p_val_whole", None), ("e2e_time", 0.55 if n == 2 else None), ("mfu", None)):
    a, b = one["metrics"][key], many["metrics"][key]
    ratio = b / a if a and b is not None else None
    if target is not None and ratio is not None:
        good = ratio <= target if key == "e2e_time" else ratio >= target
        ok &= good
        want = ("<= " if key == "e2e_time" else ">= ") + f"{target:.2f}" + (" ok" if good else " MISSED")
    else:
        want = ""
    fmt = lambda v: "n/a" if v is None else f"{v:,.3f}" if key == "mfu" else f"{v:,.1f}"
    print(f"| {key} | {fmt(a)} | {fmt(b)} | {'n/a' if ratio is None else f'{ratio:.3f}'} | {want} |")
print(f"| wall s (launcher included) | {walls[0]:.0f} | {walls[1]:.0f} | {walls[1] / walls[0]:.3f} | |")
for k, r in (("1", one), (str(n), many)):
    print(f"{k}: verdict {r['verdict']['status']}; accuracy infer {r['metrics']['infer_acc']}; "
          f"hosts {(r.get('distributed') or {}).get('hosts', ['-'])}; {r['environment']['device_name']}; "
          f"torch {r['environment']['torch']}, cuda {r['environment']['cuda']}, driver {r['environment']['driver']}")
same = [json.loads(l) for l in (out / "gpu1" / "predictions.jsonl").read_text().splitlines()] == \
       [json.loads(l) for l in (out / f"gpu{n}" / "predictions.jsonl").read_text().splitlines()]
print(f"predictions equal: {same}")
print("targets met" if ok else "targets MISSED")
sys.exit(0 if ok else 1)
PY
