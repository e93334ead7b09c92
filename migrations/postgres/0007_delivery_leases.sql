-- Each lease of a delivery has an identity (API.md §8): set, at random, by
-- the lease that takes the row; an outcome is recorded only while it is still
-- the row's, so a worker whose lease ran out (a slow send) cannot overwrite the
-- outcome of a later lease's attempt. NULL: not leased, or leased by an
-- instance of the previous release (its record does not check the lease).
-- Same column as migrations/sqlite/0007_delivery_leases.sql.
ALTER TABLE webhook_deliveries ADD COLUMN lease_id BIGINT;
