-- Backups catalog, append-only audit trail, and the `restoring` status (a tenant offline while restored).

ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_status_check
  CHECK (status IN ('provisioning', 'active', 'suspended', 'archived', 'restoring'));

CREATE TABLE backups (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_slug    text NOT NULL,
  tenant_kind    text NOT NULL CHECK (tenant_kind IN ('database', 'schema')),
  server         text NOT NULL,
  strategy       text NOT NULL CHECK (strategy IN ('dump', 'snapshot')),
  -- a file path (dump) or a database name on the tenant's server (snapshot)
  location       text NOT NULL,
  size_bytes     bigint NOT NULL,
  checksum       text,
  schema_version text,
  -- row counts per table when the backup was taken; a restore must reproduce them
  fingerprint    jsonb NOT NULL,
  reason         text NOT NULL,
  run_id         uuid,
  created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX backups_tenant_created_idx ON backups (tenant_slug, created_at DESC);

CREATE TABLE audit_events (
  id             bigserial PRIMARY KEY,
  at             timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor          text NOT NULL,
  command        text NOT NULL,
  arguments      jsonb NOT NULL DEFAULT '{}',
  tenant         text,
  version_before text,
  version_after  text,
  outcome        text NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'skipped', 'planned')),
  error_code     text,
  error_message  text,
  duration_ms    integer NOT NULL,
  backup_id      uuid,
  run_id         uuid
);

CREATE INDEX audit_events_tenant_at_idx ON audit_events (tenant, at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
