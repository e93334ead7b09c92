-- Events and webhooks (API.md §8): the same tables as
-- migrations/sqlite/0006_events.sql. Times here are Unix MILLISECONDS.

CREATE TABLE events (
    id          TEXT COLLATE "C" PRIMARY KEY,
    -- No foreign key to accounts: checking it would share-lock the account's
    -- row on every customer write (see 0005_account_counts.sql).
    account_id  TEXT COLLATE "C" NOT NULL,
    type        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    customer_id TEXT COLLATE "C" NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX events_account ON events (account_id, id);
-- Retention deletes by id (a ULID starts with its time): no index on created_at.

CREATE TABLE webhook_endpoints (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    account_id           TEXT COLLATE "C" NOT NULL,
    url                  TEXT NOT NULL,
    event_types          TEXT[] NOT NULL,
    description          TEXT,
    secret               TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    last_delivery_at     BIGINT,
    last_delivery_status INTEGER
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id);

CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    account_id      TEXT COLLATE "C" NOT NULL,
    endpoint_id     TEXT COLLATE "C" NOT NULL,
    event_id        TEXT COLLATE "C" NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    leased_until    BIGINT,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed'))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
