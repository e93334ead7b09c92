-- Events keyed by (account_id, id) in one tree (API.md §8), rebuilt from
-- 0006's table keyed by id with a second (account_id, id) index.
--
-- Every customer write inserts an event. With two trees, each batch the
-- writer commits rewrote two more pages in the WAL (the right edges of the
-- table and of the index); with the rows kept in the (account_id, id) key's
-- tree alone it is one, and each event is written once, not twice
-- (BENCHMARKS.md, events). Reads never needed the id alone: an event is
-- always read within its account, deliveries carry the account too, and
-- retention prunes account by account.
-- No foreign key to accounts: checking it cost a lookup per event (PostgreSQL
-- dropped it in 0006 for the same reason), and events are never written for
-- an account that does not exist. No customer_id column: nothing reads it,
-- and data holds the customer's id.
CREATE TABLE events_by_account (
    account_id TEXT NOT NULL,
    id         TEXT NOT NULL,
    type       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
) WITHOUT ROWID;
INSERT INTO events_by_account (account_id, id, type, created_at, data)
    SELECT account_id, id, type, created_at, data FROM events ORDER BY account_id, id;
DROP TABLE events;
ALTER TABLE events_by_account RENAME TO events;
