-- The PostgreSQL schema: the same tables as migrations/sqlite/0001_init.sql.
-- Ids use the "C" collation so `ORDER BY id` and `id > $cursor` compare bytes,
-- as SQLite does, whatever the database's default collation: ULIDs then sort
-- by creation time and cursor pages never skip or repeat a row.

-- Accounts own tokens and customers. customer_count keeps v1's `total` O(1).
CREATE TABLE accounts (
    id             TEXT COLLATE "C" PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    created_at     BIGINT NOT NULL,
    customer_count BIGINT NOT NULL DEFAULT 0
);

-- Only the SHA-256 of a token is stored; prefix is its first characters, for listings.
CREATE TABLE tokens (
    id                TEXT COLLATE "C" PRIMARY KEY,
    account_id        TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    secret_hash       BYTEA NOT NULL UNIQUE,
    prefix            TEXT NOT NULL,
    scope             TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    rate_limit        BIGINT,
    rate_window_secs  BIGINT,
    created_at        BIGINT NOT NULL,
    last_used_at      BIGINT,
    revoked_at        BIGINT
);
CREATE INDEX tokens_account ON tokens (account_id, id);

-- Ids are ULIDs, so the primary key order is creation order within an account.
-- email_normalized is the lower-cased email, computed by the server.
CREATE TABLE customers (
    account_id          TEXT COLLATE "C" NOT NULL,
    id                  TEXT COLLATE "C" NOT NULL,
    name                TEXT NOT NULL,
    email               TEXT NOT NULL,
    email_normalized    TEXT COLLATE "C" NOT NULL,
    phone               TEXT,
    has_address         BOOLEAN NOT NULL DEFAULT FALSE,
    address_line1       TEXT,
    address_line2       TEXT,
    address_city        TEXT,
    address_region      TEXT,
    address_postal_code TEXT,
    address_country     TEXT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    version             BIGINT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX customers_email ON customers (account_id, email_normalized, id);

-- The first response to each idempotent POST, replayed for retries.
CREATE TABLE idempotency_keys (
    account_id  TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    fingerprint BYTEA NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    location    TEXT,
    etag        TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
