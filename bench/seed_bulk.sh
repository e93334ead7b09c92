#!/usr/bin/env bash
# Seeds a database with N customers in seconds, for the benchmarks at scale
# (issue 15 item 7: GET by id and a v2 list page at 1,000,000 customers).
#
#   bench/seed_bulk.sh DATABASE_URL COUNT
#
# `examples/seed DATABASE_URL 0` creates the schema, the account `bench` and
# its write token through the store (as the server would); then one SQL
# statement inserts COUNT customers of that account (ids `cus_0B` + 24 digits:
# well-formed, in id order) and sets the account's count to match: with
# `psql` for a postgres:// URL (into `account_counts`), with `sqlite3` for a
# sqlite:// one (into `accounts.customer_count`). Prints `TOKEN=...` and
# `CUSTOMER_ID=...` (one from the middle), like examples/seed.
set -euo pipefail
cd "$(dirname "$0")/.."
url=$1 count=$2
cargo build --release --quiet --example seed
seeded=$(target/release/examples/seed "$url" 0)
token=$(echo "$seeded" | sed -n 's/^TOKEN=//p')
id_sql="'cus_0B' || lpad(CAST(n AS TEXT), 24, '0')"
case "$url" in
  postgres://*|postgresql://*)
    psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<SQL
BEGIN;
INSERT INTO customers (account_id, id, name, email, email_normalized, phone, has_address, metadata,
                       created_at, updated_at, version)
SELECT a.id, $id_sql, 'Customer ' || n, 'customer' || n || '@example.com', 'customer' || n || '@example.com',
       NULL, FALSE, '{}', 1700000000, 1700000000, 1
FROM accounts a, generate_series(1, $count) AS n WHERE a.name = 'bench';
INSERT INTO account_counts (account_id, shard, n) SELECT id, 0, $count FROM accounts WHERE name = 'bench'
ON CONFLICT (account_id, shard) DO UPDATE SET n = account_counts.n + excluded.n;
COMMIT;
ANALYZE customers;
SQL
    ;;
  sqlite://*)
    path=${url#sqlite://}
    sqlite3 "$path" >/dev/null <<SQL
PRAGMA journal_mode = wal;
BEGIN;
WITH RECURSIVE series(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM series WHERE n < $count)
INSERT INTO customers (account_id, id, name, email, email_normalized, phone, has_address, metadata,
                       created_at, updated_at, version)
SELECT a.id, 'cus_0B' || printf('%024d', n), 'Customer ' || n, 'customer' || n || '@example.com',
       'customer' || n || '@example.com', NULL, 0, '{}', 1700000000, 1700000000, 1
FROM accounts a, series WHERE a.name = 'bench';
UPDATE accounts SET customer_count = customer_count + $count WHERE name = 'bench';
COMMIT;
ANALYZE;
SQL
    ;;
  *) echo "seed_bulk.sh: a postgres:// or sqlite:// URL, please" >&2; exit 2 ;;
esac
echo "TOKEN=$token"
printf 'CUSTOMER_ID=cus_0B%024d\n' $(( (count + 1) / 2 ))
