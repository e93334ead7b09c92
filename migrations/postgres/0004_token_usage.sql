-- Requests per token and UTC day, by status class (API.md §7, `tokens usage`):
-- the same table as migrations/sqlite/0004_token_usage.sql.
CREATE TABLE token_usage (
    token_id  TEXT COLLATE "C" NOT NULL REFERENCES tokens (id),
    day       BIGINT NOT NULL,  -- days since 1970-01-01, UTC
    count_2xx BIGINT NOT NULL DEFAULT 0,
    count_3xx BIGINT NOT NULL DEFAULT 0,
    count_4xx BIGINT NOT NULL DEFAULT 0,  -- 4xx other than 429
    count_429 BIGINT NOT NULL DEFAULT 0,
    count_5xx BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (token_id, day)
);
