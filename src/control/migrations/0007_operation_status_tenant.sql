-- The tenant whose status an operation set for its time (a restore's `restoring`,
-- a library migrate's `upgrading`), so that recovery puts back the right one
-- even when the operation itself names no single tenant.
ALTER TABLE flotilla.operations ADD COLUMN status_tenant text;
