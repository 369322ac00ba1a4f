#!/usr/bin/env bash
# Start a long command in the background once (by tag), then wait up to $2 seconds for it, printing its log tail.
# Lets one measurement outlive the device tool's per-call limit: call again with the same tag to keep waiting.
# usage: tools/gpu_poll.sh TAG WAIT_S [command...]   (the command runs only on the first call for TAG)
set -u
tag=$1; wait_s=$2; shift 2
dir=/tmp/runs/$tag; mkdir -p "$dir"
if [ $# -gt 0 ] && [ ! -e "$dir/started" ]; then
  touch "$dir/started"
  setsid nohup bash -c "$* ; echo \$? > $dir/rc" > "$dir/log" 2>&1 < /dev/null &
fi
for _ in $(seq 1 "$wait_s"); do [ -e "$dir/rc" ] && break; sleep 1; done
tail -c 6000 "$dir/log"; echo; [ -e "$dir/rc" ] && echo "DONE rc=$(cat $dir/rc)" || echo "STILL RUNNING"
