#!/usr/bin/env bash
# The nightly job: run the case, gate it against a baseline, append the history, render the HTML report.
# Usage: tools/nightly.sh   (settings from the environment, see docs/nightly.md)
#   NIGHTLY_DATA_DIR   data_dir with llama2_7b_hf/ and mmlu_dataset/data/        (required unless NIGHTLY_SMOKE=1)
#   NIGHTLY_BASELINE   result.json or baseline YAML of this machine               (required)
#   NIGHTLY_HOME       where history.csv, runs/ and report/ live   (default: ./nightly)
#   NIGHTLY_VENDOR     vendor name                                  (default: nvidia)
#   NIGHTLY_ARGS       extra run_benchmark.py flags, e.g. "--repeat 3 --set synthetic_weights=true"
#   NIGHTLY_SMOKE=1    run --smoke instead of the real data (to try the job itself on any machine)
# Exit code: the run's (0 pass, 1 regression, 2 misconfigured, 3 run failed, 130 interrupted); the report is
# rendered whatever happened, from the runs recorded so far, so a failing night still publishes its page.
set -uo pipefail
cd "$(dirname "$0")/.."

: "${NIGHTLY_BASELINE:?set NIGHTLY_BASELINE to a result.json or baseline YAML (docs/nightly.md)}"
home="${NIGHTLY_HOME:-nightly}"
vendor="${NIGHTLY_VENDOR:-nvidia}"
stamp="$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$home/runs" "$home/report"

if [ "${NIGHTLY_SMOKE:-0}" = "1" ]; then
  workload=(--smoke)
else
  : "${NIGHTLY_DATA_DIR:?set NIGHTLY_DATA_DIR to the data_dir (or NIGHTLY_SMOKE=1)}"
  workload=(--data_dir "$NIGHTLY_DATA_DIR")
fi

# NIGHTLY_ARGS is split on spaces on purpose: it holds several flags.
# shellcheck disable=SC2086
python3 run_benchmark.py --case llama2_7b_mmlu --vendor "$vendor" "${workload[@]}" --quiet \
  --output_dir "$home/runs/$stamp" --baseline "$NIGHTLY_BASELINE" --history "$home/history.csv" \
  ${NIGHTLY_ARGS:-}
code=$?
case $code in
  0) echo "nightly: PASS" ;;
  1) echo "nightly: performance regression (gate table above; $home/runs/$stamp/result.md)" ;;
  2) echo "nightly: misconfigured (the error line above names the file or key)" ;;
  130) echo "nightly: interrupted" ;;
  *) echo "nightly: the run failed (traceback in $home/runs/$stamp/run.log)" ;;
esac

if [ -s "$home/history.csv" ]; then
  # a report that cannot be written fails a night that passed (exit 2): nothing would be published
  python3 run_benchmark.py plot --history "$home/history.csv" --out "$home/report" --html || { [ "$code" = 0 ] && code=2; }
fi
exit "$code"
