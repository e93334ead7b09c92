-- Emails are matched by Unicode full case folding (API.md §3) instead of
-- lower case. The match keys are recomputed in Rust, where the folding lives
-- (storage::postgres::data_migrations), right after this migration; this row
-- says that work is still to do, and is deleted in the same transaction.
CREATE TABLE pending_data_migrations (
    name TEXT PRIMARY KEY
);
INSERT INTO pending_data_migrations (name) VALUES ('email_case_folding');
