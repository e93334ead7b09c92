-- `customers import`'s marks of the lines it created customers from (API.md
-- §7 "Data tools": re-running a file creates nothing twice), in a narrow table
-- of their own. They were rows of idempotency_keys under the key "import",
-- a tab and the line's SHA-256 in hex: about 190 bytes each, in two B-trees
-- (the primary key and idempotency_keys_created), which made the import write
-- a page of each per line. Here a mark is the account and the 32-byte hash,
-- one tree, no time: marks are never purged.
CREATE TABLE import_records (
    account_id TEXT NOT NULL,
    line_hash  BLOB NOT NULL CHECK (length(line_hash) = 32),
    PRIMARY KEY (account_id, line_hash)
) WITHOUT ROWID;

-- The marks written so far move here (char(9) is the tab; unhex needs SQLite
-- 3.41). Only `customers import` wrote these keys: no request can send a tab.
-- An import by the previous release's binary after the upgrade writes its
-- marks where this release does not look: finish imports before upgrading.
INSERT OR IGNORE INTO import_records (account_id, line_hash)
SELECT account_id, unhex(substr(key, 8)) FROM idempotency_keys
WHERE substr(key, 1, 7) = 'import' || char(9) AND length(unhex(substr(key, 8))) = 32;
DELETE FROM idempotency_keys
WHERE substr(key, 1, 7) = 'import' || char(9) AND length(unhex(substr(key, 8))) = 32;
