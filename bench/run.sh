#!/usr/bin/env bash
# Measures Clientele against a bare hello-world server on the same HTTP stack, in one run.
#
#   bench/run.sh [--duration SECS] [--runs N] [--connections C] [--customers N]
#                [--only REGEX] [--request-log PATH] [--postgres URL | --no-postgres] [--no-fastify]
#                [--compare BIN]
#
# --compare BIN also serves the same read from another build of `clientele`
# (an earlier commit, say), in the same rounds, to measure a change.
# --only keeps the targets whose label matches REGEX (and the baseline).
# Two targets run with one tokio worker (TOKIO_WORKER_THREADS=1) rather than
# one a core: the hello world and `clientele serve` as the README starts it.
# The telemetry targets read by id with metrics on or off, and with the JSON
# request log written to --request-log (default /dev/null; a real file grows
# by about 250 bytes a request).
#
# More than 50,000 --customers are seeded in bulk SQL (bench/seed_bulk.sh), so
# `--customers 1000000` takes seconds: run it beside a default run to compare
# GET by id and a v2 list page at 1,000,000 and 10,000 customers (issue 15).
# After the rounds, the resident memory (now and peak) of the `clientele serve`
# processes is printed with the table.
#
# The PostgreSQL targets run `clientele serve` on a fresh database created on
# the server at --postgres (default $CLIENTELE_BENCH_DATABASE_URL, else
# postgres://postgres@127.0.0.1:5432/postgres) and dropped at the end; they
# are left out when that server does not answer, or with --no-postgres.
# After the rounds it prints how much WAL that server wrote and, where the
# role may list pg_wal, whether that directory gained segment files (why that
# matters to the POST p99: docs/deploying.md, "Capacity").
#
# The Fastify target is bench/fastify/server.mjs (Node.js Fastify +
# better-sqlite3, installed with `npm ci` on first use) doing the same
# authenticated, rate-limited read on the same SQLite file; left out without
# Node.js, or with --no-fastify.
#
# Each target gets N runs of `wrk -t1 -cC -dSECS --latency` on 127.0.0.1; the
# median run (by requests/s) is reported with its p50 and p99. Results go to
# stdout and to bench/results/latest.md. Needs wrk (Debian package `wrk`).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10 runs=3 connections=32 customers=10000 only='' request_log=/dev/null
postgres=${CLIENTELE_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres} fastify=yes compare=
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --customers) customers=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --request-log) request_log=$2; shift 2 ;;
    --postgres) postgres=$2; shift 2 ;;
    --no-postgres) postgres=''; shift ;;
    --no-fastify) fastify=''; shift ;;
    --compare) compare=$2; shift 2 ;;
    *) echo "usage: bench/run.sh [--duration SECS] [--runs N] [--connections C] [--customers N]" \
            "[--only REGEX] [--request-log PATH] [--postgres URL | --no-postgres] [--no-fastify] [--compare BIN]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
# The servers that write the request log append to it (start below); it starts empty.
[ -f "$request_log" ] && : >"$request_log"

cargo build --release --quiet --bin clientele --example hello --example seed --example bench_server
bin=target/release
work=$(mktemp -d)
pids=()
declare -A pid_of
pg_db=''
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$pg_db" ]; then
    for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; done
    psql -q "$postgres" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Up to 50,000 customers are created through the store; more in bulk SQL (bench/seed_bulk.sh).
seed() { if [ "$2" -gt 50000 ]; then bench/seed_bulk.sh "$1" "$2"; else "$bin/examples/seed" "$1" "$2"; fi; }
db="sqlite://$work/bench.db"
echo "seeding $customers customers..." >&2
eval "$(seed "$db" "$customers")"
export TOKEN

have_postgres=false
if [ -n "$postgres" ] && psql -q "$postgres" -c 'SELECT 1' >/dev/null 2>&1; then
  pg_db="clientele_bench_$$"
  psql -q "$postgres" -c "CREATE DATABASE $pg_db" >/dev/null
  pg_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$postgres" "$pg_db")
  echo "seeding $customers customers in PostgreSQL..." >&2
  pg_seed=$(seed "$pg_url" "$customers")
  PG_TOKEN=$(echo "$pg_seed" | sed -n 's/^TOKEN=//p')
  PG_CUSTOMER_ID=$(echo "$pg_seed" | sed -n 's/^CUSTOMER_ID=//p')
  have_postgres=true
fi

start() { # name port command... (log filter: $LOG, default warn; output to $OUT, default a file in $work)
  local name=$1 port=$2; shift 2
  local out=${OUT:-$work/$name.log}
  # Appending: several servers may share one --request-log file.
  CLIENTELE_LOG=${LOG:-warn} "$@" >>"$out" 2>&1 &
  pids+=($!); pid_of[$name]=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.05
  done
  echo "$name did not start:" >&2; cat "$out" >&2; exit 1
}

start hello 18181 "$bin/examples/hello" 127.0.0.1:18181
# `clientele serve` as the README starts it: CLIENTELE_LOG unset (info), the
# request log on, written to --request-log (default /dev/null) as to a terminal.
LOG=info OUT=$request_log start clientele 18182 "$bin/clientele" serve --database-url "$db" --listen 127.0.0.1:18182 --no-bootstrap
start clientele-quiet 18192 "$bin/clientele" serve --database-url "$db" --listen 127.0.0.1:18192 --no-bootstrap
# The hello world and `clientele serve` with one tokio worker (TOKIO_WORKER_THREADS=1) instead of one
# a core: on a 2-core machine wrk and one busy worker then share the two cores, which made a
# request's wait for a time slice rarer where one core was enough for the load, and cost
# throughput where it was not (BENCHMARKS.md, "One worker" and the eighth machine).
start hello-one-worker 18193 env TOKIO_WORKER_THREADS=1 "$bin/examples/hello" 127.0.0.1:18193
LOG=info OUT=$request_log start clientele-one-worker 18194 env TOKIO_WORKER_THREADS=1 \
  "$bin/clientele" serve --database-url "$db" --listen 127.0.0.1:18194 --no-bootstrap
start limiter-off 18183 "$bin/examples/bench_server" "$db" 127.0.0.1:18183 off
start metrics-on 18185 "$bin/examples/bench_server" "$db" 127.0.0.1:18185 memory
start metrics-off 18186 "$bin/examples/bench_server" "$db" 127.0.0.1:18186 memory --no-metrics
start request-log 18187 env CLIENTELE_LOG=info "$bin/examples/bench_server" "$db" 127.0.0.1:18187 memory \
  --request-log "$request_log"
have_node=false
if [ -n "$fastify" ] && command -v node >/dev/null && command -v npm >/dev/null; then
  if [ ! -d bench/fastify/node_modules ]; then
    echo "installing the Fastify comparison server (npm ci)..." >&2
    npm ci --prefix bench/fastify --no-audit --no-fund >&2
  fi
  start fastify 18189 node bench/fastify/server.mjs "$work/bench.db" 18189
  have_node=true
fi
if [ -n "$compare" ]; then
  start compare 18190 "$compare" serve --database-url "$db" --listen 127.0.0.1:18190 --no-bootstrap
fi
if $have_postgres; then
  LOG=info OUT=$request_log start postgres 18188 "$bin/clientele" serve --database-url "$pg_url" --listen 127.0.0.1:18188 --no-bootstrap
fi
redis_url=${CLIENTELE_BENCH_REDIS_URL:-redis://127.0.0.1:6379}
have_redis=false
if redis-cli -u "$redis_url" ping >/dev/null 2>&1; then
  start limiter-redis 18184 "$bin/examples/bench_server" "$db" 127.0.0.1:18184 redis "$redis_url"
  have_redis=true
fi

# wrk's latency lines ("99%  1.23ms") in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'; }

# Rounds interleave the targets (A B C, A B C, ...), so load from anything else
# on the machine falls on every target alike; each target's median run is kept.
labels=() urls=() extra=()
target() {
  if [ ${#labels[@]} -gt 0 ] && [ -n "$only" ] && ! [[ $1 =~ $only ]]; then return; fi
  labels+=("$1"); urls+=("$2"); extra+=("${3:-}")
}

auth="Authorization: Bearer $TOKEN"
get_path="/v2/customers/$CUSTOMER_ID"
target "hello world (baseline)" "http://127.0.0.1:18181/"
target "GET /v2/customers/{id} (clientele serve, default config: request log on)" "http://127.0.0.1:18182$get_path" auth
target "GET /v2/customers/{id} (clientele serve, CLIENTELE_LOG=warn: request log off)" "http://127.0.0.1:18192$get_path" auth
target "hello world, one worker (TOKIO_WORKER_THREADS=1)" "http://127.0.0.1:18193/"
target "GET /v2/customers/{id} (clientele serve, request log on, one worker: TOKIO_WORKER_THREADS=1)" "http://127.0.0.1:18194$get_path" auth
target "GET /v2/customers/{id} (clientele serve, Accept-Encoding: gzip, br)" "http://127.0.0.1:18182$get_path" auth-accept
if [ -n "$compare" ]; then
  target "GET /v2/customers/{id} ($compare)" "http://127.0.0.1:18190$get_path" auth
  target "GET /v2/customers/{id} ($compare, Accept-Encoding: gzip, br)" "http://127.0.0.1:18190$get_path" auth-accept
fi
if $have_node; then
  target "GET /v2/customers/{id} (Node.js Fastify + better-sqlite3)" "http://127.0.0.1:18189$get_path" auth
fi
target "GET /v2/customers/{id} (limiter off)" "http://127.0.0.1:18183$get_path" auth
target "GET /v2/customers/{id} (memory limiter, metrics on, no request log)" "http://127.0.0.1:18185$get_path" auth
target "GET /v2/customers/{id} (memory limiter, metrics off, no request log)" "http://127.0.0.1:18186$get_path" auth
target "GET /v2/customers/{id} (memory limiter, metrics on, JSON request log)" "http://127.0.0.1:18187$get_path" auth
if $have_redis; then
  target "GET /v2/customers/{id} (Redis limiter)" "http://127.0.0.1:18184$get_path" auth
fi
target "POST /v2/customers (clientele serve, SQLite synchronous=FULL, request log on)" "http://127.0.0.1:18182/v2/customers" post
target "GET /v2/customers?limit=20 (clientele serve, v2 list page, request log on)" "http://127.0.0.1:18182/v2/customers?limit=20" auth
if $have_postgres; then
  target "GET /v2/customers/{id} (PostgreSQL, request log on)" "http://127.0.0.1:18188/v2/customers/$PG_CUSTOMER_ID" pg-auth
  target "POST /v2/customers (PostgreSQL, one account, synchronous_commit=on, request log on)" "http://127.0.0.1:18188/v2/customers" pg-post
  target "GET /v2/customers?limit=20 (PostgreSQL, v2 list page, request log on)" "http://127.0.0.1:18188/v2/customers?limit=20" pg-auth
fi

# PostgreSQL's WAL before the rounds, when a PostgreSQL target runs: its position (any role may
# read it) and the number of segment files in pg_wal (superuser or pg_monitor only).
pg_value() { psql -qAt "$postgres" -c "$1" 2>/dev/null || true; } # SQL -> one value; empty on failure
lsn_before='' files_before=''
if [[ " ${extra[*]} " == *" pg-"* ]]; then
  lsn_before=$(pg_value "SELECT pg_current_wal_lsn()")
  files_before=$(pg_value "SELECT count(*) FROM pg_ls_waldir()")
fi

declare -A runs_of
for run in $(seq "$runs"); do
  for i in "${!labels[@]}"; do
    args=()
    case "${extra[$i]}" in
      auth) args=(-H "$auth") ;;
      auth-accept) args=(-H "$auth" -H "Accept-Encoding: gzip, br") ;;
      post) args=(-s bench/post.lua) ;;
      pg-auth) args=(-H "Authorization: Bearer $PG_TOKEN") ;;
      pg-post) args=(-s bench/post.lua) ;;
    esac
    token=$TOKEN
    [[ ${extra[$i]} == pg-* ]] && token=$PG_TOKEN
    out=$(TOKEN=$token wrk -t1 -c"$connections" -d"${duration}s" --latency "${args[@]}" "${urls[$i]}")
    if echo "$out" | grep -q "Non-2xx"; then
      echo "${labels[$i]}: wrk saw error responses:" >&2; echo "$out" >&2; exit 1
    fi
    rps=$(echo "$out" | awk '/^Requests\/sec:/ { printf "%d", $2 }')
    p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
    p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
    echo "  round $run: ${labels[$i]}: $rps req/s, p50 $p50 ms, p99 $p99 ms" >&2
    runs_of[$i]+="$rps $p50 $p99"$'\n'
  done
done

results=()
for i in "${!labels[@]}"; do
  median=$(printf '%s' "${runs_of[$i]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  results+=("${labels[$i]}|$median")
done

baseline=$(echo "${results[0]}" | cut -d'|' -f2 | cut -d' ' -f1)
mkdir -p bench/results
{
  echo "Run $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo);" \
       "wrk -t1 -c$connections -d${duration}s, median of $runs runs, $customers customers in SQLite (and in PostgreSQL for its rows)."
  echo
  echo "| target | req/s | p50 ms | p99 ms | vs baseline |"
  echo "|---|---:|---:|---:|---:|"
  for row in "${results[@]}"; do
    label=${row%%|*}; read -r rps p50 p99 <<<"${row#*|}"
    ratio=$(awk -v a="$rps" -v b="$baseline" 'BEGIN { printf "%.2f", a / b }')
    echo "| $label | $rps | $p50 | $p99 | $ratio |"
  done
  echo
  # Resident memory of the `clientele serve` processes after the load (peak: VmHWM).
  for name in clientele postgres; do
    pid=${pid_of[$name]:-}
    [ -n "$pid" ] && [ -r "/proc/$pid/status" ] || continue
    awk -v name="$name" '/^VmRSS/ { rss = $2 } /^VmHWM/ { hwm = $2 }
      END { printf "RSS of `clientele serve` (%s): %.1f MiB now, %.1f MiB peak\n\n", name, rss / 1024, hwm / 1024 }' "/proc/$pid/status"
  done
  # The server's own timing of its GETs by id (all rounds that hit `clientele serve`), from the
  # head's arrival to the response made: what wrk's p99 adds on top is waiting to be scheduled.
  { curl -sf http://127.0.0.1:18182/metrics || true; } | awk -F'[ "]' '
    /^clientele_http_request_duration_seconds_bucket\{route="\/v2\/customers\/\{id\}",method="GET"/ {
      for (i = 1; i <= NF; i++) if ($i == ",le=") le = $(i + 1)
      count[le] = $NF
    }
    END {
      total = count["+Inf"]
      if (total > 0) printf "Server-side time of `GET /v2/customers/{id}` on `clientele serve` (its histogram, %d requests): %.3f%% within 0.5 ms, %.3f%% within 1 ms, %.3f%% within 2.5 ms\n\n",
        total, 100 * count["0.0005"] / total, 100 * count["0.001"] / total, 100 * count["0.0025"] / total
    }'
  # WAL written during the rounds, and whether pg_wal grew: a new segment file was created and
  # zero-filled, possibly by a backend while commits waited (docs/deploying.md, "Capacity").
  if [ -n "$lsn_before" ]; then
    written=$(pg_value "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn_before')::bigint / 1048576")
    files_after=''
    [ -n "$files_before" ] && files_after=$(pg_value "SELECT count(*) FROM pg_ls_waldir()")
    line="PostgreSQL's WAL during the rounds: ${written:-?} MiB written"
    if [ -n "$files_after" ]; then
      added=$((files_after - files_before))
      if [ "$added" -gt 0 ]; then
        line+="; pg_wal grew from $files_before to $files_after segment files, so at least $added were created, possibly while commits waited (the PostgreSQL POST p99 may include such stalls)"
      else
        line+="; pg_wal held $files_before segment files before and $files_after after (no growth; segments may still have been created where a checkpoint removed others)"
      fi
    fi
    echo "$line."
    echo
  fi
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee bench/results/latest.md
