-- Token lifecycle (API.md §2, §7): a label, an expiry, rotation, and the audit trail.

-- name: the operator's label (`tokens create --name`). expires_at: Unix
-- seconds after which the token answers 401 token_expired (NULL: never).
ALTER TABLE tokens ADD COLUMN name TEXT;
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
-- The secret the last `tokens rotate` replaced (its SHA-256) and the end of
-- its grace period: it keeps working, as the same token, until then.
ALTER TABLE tokens ADD COLUMN previous_hash BLOB;
ALTER TABLE tokens ADD COLUMN previous_expires_at INTEGER;
CREATE UNIQUE INDEX tokens_previous_hash ON tokens (previous_hash);

-- Every admin action, written in the transaction of the action itself.
-- actor is the operating-system user who ran the command; never a secret here.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
