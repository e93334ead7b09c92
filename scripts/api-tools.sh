#!/usr/bin/env bash
# Third-party proof that the OpenAPI documents describe the server (API.md §6):
#   1. both documents validate (openapi-spec-validator) and lint (@redocly/cli);
#   2. schemathesis fuzzes a live server through each document, with a token
#      and a fixed seed: no server errors, schema violations or undocumented statuses;
#   3. a Python client (openapi-python-client) and a TypeScript one
#      (openapi-typescript + openapi-fetch), generated from the served documents,
#      create, read, update, list two pages, delete and handle a 404 as a typed error.
# Every tool is pinned: tools/requirements.txt and tools/package.json + package-lock.json.
# Usage: scripts/api-tools.sh   (CLIENTELE_API_TOOLS_EXAMPLES sets schemathesis' examples per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EXAMPLES="${CLIENTELE_API_TOOLS_EXAMPLES:-60}"
SEED=20251128
VENV=target/api-tools/venv
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "installing the pinned tools"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s tools/requirements.txt "$VENV/requirements.txt"; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tools/requirements.txt
  cp tools/requirements.txt "$VENV/requirements.txt"
fi
if [ ! -d tools/node_modules ] || [ tools/package-lock.json -nt tools/node_modules ]; then
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
  touch tools/node_modules
fi

step "starting a server"
cargo build --locked --quiet --bin clientele
BIN=target/debug/clientele
DB="sqlite://$WORK/api-tools.db"
"$BIN" accounts create default --database-url "$DB" >/dev/null
TOKEN=$("$BIN" tokens create --account default --scope write --rate-limit 1000000/60s --database-url "$DB")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
"$BIN" serve --listen "127.0.0.1:$PORT" --database-url "$DB" --no-bootstrap --auth-failure-limit 1000000/60s \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$BASE/healthz" >/dev/null

for version in v1 v2; do
  curl -fsS "$BASE/$version/openapi.json" -o "$WORK/$version.json"
  cmp -s "$WORK/$version.json" "openapi/$version.json" || {
    echo "the served $version document differs from openapi/$version.json;" \
      "regenerate: CLIENTELE_UPDATE_OPENAPI=1 cargo nextest run --test openapi" >&2
    exit 1
  }
done

step "openapi-spec-validator"
"$VENV/bin/openapi-spec-validator" "$WORK/v1.json" "$WORK/v2.json"

step "redocly lint"
tools/node_modules/.bin/redocly lint --config tools/redocly.yaml "$WORK/v1.json" "$WORK/v2.json"

step "schemathesis ($EXAMPLES examples per operation, seed $SEED)"
# positive_data_acceptance is left out on purpose: schemathesis reuses an `Idempotency-Key`
# with another body, which is rightly `422 idempotency_key_reused` (documented).
for version in v1 v2; do
  # Run from $WORK so schemathesis' cache stays out of the work tree.
  (cd "$WORK" && "$ROOT/$VENV/bin/schemathesis" run "$WORK/$version.json" --url "$BASE" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
    --seed "$SEED" --max-examples "$EXAMPLES" --workers 1 --no-color \
    --report junit --report-dir "$WORK/schemathesis-$version")
done

step "Python client (openapi-python-client)"
for version in v1 v2; do
  printf 'package_name_override: clientele_%s\nproject_name_override: clientele-%s\npost_hooks: []\n' "$version" "$version" \
    >"$WORK/py-$version.yaml"
  "$VENV/bin/openapi-python-client" generate --path "$WORK/$version.json" --config "$WORK/py-$version.yaml" \
    --output-path "$WORK/py-$version/clientele_$version" --meta none --overwrite >/dev/null
  PYTHONPATH="$WORK/py-$version" "$VENV/bin/python" tools/client_check.py "$version" "$BASE" "$TOKEN"
done

step "TypeScript client (openapi-typescript + openapi-fetch)"
mkdir -p tools/generated
for version in v1 v2; do
  tools/node_modules/.bin/openapi-typescript "$WORK/$version.json" -o "tools/generated/$version.d.ts" >/dev/null
done
(cd tools && node_modules/.bin/tsc --noEmit -p tsconfig.json)
for version in v1 v2; do
  (cd tools && node_modules/.bin/tsx client_check.ts "$version" "$BASE" "$TOKEN")
done

step "api-tools: all checks passed"
