-- Events and webhooks (API.md §8). Times here are Unix MILLISECONDS.

-- One row per successful customer write, written in the write's transaction
-- (a transactional outbox). Ids are evt_ + a ULID: the key order is creation
-- order within an account. data is the customer after the write (for a
-- deletion, its last stored state), in the storage's own JSON encoding
-- (src/storage/snapshot.rs), not a wire format. Retention deletes by id
-- (a ULID starts with its time), so created_at needs no index of its own:
-- every index is paid for by every customer write.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    type        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    data        TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX events_account ON events (account_id, id);

-- event_types: a JSON array of event type names. secret: whsec_..., shown
-- to its owner once. last_delivery_status: an HTTP status, 0 for no response.
CREATE TABLE webhook_endpoints (
    id                   TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL,
    url                  TEXT NOT NULL,
    event_types          TEXT NOT NULL,
    description          TEXT,
    secret               TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    last_delivery_at     INTEGER,
    last_delivery_status INTEGER
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id);

-- One row per event and subscribed endpoint, written with the event; the
-- delivery worker leases the pending ones that are due.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id      TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed'))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
-- Deleting an endpoint, or pruning events, deletes their deliveries.
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
