#!/usr/bin/env bash
# Third-party proof that the OpenAPI documents describe the server (API.md §6):
#   1. both documents validate (openapi-spec-validator) and lint (@redocly/cli);
#   2. no breaking change (optic diff --check) against the baseline: the newest `v*` release tag
#      reachable from HEAD, else the commit that added the document; and optic is shown to catch
#      two deliberately broken copies;
#   3. schemathesis fuzzes a live server through each document, with a token and a fixed seed,
#      with every check on (tools/schemathesis.toml; tools/schemathesis_hooks.py gives every call
#      a fresh Idempotency-Key): no server errors, schema violations, undocumented statuses, valid
#      data rejected or invalid data accepted;
#   4. a Python client (openapi-python-client) and a TypeScript one
#      (openapi-typescript + openapi-fetch), generated from the served documents,
#      create, read, update, list two pages, delete and handle a 404 as a typed error;
#   5. Python and TypeScript clients generated from a read token's tailored document (API.md §6)
#      have no write methods, the document names --public-url as its server, and their reads and
#      GET /v2/token work;
#   6. evolution: Python and TypeScript clients generated from each version's BASELINE document
#      (the one optic compares against) run against the current server: CRUD, ETag and rate-limit
#      headers, error codes (404, 400, 412, 429 with Retry-After), and, through
#      tools/later_release_proxy.py, response fields the baseline does not have; clients generated
#      from the current documents also meet error codes and types no release has yet. Every
#      TypeScript response is checked against the schema of the document its types came from. The
#      test is shown to fail: through a proxy that drops or renames a customer field, the baseline
#      clients must fail;
#   7. /docs in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core): titled
#      "Clientele API", the v1/v2 picker, "Authorize", "Try it out" → "Execute" answers 200, the
#      list's "Try it out" starts with every optional parameter empty and answers 200 untouched,
#      and every request of the page goes to the server; with a wrong token the same run must fail
#      on the 401.
# Every tool is pinned: tools/requirements.txt and tools/package.json + package-lock.json.
# Needs the full git history (not a shallow clone) for the optic baseline.
# Usage: scripts/api-tools.sh   (CLIENTELE_API_TOOLS_EXAMPLES sets schemathesis' examples per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EXAMPLES="${CLIENTELE_API_TOOLS_EXAMPLES:-60}"
SEED=20251128
VENV=target/api-tools/venv
WORK=$(mktemp -d)
SERVER_PID=
PROXY_PIDS=()
cleanup() {
  for pid in "${PROXY_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
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
CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the /docs try-out"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
[ -x "$CHROMIUM" ] || {
  echo "api-tools: $CHROMIUM is missing; install Debian's chromium (apt-get install chromium):" \
    "the /docs try-out drives it, and no browser is downloaded" >&2
  exit 1
}

step "starting a server"
cargo build --locked --quiet --bin clientele
BIN=target/debug/clientele
DB="sqlite://$WORK/api-tools.db"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
# `serve` creates the database; the admin commands then work on it while it runs (they never create one).
"$BIN" serve --listen "127.0.0.1:$PORT" --database-url "$DB" --no-bootstrap --auth-failure-limit 1000000/60s \
  --public-url "$BASE" \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$BASE/healthz" >/dev/null
"$BIN" accounts create default --database-url "$DB" >/dev/null
TOKEN=$("$BIN" tokens create --account default --scope write --rate-limit 1000000/60s --database-url "$DB" 2>/dev/null)
READ_TOKEN=$("$BIN" tokens create --account default --scope read --rate-limit 500/60s --database-url "$DB" 2>/dev/null)

for version in v1 v2; do
  curl -fsS "$BASE/$version/openapi.json" -o "$WORK/$version.json"
  cmp -s "$WORK/$version.json" "openapi/$version.json" || {
    echo "the served $version document differs from openapi/$version.json;" \
      "regenerate: CLIENTELE_UPDATE_OPENAPI=1 cargo nextest run --test api openapi::" >&2
    exit 1
  }
done

step "openapi-spec-validator"
"$VENV/bin/openapi-spec-validator" "$WORK/v1.json" "$WORK/v2.json"

step "redocly lint"
tools/node_modules/.bin/redocly lint --config tools/redocly.yaml "$WORK/v1.json" "$WORK/v2.json"

step "breaking changes (optic diff --check)"
# Offline: no telemetry, no update check; run from $WORK so no optic.yml is looked for in the tree.
optic() {
  (cd "$WORK" && OPTIC_TELEMETRY_LEVEL=off NO_UPDATE_NOTIFIER=1 timeout 300 "$ROOT/tools/node_modules/.bin/optic" "$@")
}
if ! git rev-parse --git-dir >/dev/null 2>&1 || [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  echo "api-tools: the optic baseline needs the full git history, and this is not a full clone;" \
    "run 'git fetch --unshallow --tags' (or clone without --depth)" >&2
  exit 1
fi
TAG=$(git describe --tags --abbrev=0 --match 'v*' HEAD 2>/dev/null || true)
declare -A BASELINE_OF
for version in v1 v2; do
  file=openapi/$version.json
  if [ -n "$TAG" ] && git cat-file -e "$TAG:$file" 2>/dev/null; then
    base=$TAG
    what="release tag $TAG"
  else
    base=$(git log --diff-filter=A --format=%H -- "$file" | tail -1)
    what="commit ${base:0:12}, which added it (no v* release tag has it)"
  fi
  [ -n "$base" ] || { echo "api-tools: $file has no baseline in git history" >&2; exit 1; }
  git show "$base:$file" >"$WORK/base-$version.json"
  BASELINE_OF[$version]=$what
  echo "$file against $what"
  if ! optic diff "$WORK/base-$version.json" "$ROOT/$file" --check >"$WORK/optic-$version.log" 2>&1; then
    cat "$WORK/optic-$version.log"
    echo "api-tools: optic reports a breaking change (or failed) in $file against $what." \
      "Within a version only additive changes are allowed; see README, 'OpenAPI documents'." >&2
    exit 1
  fi
  grep -E '^(Operations|.*Checks):' "$WORK/optic-$version.log" || true
done
# The check must be able to fail: each deliberately broken copy has to be reported as breaking.
for version in v1 v2; do
  for mutation in drop-response-property:"prevent removing response property" \
    require-query-parameter:"prevent new required query parameters"; do
    name=${mutation%%:*}
    rule=${mutation#*:}
    python3 tools/break_openapi.py "$name" "openapi/$version.json" "$WORK/broken-$version-$name.json"
    if optic diff "$ROOT/openapi/$version.json" "$WORK/broken-$version-$name.json" --check \
      >"$WORK/optic-broken.log" 2>&1 || ! grep -q "\[$rule\].*This is a breaking change" "$WORK/optic-broken.log"; then
      cat "$WORK/optic-broken.log"
      echo "api-tools: optic did not report $version with '$name' as breaking ([$rule])" >&2
      exit 1
    fi
    echo "self-check: optic reports $version with '$name' as breaking ([$rule])"
  done
done

step "schemathesis ($EXAMPLES examples per operation, seed $SEED, all checks)"
# tools/schemathesis.toml: the token through the bearerAuth scheme, 412 as a state-dependent answer.
# tools/schemathesis_hooks.py: a fresh Idempotency-Key per call (a reused one is rightly 422).
for version in v1 v2; do
  # Run from $WORK so schemathesis' cache stays out of the work tree.
  (cd "$WORK" && CLIENTELE_API_TOOLS_TOKEN="$TOKEN" CLIENTELE_API_TOOLS_BASE="$BASE" SCHEMATHESIS_HOOKS="$ROOT/tools/schemathesis_hooks.py" \
    "$ROOT/$VENV/bin/schemathesis" --config-file "$ROOT/tools/schemathesis.toml" \
    run "$WORK/$version.json" --url "$BASE" --checks all \
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
curl -fsS -H "Authorization: Bearer $READ_TOKEN" "$BASE/v2/openapi.json" -o "$WORK/read-v2.json"
tools/node_modules/.bin/openapi-typescript "$WORK/read-v2.json" -o "tools/generated/read-v2.d.ts" >/dev/null
for version in v1 v2; do
  tools/node_modules/.bin/openapi-typescript "$WORK/$version.json" -o "tools/generated/$version.d.ts" >/dev/null
  # The evolution step regenerates these from the baseline documents; tsc needs them now.
  tools/node_modules/.bin/openapi-typescript "$WORK/$version.json" -o "tools/generated/evolution-$version.d.ts" >/dev/null
done
(cd tools && node_modules/.bin/tsc --noEmit -p tsconfig.json)
for version in v1 v2; do
  (cd tools && node_modules/.bin/tsx client_check.ts "$version" "$BASE" "$TOKEN")
done

step "clients generated from a read token's tailored document"
"$VENV/bin/openapi-spec-validator" "$WORK/read-v2.json"
"$VENV/bin/openapi-python-client" generate --path "$WORK/read-v2.json" --config "$WORK/py-v2.yaml" \
  --output-path "$WORK/py-read-v2/clientele_v2" --meta none --overwrite >/dev/null
PYTHONPATH="$WORK/py-read-v2" "$VENV/bin/python" tools/read_client_check.py "$BASE" "$READ_TOKEN" "$WORK/read-v2.json" "$BASE"
(cd tools && node_modules/.bin/tsx read_client_check.ts "$BASE" "$READ_TOKEN")

step "evolution: clients generated from each version's baseline document, against the current server"
# A later release in miniature: the current server behind a proxy that adds response fields
# (fields), also replaces error codes and types with unknown ones (codes), or breaks a customer
# field (drop:email, rename:email:e_mail) for the self-check.
declare -A PROXY
for mode in fields codes drop:email rename:email:e_mail; do
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$VENV/bin/python" tools/later_release_proxy.py "$BASE" "$port" "$mode" >"$WORK/proxy-${mode//:/-}.log" 2>&1 &
  PROXY_PIDS+=($!)
  PROXY[$mode]="http://127.0.0.1:$port"
done
for mode in "${!PROXY[@]}"; do
  for _ in $(seq 100); do grep -q ready "$WORK/proxy-${mode//:/-}.log" 2>/dev/null && break; sleep 0.1; done
done
url_for() { if [ "$1" = current ]; then echo "$BASE"; else echo "${PROXY[$1]}"; fi; }
# Each run meets a 429 with a token of its own (2 requests per hour).
limited_token() { "$BIN" tokens create --account default --scope write --rate-limit 2/3600s --database-url "$DB"; }
python_evolution() { # KIND VERSION MODE
  local limited
  limited=$(limited_token)
  PYTHONPATH="$WORK/py-$1-$2" "$VENV/bin/python" tools/evolution_check.py "$2" "$(url_for "$3")" "$TOKEN" "$limited" "$3" |
    sed "s/^/$1 client, /"
}
ts_evolution() { # KIND VERSION MODE
  local doc="$WORK/$2.json" limited
  [ "$1" = baseline ] && doc="$WORK/base-$2.json"
  limited=$(limited_token)
  (cd tools && node_modules/.bin/tsx evolution_check.ts "$2" "$(url_for "$3")" "$TOKEN" "$limited" "$3" "$doc") |
    sed "s/^/$1 client, /"
}
for version in v1 v2; do
  echo "$version: baseline from ${BASELINE_OF[$version]}"
  "$VENV/bin/openapi-python-client" generate --path "$WORK/base-$version.json" --config "$WORK/py-$version.yaml" \
    --output-path "$WORK/py-baseline-$version/clientele_$version" --meta none --overwrite >/dev/null
  ln -sfn "$WORK/py-$version" "$WORK/py-current-$version"
  for url in "$BASE" "${PROXY[fields]}"; do
    PYTHONPATH="$WORK/py-baseline-$version" "$VENV/bin/python" tools/client_check.py "$version" "$url" "$TOKEN" |
      sed "s/^/baseline via ${url##*:}: /"
  done
  for mode in current fields; do python_evolution baseline "$version" "$mode"; done
  for mode in current fields codes; do python_evolution current "$version" "$mode"; done
done
for kind in baseline current; do
  for version in v1 v2; do
    doc="$WORK/$version.json"
    [ "$kind" = baseline ] && doc="$WORK/base-$version.json"
    tools/node_modules/.bin/openapi-typescript "$doc" -o "tools/generated/evolution-$version.d.ts" >/dev/null
  done
  (cd tools && node_modules/.bin/tsc --noEmit -p tsconfig.json)
  for version in v1 v2; do
    modes="current fields codes"
    [ "$kind" = baseline ] && modes="current fields"
    for mode in $modes; do ts_evolution "$kind" "$version" "$mode"; done
  done
done
# The test must be able to fail: a release that drops or renames a customer field breaks the
# baseline clients, and each check has to say so.
for version in v1 v2; do
  tools/node_modules/.bin/openapi-typescript "$WORK/base-$version.json" -o "tools/generated/evolution-$version.d.ts" >/dev/null
done
for mode in drop:email rename:email:e_mail; do
  for version in v1 v2; do
    if python_evolution baseline "$version" "$mode" >"$WORK/evolution-broken.log" 2>&1 ||
      ! grep -q "KeyError: 'email'" "$WORK/evolution-broken.log"; then
      cat "$WORK/evolution-broken.log"
      echo "api-tools: the Python evolution check did not fail on a release with '$mode' ($version)" >&2
      exit 1
    fi
    echo "self-check: the baseline Python $version client fails on a release with '$mode': KeyError: 'email'"
    if ts_evolution baseline "$version" "$mode" >"$WORK/evolution-broken.log" 2>&1 ||
      ! grep -q "does not fit the document the client was generated from" "$WORK/evolution-broken.log"; then
      cat "$WORK/evolution-broken.log"
      echo "api-tools: the TypeScript evolution check did not fail on a release with '$mode' ($version)" >&2
      exit 1
    fi
    echo "self-check: the baseline TypeScript $version client fails on a release with '$mode':" \
      "$(grep -o "must have required property '[a-z_]*'" "$WORK/evolution-broken.log" | head -1)"
  done
done

step "/docs in headless Chromium (playwright-core, $CHROMIUM)"
(cd tools && CHROMIUM="$CHROMIUM" node docs_tryout.mjs "$BASE" "$TOKEN")
# The check must be able to fail: with a wrong token typed into "Authorize" the page shows 401.
if (cd tools && CHROMIUM="$CHROMIUM" CLIENTELE_DOCS_TOKEN="clt_$(printf 'x%.0s' $(seq 32))" \
  node docs_tryout.mjs "$BASE" "$TOKEN") >"$WORK/docs-wrong-token.log" 2>&1 ||
  ! grep -q 'the live response was 401' "$WORK/docs-wrong-token.log"; then
  cat "$WORK/docs-wrong-token.log"
  echo "api-tools: the /docs try-out did not fail on the 401 of a wrong token" >&2
  exit 1
fi
echo "self-check: with a wrong token the /docs try-out fails: $(grep -o 'the live response was 401' "$WORK/docs-wrong-token.log")"

step "api-tools: all checks passed"
