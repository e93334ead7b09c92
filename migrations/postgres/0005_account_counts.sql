-- Issue 15: an account's customer count without a row every write must lock.
-- accounts.customer_count made every create and delete of an account wait for
-- the previous one's commit on that one row. The count now lives in up to 16
-- rows per account (shard 0..15), summed on read; each write (a batch of
-- creates, a delete, an import batch) adds its delta to a shard at random
-- (storage::postgres::writer). No foreign key to accounts: checking one would
-- lock the account's row in share mode on every write (a multixact per batch).
CREATE TABLE account_counts (
    account_id TEXT COLLATE "C" NOT NULL,
    shard      SMALLINT NOT NULL CHECK (shard >= 0 AND shard < 16),
    n          BIGINT NOT NULL,
    PRIMARY KEY (account_id, shard)
);

-- The counts so far, exact: carried over in this migration's transaction,
-- with the accounts locked against writes from instances of the previous
-- release meanwhile.
LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO account_counts (account_id, shard, n)
SELECT id, 0, customer_count FROM accounts WHERE customer_count <> 0;

-- accounts.customer_count stays, unread, for one release: instances of the
-- previous release, still running during a rolling upgrade, write it
-- (docs/deploying.md: a migration only adds). A later release drops it.
