#!/usr/bin/env bash
# `customers import` speed and memory on a file of N generated lines (bench/import_lines.py).
#
#   bench/import.sh [--lines N] [--bin BIN] [--postgres URL] [--keep DIR]
#
# Into a fresh SQLite database (and, with --postgres URL, a fresh database
# created on that server and dropped at the end), runs in turn: the import,
# the same import again (every line a duplicate), and a --dry-run of it.
# Each run prints wall seconds, lines/s, peak RSS (/usr/bin/time -v) and the
# peak RssAnon sampled from /proc every 0.2 s (anonymous memory: what the
# process allocated, without the SQLite file's mmap). --bin defaults to this
# tree's release build (built here). --keep DIR keeps the input file there.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=1000000 bin= postgres= keep=
while [ $# -gt 0 ]; do
  case "$1" in
    --lines) lines=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --postgres) postgres=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) echo "usage: bench/import.sh [--lines N] [--bin BIN] [--postgres URL] [--keep DIR]" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/time ] || { echo "/usr/bin/time is not installed (apt-get install time)" >&2; exit 1; }
[ -x target/release/examples/seed ] || cargo build --release --quiet --example seed
if [ -z "$bin" ]; then cargo build --release --quiet --bin clientele; bin=target/release/clientele; fi
work=$(mktemp -d) database=
trap 'rm -rf "$work"; if [ -n "$database" ]; then psql -q "$postgres" -c "DROP DATABASE IF EXISTS $database" >/dev/null; fi' EXIT
input=${keep:-$work}/import-$lines.ndjson
[ -s "$input" ] || python3 bench/import_lines.py "$lines" >"$input"
echo "input: $lines lines, $(du -h "$input" | cut -f1) ($input); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

timed() { # LABEL URL ARGS...
  local label=$1 url=$2; shift 2
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -v -o "$work/time" "$bin" --database-url "$url" customers import --account bench --input "$input" "$@" 2>"$work/stderr" &
  local pid=$! peak=0 anon child
  sleep 0.1
  child=$(pgrep -P "$pid" | head -1 || true)
  while kill -0 "$pid" 2>/dev/null; do
    if [ -n "$child" ]; then
      anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$child/status" 2>/dev/null || true)
      [ -n "$anon" ] && [ "$anon" -gt "$peak" ] && peak=$anon
    fi
    sleep 0.2
  done
  wait "$pid" || { cat "$work/stderr" >&2; exit 1; }
  end=$(date +%s.%N)
  local rss seconds
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time")
  seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
  printf '%-28s %8.2f s %9.0f lines/s  max RSS %4d MiB  peak RssAnon %4d MiB  (%s)\n' \
    "$label" "$seconds" "$(awk -v n="$lines" -v s="$seconds" 'BEGIN { print n / s }')" \
    "$((rss / 1024))" "$((peak / 1024))" "$(tail -1 "$work/stderr")"
}

backend() { # NAME URL
  target/release/examples/seed "$2" 0 >/dev/null
  timed "$1 import" "$2"
  timed "$1 re-run (all duplicates)" "$2"
  timed "$1 --dry-run" "$2" --dry-run
}

backend sqlite "sqlite://$work/import.db"
if [ -n "$postgres" ]; then
  database=clientele_import_$$
  psql -q "$postgres" -c "CREATE DATABASE $database" >/dev/null
  backend postgres "${postgres%/*}/$database"
fi
