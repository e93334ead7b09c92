-- Events in a rowid table (API.md §8), rebuilt from 0006's WITHOUT ROWID one.
--
-- Every customer write inserts an event of a few hundred bytes. In a WITHOUT
-- ROWID table such rows live in the key's B-tree itself and split its pages
-- every few rows; a rowid table appends them at its right edge, and only the
-- (account_id, id) index is a second tree. The writer thread inserts one
-- event per write, so this is paid by every write (BENCHMARKS.md, events).
-- Rows keep their order: ids are ULIDs, the writer inserts them in id order,
-- so rowid order is creation order and retention prunes the lowest rowids.
-- No foreign key to accounts: checking it cost a lookup per event (PostgreSQL
-- dropped it in 0006 for the same reason), and events are never written for
-- an account that does not exist. No customer_id column: nothing reads it,
-- and data holds the customer's id.
CREATE TABLE events_by_rowid (
    id         TEXT NOT NULL,
    account_id TEXT NOT NULL,
    type       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    data       TEXT NOT NULL
);
INSERT INTO events_by_rowid (id, account_id, type, created_at, data)
    SELECT id, account_id, type, created_at, data FROM events ORDER BY id;
DROP TABLE events;
ALTER TABLE events_by_rowid RENAME TO events;
CREATE UNIQUE INDEX events_account ON events (account_id, id);
