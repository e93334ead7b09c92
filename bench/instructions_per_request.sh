#!/usr/bin/env bash
# Instructions per request of `clientele serve`, counted by callgrind: repeatable whatever else
# the machine is doing, so two builds (or one build with two settings) can be compared on a busy
# machine where wall-clock figures cannot.
#
#   bench/instructions_per_request.sh BIN post|get|health|idle [--duration SECS] [--port PORT]
#
# Makes a fresh SQLite database in a temporary directory (account `bench`, a write token with a
# limit that never refuses), runs `BIN serve` under `valgrind --tool=callgrind` (every thread,
# user space only: no kernel time), drives it with `wrk -t1 -c32` for SECS seconds (POST with
# bench/post.lua, GET of one customer, or GET /healthz: the layers and hyper
# without a token or the store), stops it with SIGTERM and prints the requests served
# and the instructions counted. Per request = (instructions - those of an `idle` run of the same
# duration) / requests. CLIENTELE_LOG is passed through (unset: `info`, the request log on, to
# /dev/null). Under valgrind the server runs some 50 times slower, so the writer's batches are
# smaller than under real load. For `post`, the SQLite checkpointer's share is inflated too:
# it checkpoints every 20 ms in which anything was committed, whatever the pace, so at
# valgrind's few hundred POSTs a second its cost falls on far fewer requests than under real
# load (figures: BENCHMARKS.md, the eighth machine). Compare two builds with it, not a POST
# with a GET. Needs valgrind and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1 mode=$2; shift 2
duration=15 port=18399
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    *) echo "usage: bench/instructions_per_request.sh BIN post|get|health|idle [--duration SECS] [--port PORT]" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
url="sqlite://$work/db"
# The first start creates and migrates the database.
"$bin" serve --database-url "$url" --listen "127.0.0.1:$port" --no-bootstrap >/dev/null 2>&1 &
first=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.05; done
kill "$first"; wait "$first" 2>/dev/null || true
"$bin" accounts create bench --database-url "$url" >/dev/null
TOKEN=$("$bin" tokens create --account bench --scope write --rate-limit 1000000000/60s --database-url "$url" 2>/dev/null)
export TOKEN
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
  "$bin" serve --database-url "$url" --listen "127.0.0.1:$port" --no-bootstrap >/dev/null 2>"$work/valgrind.err" &
server=$!
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
case "$mode" in
  post) wrk -t1 -c32 -d"${duration}s" -s bench/post.lua "http://127.0.0.1:$port/v2/customers" >"$work/wrk" ;;
  get)
    id=$(curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
      -d '{"name":"Ada","email":"ada@example.com"}' "http://127.0.0.1:$port/v2/customers" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
    wrk -t1 -c32 -d"${duration}s" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/v2/customers/$id" >"$work/wrk" ;;
  health) wrk -t1 -c32 -d"${duration}s" "http://127.0.0.1:$port/healthz" >"$work/wrk" ;;
  idle) sleep "$duration"; echo "0 requests in" >"$work/wrk" ;;
  *) echo "mode: post, get, health or idle" >&2; exit 2 ;;
esac
kill -TERM "$server"; wait "$server" || true
echo "requests=$(awk '/requests in/ {print $1}' "$work/wrk") instructions=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/valgrind.err")"
