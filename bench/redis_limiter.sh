#!/usr/bin/env bash
# The Redis limiter against the hello world, for one or more builds of `examples/bench_server`, in one run.
#
#   bench/redis_limiter.sh [--rounds N] [--duration SECS] [--connections C] [BENCH_SERVER_BIN[:LIMITER]...]
#
# Without BIN, measures this tree's release build. Each round runs, back to
# back, `wrk -t1 -cC -dSECS` against the hello world and then against
# `bench_server DB ADDR LIMITER` of each BIN (LIMITER: redis unless given as
# BIN:memory or BIN:off, to compare with counting in memory or not at all;
# all on 127.0.0.1, the Redis at
# $CLIENTELE_BENCH_REDIS_URL, default redis://127.0.0.1:6379), so load from
# anything else on the machine falls on every target alike. Prints, per round
# and as medians: requests/s, the ratio to that round's hello world, and µs of
# CPU per request of the server and of redis-server (from /proc/PID/stat; the
# latter only when redis-server runs on this machine and its PID is readable).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 duration=10 connections=32 bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    -*) echo "usage: bench/redis_limiter.sh [--rounds N] [--duration SECS] [--connections C] [BENCH_SERVER_BIN[:LIMITER]...]" >&2; exit 2 ;;
    *) bins+=("$1"); shift ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --example hello --example seed --example bench_server
[ ${#bins[@]} -gt 0 ] || bins=(target/release/examples/bench_server)
redis_url=${CLIENTELE_BENCH_REDIS_URL:-redis://127.0.0.1:6379}
redis_pid=$(redis-cli -u "$redis_url" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')
[ -n "$redis_pid" ] && [ -r "/proc/$redis_pid/stat" ] || redis_pid=''

work=$(mktemp -d) pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"' EXIT
db="sqlite://$work/bench.db"
eval "$(target/release/examples/seed "$db" 10000)"
start() { # port command...
  local port=$1; shift
  CLIENTELE_LOG=warn "$@" >"$work/$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0; sleep 0.05; done
  echo "$* did not start:" >&2; cat "$work/$port.log" >&2; exit 1
}
start 18281 target/release/examples/hello 127.0.0.1:18281
labels=("hello world") urls=("http://127.0.0.1:18281/") server_pids=("${pids[0]}")
for i in "${!bins[@]}"; do
  port=$((18282 + i)) bin=${bins[$i]%:*} limiter=redis
  [[ ${bins[$i]} == *:* ]] && limiter=${bins[$i]##*:}
  start "$port" "$bin" "$db" "127.0.0.1:$port" "$limiter" "$redis_url"
  labels+=("${bins[$i]}") urls+=("http://127.0.0.1:$port/v2/customers/$CUSTOMER_ID") server_pids+=("${pids[-1]}")
done

ticks() { if [ -n "$1" ]; then awk '{ print $14 + $15 }' "/proc/$1/stat"; else echo 0; fi; }
hz=$(getconf CLK_TCK)
declare -A rows
for round in $(seq "$rounds"); do
  baseline=
  for i in "${!labels[@]}"; do
    args=()
    [ "$i" -gt 0 ] && args=(-H "Authorization: Bearer $TOKEN")
    s0=$(ticks "${server_pids[$i]}") r0=$(ticks "$redis_pid")
    out=$(wrk -t1 -c"$connections" -d"${duration}s" "${args[@]}" "${urls[$i]}")
    s1=$(ticks "${server_pids[$i]}") r1=$(ticks "$redis_pid")
    if echo "$out" | grep -q "Non-2xx"; then echo "${labels[$i]}: wrk saw error responses:" >&2; echo "$out" >&2; exit 1; fi
    requests=$(echo "$out" | awk '/requests in/ { print $1 }')
    rps=$(echo "$out" | awk '/^Requests\/sec:/ { printf "%d", $2 }')
    [ -n "$baseline" ] || baseline=$rps
    row=$(awk -v rps="$rps" -v base="$baseline" -v s="$((s1 - s0))" -v r="$((r1 - r0))" -v hz="$hz" -v n="$requests" \
      'BEGIN { printf "%d %.2f %.1f %.1f", rps, rps / base, s / hz * 1e6 / n, r / hz * 1e6 / n }')
    read -r rps ratio server_us redis_us <<<"$row"
    echo "round $round: ${labels[$i]}: $rps req/s, ${ratio}x, server $server_us µs/request, redis-server $redis_us µs/request" >&2
    rows[$i]+="$row"$'\n'
  done
done
echo "wrk -t1 -c$connections -d${duration}s, median of $rounds rounds (each column on its own); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| target | req/s | vs hello world | server µs/request | redis-server µs/request |"
echo "|---|---:|---:|---:|---:|"
for i in "${!labels[@]}"; do
  median() { printf '%s' "${rows[$i]}" | awk -v c="$1" '{ print $c }' | sort -n | sed -n "$(( (rounds + 1) / 2 ))p"; }
  echo "| ${labels[$i]} | $(median 1) | $(median 2) | $(median 3) | $(median 4) |"
done
