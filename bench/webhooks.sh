#!/usr/bin/env bash
# Measures webhook delivery throughput (API.md §8) on 127.0.0.1: one
# `clientele serve` instance delivers to a local receiver that answers 204 at once.
#
#   bench/webhooks.sh [--duration SECS] [--connections C] [--postgres URL] [--sqlite-synchronous full|normal]
#
# Customers are created for SECS seconds with wrk (POST /v2/customers, C connections) while
# the server delivers each event to the endpoint; the receiver reports when
# it got the first and the last one. Delivery throughput = distinct events /
# (last - first); how many were delivered when the writes ended shows whether
# delivery kept up with them.
#
# Uses the release build; needs wrk and curl. SQLite by default, on a temp file;
# --postgres URL runs on a fresh database created there (dropped at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=8 connections=16 postgres='' synchronous=full
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --postgres) postgres=$2; shift 2 ;;
    --sqlite-synchronous) synchronous=$2; shift 2 ;;
    *) echo "usage: bench/webhooks.sh [--duration SECS] [--connections C] [--postgres URL] [--sqlite-synchronous full|normal]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet --bin clientele --example seed --example webhook_receiver
bin=target/release
work=$(mktemp -d)
pids=()
pg_db=''
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; done
  if [ -n "$pg_db" ]; then psql -q "$postgres" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "$postgres" ]; then
  pg_db="clientele_webhook_bench_$$"
  psql -q "$postgres" -c "CREATE DATABASE $pg_db" >/dev/null
  db="${postgres%/*}/$pg_db"
else
  db="sqlite://$work/bench.db"
fi
token=$("$bin/examples/seed" "$db" 0 | sed -n 's/^TOKEN=//p')

wait_for() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "$1 did not answer" >&2; exit 1; }
"$bin/examples/webhook_receiver" 127.0.0.1:18090 >/dev/null & pids+=($!)
"$bin/clientele" --database-url "$db" serve --listen 127.0.0.1:18091 --no-bootstrap --webhook-allow-insecure \
  --sqlite-synchronous "$synchronous" 2>"$work/serve.log" >/dev/null & pids+=($!)
wait_for http://127.0.0.1:18090/stats
wait_for http://127.0.0.1:18091/healthz

curl -fs -X POST http://127.0.0.1:18091/v2/webhook_endpoints -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' \
  -d '{"url":"http://127.0.0.1:18090/hook","event_types":["customer.created"]}' >/dev/null

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"name":"Bench Customer","email":"bench@example.com"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
started_ms=$(date +%s%3N)
wrk -t1 -c"$connections" -d"${duration}s" -s "$work/post.lua" http://127.0.0.1:18091/v2/customers >"$work/wrk.txt"
written_ms=$(date +%s%3N)
backlog=$(curl -fs http://127.0.0.1:18090/stats)
load=$(cut -d' ' -f1-3 /proc/loadavg)

created=$(curl -fs "http://127.0.0.1:18091/v1/customers?limit=1" -H "Authorization: Bearer $token" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
deadline=$(( $(date +%s) + 300 ))
while :; do
  stats=$(curl -fs http://127.0.0.1:18090/stats)
  distinct=$(echo "$stats" | sed -n 's/.*"distinct":\([0-9]*\).*/\1/p')
  [ "$distinct" -ge "$created" ] && break
  [ "$(date +%s)" -lt "$deadline" ] || { echo "only $distinct of $created delivered within 300 s" >&2; exit 1; }
  sleep 0.2
done
first=$(echo "$stats" | sed -n 's/.*"first_ms":\([0-9]*\).*/\1/p')
last=$(echo "$stats" | sed -n 's/.*"last_ms":\([0-9]*\).*/\1/p')
received=$(echo "$stats" | sed -n 's/.*"received":\([0-9]*\).*/\1/p')
backlog_distinct=$(echo "$backlog" | sed -n 's/.*"distinct":\([0-9]*\).*/\1/p')
write_s=$(awk "BEGIN{printf \"%.2f\", ($written_ms-$started_ms)/1000}")
deliver_s=$(awk "BEGIN{printf \"%.2f\", ($last-$first)/1000}")
if [ -n "$postgres" ]; then backend=PostgreSQL; else backend="SQLite (synchronous=$synchronous)"; fi
echo "backend: $backend; load average before draining: $load"
echo "writes: $created customers in ${write_s} s ($(awk "BEGIN{printf \"%.0f\", $created/$write_s}")/s, wrk -t1 -c$connections)"
echo "delivered when the writes ended: $backlog_distinct of $created"
echo "deliveries: $distinct distinct events ($received POSTs) from first to last in ${deliver_s} s: $(awk "BEGIN{printf \"%.0f\", $distinct/$deliver_s}") events/s"
echo "failed attempts logged: $(grep -c 'webhook attempt failed' "$work/serve.log" || true)"
