-- Requests per token and UTC day, by status class (API.md §7, `tokens usage`).
-- Each instance adds its in-memory counts here at least once a minute.
CREATE TABLE token_usage (
    token_id  TEXT NOT NULL REFERENCES tokens (id),
    day       INTEGER NOT NULL,  -- days since 1970-01-01, UTC
    count_2xx INTEGER NOT NULL DEFAULT 0,
    count_3xx INTEGER NOT NULL DEFAULT 0,
    count_4xx INTEGER NOT NULL DEFAULT 0,  -- 4xx other than 429
    count_429 INTEGER NOT NULL DEFAULT 0,
    count_5xx INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (token_id, day)
) WITHOUT ROWID;
