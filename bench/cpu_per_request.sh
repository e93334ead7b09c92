#!/usr/bin/env bash
# Server CPU per request of `GET /v2/customers/{id}` for two builds of `clientele`, side by side.
#
#   bench/cpu_per_request.sh BEFORE_BIN AFTER_BIN [--rounds N] [--duration SECS] [--log FILTER]
#                            [--log-before FILTER]
#
# Both serve one seeded SQLite file (seeded by this tree's `examples/seed`,
# release build); rounds alternate between them (wrk -t1 -c32 on 127.0.0.1),
# and each round's CPU is read from /proc/PID/stat (user + system ticks)
# before and after. Prints µs of server CPU per request, per round and median.
# --log sets CLIENTELE_LOG for both (default `info`: the request log on, as the
# README starts the server; stderr goes to /dev/null). --log-before gives the
# BEFORE server a filter of its own: with one binary twice, it measures what a
# log target costs (for example the per-request span, target clientele::http::edge:
# --log-before 'info,clientele::http::edge=warn').
set -euo pipefail
cd "$(dirname "$0")/.."
before=$1 after=$2; shift 2
rounds=5 duration=10 log=info log_before=
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --log-before) log_before=$2; shift 2 ;;
    *) echo "usage: bench/cpu_per_request.sh BEFORE_BIN AFTER_BIN [--rounds N] [--duration SECS] [--log FILTER] [--log-before FILTER]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --example seed
work=$(mktemp -d) pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"' EXIT
db="sqlite://$work/bench.db"
eval "$(target/release/examples/seed "$db" 10000)"
start() { # port binary filter
  CLIENTELE_LOG=$3 "$2" serve --database-url "$db" --listen "127.0.0.1:$1" --no-bootstrap >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/healthz" && return 0; sleep 0.05; done
  echo "$2 did not start" >&2; exit 1
}
start 18191 "$before" "${log_before:-$log}"; start 18192 "$after" "$log"
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
declare -A per
for round in $(seq "$rounds"); do
  for side in before after; do
    if [ $side = before ]; then port=18191 pid=${pids[0]}; else port=18192 pid=${pids[1]}; fi
    t0=$(ticks "$pid")
    out=$(wrk -t1 -c32 -d"${duration}s" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/v2/customers/$CUSTOMER_ID")
    t1=$(ticks "$pid")
    requests=$(echo "$out" | awk '/requests in/ { print $1 }')
    us=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    echo "round $round $side: $requests requests, $us µs CPU per request" >&2
    per[$side]+="$us"$'\n'
  done
done
for side in before after; do
  median=$(printf '%s' "${per[$side]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p")
  filter=$log; [ $side = before ] && filter=${log_before:-$log}
  echo "$side: median $median µs of server CPU per request (CLIENTELE_LOG=$filter)"
done
