-- Nothing changes on SQLite. PostgreSQL's 0005 moves each account's customer
-- count into rows of `account_counts`, so that concurrent creates from many
-- instances do not all lock one row. SQLite has one writer thread that commits
-- concurrent writes together, so `accounts.customer_count` stays. This step
-- keeps the two backends' migration numbers the same.
SELECT 1;
