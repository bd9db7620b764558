-- What verification saw, kept with each tenant's upgrade event: losses an allow
-- accepted, values overwritten, and the tables compared.
ALTER TABLE flotilla.audit_events ADD COLUMN details jsonb;
