#!/bin/sh
# Profiles one proxy under the load bench's soak load with perf, and prints the hottest
# functions (self time) and the proxy's CPU per request.
#
#   benches/load/profile.sh [2k|cc] [agw|minproxy|team|team-redis] [CONCURRENCY] [SECONDS]
#
# Defaults: cc agw 32 8. Needs perf and the release binaries:
#   cargo build --release -p agw-bin -p agw-benches
# The perf data stays in target/loadbench-perf-BODY-PROXY.data for `perf report -i`.
# On a shared machine, LOADBENCH_WRAP="chrt -r 10" runs the bench and its servers ahead of
# other work (as the README's figures were taken).
set -eu

body=${1:-cc}
via=${2:-agw}
concurrency=${3:-32}
seconds=${4:-8}

root=$(cd "$(dirname "$0")/../.." && pwd)
bench="$root/target/release/loadbench"
data="$root/target/loadbench-perf-$body-$via.data"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

[ -x "$bench" ] || { echo "build first: cargo build --release -p agw-bin -p agw-benches" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 2; }

# The soak runs a few seconds longer than the recording: warm-up before, slack after.
${LOADBENCH_WRAP:-} "$bench" --soak "$body" --soak-via "$via" --soak-c "$concurrency" \
    --soak-secs $((seconds + 4)) 2>"$log" >/dev/null &
bench_pid=$!

pid=
for _ in $(seq 1 100); do
    pid=$(sed -n "s/^loadbench: $via pid \([0-9]*\):.*/\1/p" "$log")
    [ -n "$pid" ] && break
    sleep 0.1
done
[ -n "$pid" ] || { cat "$log" >&2; kill "$bench_pid" 2>/dev/null; exit 1; }

sleep 2
perf record -F 4999 -g --call-graph dwarf,16384 -o "$data" -p "$pid" -- sleep "$seconds" 2>/dev/null
wait "$bench_pid"

grep 'requests/s' "$log" | tail -n 3
perf report -i "$data" --no-children --percent-limit 0.8 --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | cut -c1-160
