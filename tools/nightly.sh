#!/usr/bin/env bash
# The nightly job: run the case, gate it against a baseline, append the history, render the HTML report.
# Usage: tools/nightly.sh   (settings from the environment, see docs/nightly.md; paths relative to the folder
# you call it from)
#   NIGHTLY_DATA_DIR   data_dir of the case                                       (required unless NIGHTLY_SMOKE=1)
#   NIGHTLY_BASELINE   result.json or baseline YAML of this machine               (required)
#   NIGHTLY_HOME       where history.csv, runs/ and report/ live   (default: ./nightly)
#   NIGHTLY_CASE       case name                                    (default: llama2_7b_mmlu)
#   NIGHTLY_VENDOR     vendor name                                  (default: nvidia)
#   NIGHTLY_REPEAT     --repeat N: the gate compares medians and knows the noise (default: 3; 1: off)
#   NIGHTLY_ARGS       extra run_benchmark.py flags, e.g. "--set synthetic_weights=true"
#   NIGHTLY_SMOKE=1    run --smoke instead of the real data (to try the job itself on any machine)
#   NIGHTLY_PYTHON     the Python to run (default: python3; e.g. a virtualenv's bin/python)
# The night's folder is $NIGHTLY_HOME/runs/<UTC stamp>; $NIGHTLY_HOME/latest holds that stamp.
# Each night compiles from an empty inductor/Triton cache (a fresh TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR,
# removed afterwards): compile time is inside the gated p_infer_whole, so every night pays the same cold compile.
# Exit code: the run's (0 pass or NOISY, 1 regression, 2 misconfigured, 3 run failed, 130 interrupted). Every
# night is a history row, a failed or interrupted one too, and the report is rendered whatever happened.
# SIGTERM or SIGINT to this script stops the run (it records the night as interrupted) and ends with 130.
set -uo pipefail
caller="$PWD"
repo="$(cd "$(dirname "$0")/.." && pwd)"
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$caller" "$1" ;; esac; }

: "${NIGHTLY_BASELINE:?set NIGHTLY_BASELINE to a result.json or baseline YAML (docs/nightly.md)}"
baseline="$(abs "$NIGHTLY_BASELINE")"
home="$(abs "${NIGHTLY_HOME:-nightly}")"
case_name="${NIGHTLY_CASE:-llama2_7b_mmlu}"
vendor="${NIGHTLY_VENDOR:-nvidia}"
repeat="${NIGHTLY_REPEAT:-3}"
python="${NIGHTLY_PYTHON:-python3}"
stamp="$(date -u +%Y%m%d-%H%M%S)"
run="$home/runs/$stamp"
mkdir -p "$run" "$home/report" || exit 2
printf '%s\n' "$stamp" > "$home/latest"  # the night's folder under runs/, for a CI step that uploads it

if [ "${NIGHTLY_SMOKE:-0}" = "1" ]; then
  workload=(--smoke)
else
  : "${NIGHTLY_DATA_DIR:?set NIGHTLY_DATA_DIR to the data_dir (or NIGHTLY_SMOKE=1)}"
  workload=(--data_dir "$(abs "$NIGHTLY_DATA_DIR")")
fi

cache="$(mktemp -d)" || exit 2
export TORCHINDUCTOR_CACHE_DIR="$cache/inductor" TRITON_CACHE_DIR="$cache/triton"
child=""
stopped=""
cleanup() { rm -rf "$cache"; }
trap cleanup EXIT
# A signal stops the run through its own handler (it records the night as interrupted), then the job goes on to
# the history and the report; a second signal is passed on as well.
stop() { stopped=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; }
trap stop TERM INT

cd "$repo" || exit 2
# NIGHTLY_ARGS is split on spaces on purpose: it holds several flags.
# shellcheck disable=SC2086
"$python" run_benchmark.py --case "$case_name" --vendor "$vendor" "${workload[@]}" --quiet --repeat "$repeat" \
  --output_dir "$run" --baseline "$baseline" --history "$home/history.csv" ${NIGHTLY_ARGS:-} \
  2> >(trap '' INT TERM; exec tee "$run/stderr.log" >&2) &
child=$!
wait "$child"
code=$?
while kill -0 "$child" 2>/dev/null; do  # a trapped signal ends `wait` early: wait for the run to record its end
  wait "$child"
  code=$?
done
[ -n "$stopped" ] && [ "$code" = 0 ] && code=130
child=""

case $code in
  0) if grep -q "^warning: gate NOISY" "$run/stderr.log" 2>/dev/null; then
       echo "nightly: PASS with a NOISY gate (noise too high to judge; the gate table's notes say why)"
     else
       echo "nightly: PASS"
     fi ;;
  1) echo "nightly: performance regression (gate table above; $run/result.md)" ;;
  2) echo "nightly: misconfigured (the error line above names the file or key)" ;;
  130) echo "nightly: interrupted" ;;
  *) echo "nightly: the run failed (traceback in $run/run.log)" ;;
esac

# The night's row when the run could not append it (refused before it started, or killed): every night is a row.
status=failed
[ "$code" = 130 ] && status=interrupted
error="$(grep -E '^(error|run failed|interrupted):' "$run/stderr.log" 2>/dev/null | tail -n 1)"
[ -z "$error" ] && [ "$code" != 0 ] && [ "$code" != 1 ] && error="exit code $code"
if [ "$code" != 0 ] && [ "$code" != 1 ]; then
  "$python" run_benchmark.py history-add --history "$home/history.csv" --run-dir "$run" --status "$status" \
    --error "$error" >/dev/null || echo "nightly: could not record the night in $home/history.csv" >&2
fi

if [ -s "$home/history.csv" ]; then
  # a report that cannot be written fails a night that passed (exit 2): nothing would be published
  "$python" run_benchmark.py plot --history "$home/history.csv" --out "$home/report" --html || { [ "$code" = 0 ] && code=2; }
fi
exit "$code"
