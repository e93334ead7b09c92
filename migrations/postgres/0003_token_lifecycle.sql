-- Token lifecycle (API.md §2, §7): the same changes as
-- migrations/sqlite/0003_token_lifecycle.sql.

-- name: the operator's label (`tokens create --name`). expires_at: Unix
-- seconds after which the token answers 401 token_expired (NULL: never).
ALTER TABLE tokens ADD COLUMN name TEXT;
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
-- The secret the last `tokens rotate` replaced (its SHA-256) and the end of
-- its grace period: it keeps working, as the same token, until then.
ALTER TABLE tokens ADD COLUMN previous_hash BYTEA;
ALTER TABLE tokens ADD COLUMN previous_expires_at BIGINT;
CREATE UNIQUE INDEX tokens_previous_hash ON tokens (previous_hash);

-- Every admin action, written in the transaction of the action itself.
-- actor is the operating-system user who ran the command; never a secret here.
CREATE TABLE audit_log (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
