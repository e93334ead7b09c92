-- Accounts own tokens and customers. customer_count keeps v1's `total` O(1).
CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    created_at     INTEGER NOT NULL,
    customer_count INTEGER NOT NULL DEFAULT 0
);

-- Only the SHA-256 of a token is stored; prefix is its first characters, for listings.
CREATE TABLE tokens (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    secret_hash       BLOB NOT NULL UNIQUE,
    prefix            TEXT NOT NULL,
    scope             TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    rate_limit        INTEGER,
    rate_window_secs  INTEGER,
    created_at        INTEGER NOT NULL,
    last_used_at      INTEGER,
    revoked_at        INTEGER
);
CREATE INDEX tokens_account ON tokens (account_id, id);

-- Ids are ULIDs, so the primary key order is creation order within an account.
CREATE TABLE customers (
    account_id          TEXT NOT NULL,
    id                  TEXT NOT NULL,
    name                TEXT NOT NULL,
    email               TEXT NOT NULL,
    email_normalized    TEXT NOT NULL,
    phone               TEXT,
    has_address         INTEGER NOT NULL DEFAULT 0,
    address_line1       TEXT,
    address_line2       TEXT,
    address_city        TEXT,
    address_region      TEXT,
    address_postal_code TEXT,
    address_country     TEXT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    version             INTEGER NOT NULL,
    PRIMARY KEY (account_id, id)
) WITHOUT ROWID;
CREATE INDEX customers_email ON customers (account_id, email_normalized, id);

-- The first response to each idempotent POST, replayed for retries.
CREATE TABLE idempotency_keys (
    account_id  TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    location    TEXT,
    etag        TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
