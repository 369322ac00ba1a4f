#!/usr/bin/env bash
# Acceptance of the reference scenario (issue 14) on one NVIDIA GPU: saved random fp16 Llama-2-7B weights (real
# files, loaded with from_pretrained: no synthetic_weights), the first 5 questions of every subject.
#   1. builds the weights once with save_pretrained into a git-ignored folder, beside the Llama-2 tokenizer
#      files and the MMLU data of SOURCE;
#   2. runs --scenario reference twice and the optimized scenario once (each step is skipped when its
#      result.json says completed, so the script can be re-run after a call limit cut it short);
#   3. prints the agreement of the two reference runs' validation predictions (must be 100%) and the rows.
#
# Usage: tools/reference_acceptance.sh SOURCE [WORK]
#   SOURCE  either the tests' shared data folder (mmlu/data/ and llama2_tokenizer/) or a FlagPerf data_dir
#           (mmlu_dataset/data/ and llama2_7b_hf/ holding at least the tokenizer files)
#   WORK    default .devdata/reference_acceptance (git-ignored): data/ (weights ~13 GB), runs/
# Environment: VENDOR (default nvidia), LIMIT (default 5), EXTRA (more run_benchmark.py flags, split on spaces),
#   OPT_EXTRA (flags for the optimized run only, e.g. "--repeat 3" for its first-pass vs later-pass figures),
#   TINY=1 (a 2-layer model of width 64 instead of the 7B shape: checks the script itself on any machine,
#   e.g. TINY=1 VENDOR=cpu LIMIT=1 tools/reference_acceptance.sh ../shared/data /tmp/ra).
# Exit code: 0 when the two reference runs' validation predictions agree on every question, 1 when not,
# another code when a step failed.
set -euo pipefail
cd "$(dirname "$0")/.."

source_dir="${1:?usage: tools/reference_acceptance.sh SOURCE [WORK] (see the header of this script)}"
work="${2:-.devdata/reference_acceptance}"
vendor="${VENDOR:-nvidia}"
limit="${LIMIT:-5}"
data="$work/data"
runs="$work/runs"
mkdir -p "$data" "$runs"

if [ -d "$source_dir/mmlu/data" ]; then
  mmlu="$source_dir/mmlu/data"; tokenizer="$source_dir/llama2_tokenizer"
else
  mmlu="$source_dir/mmlu_dataset/data"; tokenizer="$source_dir/llama2_7b_hf"
fi
for f in tokenizer.json tokenizer_config.json; do
  [ -f "$tokenizer/$f" ] || { echo "error: $tokenizer/$f not found (SOURCE: see the header of $0)" >&2; exit 2; }
done
[ -d "$mmlu/test" ] || { echo "error: $mmlu/test not found (SOURCE: see the header of $0)" >&2; exit 2; }
mkdir -p "$data/mmlu_dataset"
ln -sfn "$(cd "$mmlu" && pwd)" "$data/mmlu_dataset/data"

weights="$data/llama2_7b_hf"
if [ ! -f "$weights/.complete" ]; then
  echo "== building random fp16 Llama-2-7B weights in $weights (save_pretrained; once)"
  rm -rf "$weights"
  TINY="${TINY:-0}" python3 - "$weights" "$tokenizer" <<'EOF'
import os
import shutil
import sys
from pathlib import Path

import torch
import transformers

from benchmarks.llama2_7b_mmlu.model import LLAMA2_7B

out, tok = Path(sys.argv[1]), Path(sys.argv[2])
shape = dict(LLAMA2_7B)
if os.environ["TINY"] == "1":
    shape.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4)
torch.manual_seed(0)
device = "cuda" if torch.cuda.is_available() else "cpu"
with torch.device(device):  # random init on the GPU: seconds, not minutes
    lm = transformers.LlamaForCausalLM._from_config(transformers.LlamaConfig(**shape), dtype=torch.float16)
lm.save_pretrained(out)
for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
    if (tok / f).is_file():
        shutil.copy2(tok / f, out / f)
(out / ".complete").write_text(f"random fp16 weights of {shape}, torch.manual_seed(0), save_pretrained\n")
print(f"saved {sum(p.numel() for p in lm.parameters()) / 1e9:.2f}B parameters to {out}")
EOF
fi

completed() { python3 -c "import json,sys; sys.exit(json.load(open(sys.argv[1])).get('status') != 'completed')" "$1" 2>/dev/null; }
run() {  # name, scenario, flags for this run only
  local dir="$runs/$1"
  if completed "$dir/result.json"; then echo "== $1: done already ($dir)"; return; fi
  echo "== $1: --scenario $2 --limit $limit"
  # EXTRA is split on spaces on purpose: it holds several flags.
  # shellcheck disable=SC2086
  python3 run_benchmark.py --case llama2_7b_mmlu --vendor "$vendor" --data_dir "$data" --scenario "$2" \
    --limit "$limit" --output_dir "$dir" --overwrite --quiet ${EXTRA:-} ${3:-} >"$dir.out" 2>&1 \
    || { code=$?; tail -5 "$dir.out"; exit "$code"; }
}
mkdir -p "$runs"
run reference_1 reference
run reference_2 reference
run optimized optimized "${OPT_EXTRA:-}"

echo "== validation predictions, reference run 1 vs run 2 (must be 100%)"
set +e
python3 run_benchmark.py compare-predictions "$runs/reference_1/predictions.jsonl" \
  "$runs/reference_2/predictions.jsonl" --field pred_val --min-agreement 1.0 --show 5
agree=$?
echo "== inference predictions, reference run 1 vs run 2 (for information)"
python3 run_benchmark.py compare-predictions "$runs/reference_1/predictions.jsonl" \
  "$runs/reference_2/predictions.jsonl" --field pred_infer --show 0
set -e

echo "== rows"
python3 - "$runs" <<'EOF'
import json
import sys
from pathlib import Path

runs = Path(sys.argv[1])
cols = ("run", "scenario", "load_path", "e2e s", "p_val_whole", "p_val_core", "p_infer_whole", "p_infer_core",
        "MFU", "compile s", "warm-up s (out of core)", "graph recordings (timed)", "acc infer/val", "mem GiB",
        "verdict")
print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
for name in ("reference_1", "reference_2", "optimized"):
    r = json.loads((runs / name / "result.json").read_text())
    t = r["toolkit_report"]
    m, d = r["metrics"], t["details"]
    f = lambda v, spec=",.0f": "n/a" if v is None else format(v, spec)
    print("| " + " | ".join([
        name, r["scenario"], r["load_path"], f(m["e2e_time"]), f(m["p_val_whole"]), f(m["p_val_core"]),
        f(m["p_infer_whole"]), f(m["p_infer_core"]), f(m["mfu"], ".1%"), f(m["compile_time"], ".1f"),
        f((d.get("reference_warmup") or {}).get("untimed_s"), ".1f"), str(t["graph_recordings"] if t["graph_recordings"] is not None else "n/a"),
        f"{m['infer_acc']:.1%}/{m['val_acc']:.1%}", f(m["mem_used_gib"], ".1f"), r["verdict"]["status"]]) + " |")
print()
for name in ("reference_1", "reference_2", "optimized"):
    r = json.loads((runs / name / "result.json").read_text())
    print(f"{name}: {r['environment']['device_name']}, torch {r['environment']['torch']}, transformers "
          f"{r['environment']['transformers']}, questions {r['counts']['questions']}, tokens {r['counts']['tokens']}")
    print(f"  Finish Info: {r['reference_record']!r}")
    for k in (r.get("repeat") or {}).get("runs", []):  # OPT_EXTRA="--repeat N": the first pass against later ones
        print(f"  repeat run {k['run']}: " + ", ".join(
            f"{key} {k[key]:,.0f}" for key in ("p_val_pass", "p_val_core", "p_infer_pass", "p_infer_core")
            if k.get(key) is not None))
EOF
exit "$agree"
