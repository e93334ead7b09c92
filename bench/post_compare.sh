#!/usr/bin/env bash
# `POST /v2/customers` from two builds of `clientele`, side by side: requests/s and server CPU per
# request, on SQLite and (when it answers) PostgreSQL.
#
#   bench/post_compare.sh BEFORE_BIN AFTER_BIN [--rounds N] [--duration SECS] [--connections C]
#                         [--postgres URL | --no-postgres]
#
# Each build serves a database of its own, created and migrated by that build (so an older build
# never meets a newer schema), with one account and write token made by its own CLI. Rounds
# alternate between the builds (wrk -t1 -cC with bench/post.lua on 127.0.0.1), so load from
# anything else on the machine falls on both alike; CPU is read from /proc/PID/stat. Prints each
# round and the medians. PostgreSQL databases are created on the server at --postgres (default
# $CLIENTELE_BENCH_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres) and dropped at
# the end. Needs wrk and psql.
set -euo pipefail
cd "$(dirname "$0")/.."
before=$1 after=$2; shift 2
rounds=5 duration=10 connections=32
postgres=${CLIENTELE_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --postgres) postgres=$2; shift 2 ;;
    --no-postgres) postgres=''; shift ;;
    *) echo "usage: bench/post_compare.sh BEFORE_BIN AFTER_BIN [--rounds N] [--duration SECS]" \
            "[--connections C] [--postgres URL | --no-postgres]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
work=$(mktemp -d) pids=() pg_dbs=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; done
  for db in "${pg_dbs[@]}"; do psql -q "$postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

declare -A url_of token_of pid_of
serve() { # name binary database-url port
  local name=$1 bin=$2 url=$3 port=$4
  CLIENTELE_LOG=warn "$bin" serve --database-url "$url" --listen "127.0.0.1:$port" --no-bootstrap \
    >"$work/$name.log" 2>&1 &
  pids+=($!) pid_of[$name]=$!
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.05; done
  "$bin" accounts create bench --database-url "$url" >/dev/null
  token_of[$name]=$("$bin" tokens create --account bench --scope write --rate-limit 100000000/60s \
    --database-url "$url" 2>/dev/null)
  url_of[$name]="http://127.0.0.1:$port/v2/customers"
}

names=()
serve sqlite-before "$before" "sqlite://$work/before.db" 18301
serve sqlite-after "$after" "sqlite://$work/after.db" 18302
names+=(sqlite-before sqlite-after)
if [ -n "$postgres" ] && psql -q "$postgres" -c 'SELECT 1' >/dev/null 2>&1; then
  for side in before after; do
    db="clientele_post_${side}_$$"
    psql -q "$postgres" -c "CREATE DATABASE $db" >/dev/null
    pg_dbs+=("$db")
    url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$postgres" "$db")
    bin=$before port=18303; [ $side = after ] && bin=$after port=18304
    serve "postgres-$side" "$bin" "$url" $port
    names+=("postgres-$side")
  done
fi

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
declare -A rps_runs cpu_runs
for round in $(seq "$rounds"); do
  for name in "${names[@]}"; do
    t0=$(ticks "${pid_of[$name]}")
    out=$(TOKEN=${token_of[$name]} wrk -t1 -c"$connections" -d"${duration}s" -s bench/post.lua "${url_of[$name]}")
    t1=$(ticks "${pid_of[$name]}")
    errors=$(echo "$out" | awk '/Non-2xx/ { print $5 }')
    [ -n "$errors" ] && echo "round $round $name: $errors responses were not 2xx (a busy database answers 503)" >&2
    requests=$(echo "$out" | awk '/requests in/ { print $1 }')
    rps=$(echo "$out" | awk '/^Requests\/sec:/ { printf "%d", $2 }')
    us=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    echo "round $round $name: $rps req/s, $us µs CPU per request" >&2
    rps_runs[$name]+="$rps"$'\n' cpu_runs[$name]+="$us"$'\n'
  done
done
median() { printf '%s' "$1" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p"; }
for name in "${names[@]}"; do
  echo "$name: median $(median "${rps_runs[$name]}") req/s, $(median "${cpu_runs[$name]}") µs of server CPU per request"
done
