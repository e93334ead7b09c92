-- `customers import`'s marks of the lines it created customers from (API.md
-- §7 "Data tools": re-running a file creates nothing twice), in a narrow table
-- of their own. They were rows of idempotency_keys under the key "import",
-- a tab and the line's SHA-256 in hex: about 190 bytes each, in two B-trees
-- (the primary key and idempotency_keys_created), which made the import write
-- a page of each per line. Here a mark is the account and the 32-byte hash,
-- one tree, no time: marks are never purged.
CREATE TABLE import_records (
    account_id TEXT COLLATE "C" NOT NULL,
    line_hash  BYTEA NOT NULL CHECK (octet_length(line_hash) = 32),
    PRIMARY KEY (account_id, line_hash)
);

-- The marks written so far move here (chr(9) is the tab), in one statement:
-- a row is deleted only as it is moved, and no table lock is needed (other
-- writes of idempotency_keys go on). Only `customers import` wrote these keys:
-- no request can send a tab. An import by the previous release's binary that
-- runs during or after the upgrade writes its marks where this release does
-- not look: finish imports before upgrading.
WITH moved AS (
    DELETE FROM idempotency_keys
    WHERE left(key, 7) = 'import' || chr(9) AND substr(key, 8) ~ '^[0-9a-f]{64}$'
    RETURNING account_id, key
)
INSERT INTO import_records (account_id, line_hash)
SELECT account_id, decode(substr(key, 8), 'hex') FROM moved
ON CONFLICT DO NOTHING;
