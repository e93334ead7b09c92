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

-- The marks written so far move here (chr(9) is the tab). Locked first, so an
-- import of the previous release still running cannot add one in between.
-- Only `customers import` wrote these keys: no request can send a tab.
LOCK TABLE idempotency_keys IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO import_records (account_id, line_hash)
SELECT account_id, decode(substr(key, 8), 'hex') FROM idempotency_keys
WHERE left(key, 7) = 'import' || chr(9) AND substr(key, 8) ~ '^[0-9a-f]{64}$'
ON CONFLICT DO NOTHING;
DELETE FROM idempotency_keys
WHERE left(key, 7) = 'import' || chr(9) AND substr(key, 8) ~ '^[0-9a-f]{64}$';
