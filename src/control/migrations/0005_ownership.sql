-- Ownership recorded, never inferred: every database, schema, role and file Flotilla
-- makes is claimed here, by name, before it is made; nothing is dropped, renamed or
-- restored over unless a claim says whose it is. Operations record each mutating
-- command while it runs, so that one killed midway can be finished or undone.

CREATE TABLE operations (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  command         text NOT NULL,
  tenant          text,
  arguments       jsonb NOT NULL DEFAULT '{}',
  actor           text NOT NULL,
  -- the liveness lock of the process running it: held while that process lives
  runner_key      integer NOT NULL,
  -- that process's tag: while any of its control-database sessions is connected, it lives
  owner           text NOT NULL,
  -- the tenant's status before the operation changed it, put back if it dies
  previous_status text,
  -- how far it got, where that decides how it is finished or undone (restores: 'verified')
  phase           text,
  -- a process finishing or undoing it after it died
  sweeper_key     integer,
  started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at     timestamptz,
  outcome         text CHECK (outcome IN ('succeeded', 'failed', 'interrupted'))
);

CREATE INDEX operations_unfinished_idx ON operations (started_at) WHERE finished_at IS NULL;

-- The operation creating a tenant (tenant create, restore --as) while it is provisioning.
ALTER TABLE tenants ADD COLUMN operation_id uuid REFERENCES operations (id);

ALTER TABLE backups ADD COLUMN schemas text[];

CREATE TABLE storage (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- a registered server; '' for files on the disk of the machine that wrote them
  server        text NOT NULL,
  kind          text NOT NULL CHECK (kind IN ('database', 'schema', 'role', 'file')),
  -- the database holding a schema; '' otherwise
  database_name text NOT NULL DEFAULT '',
  name          text NOT NULL CHECK (octet_length(name) <= 63 OR kind = 'file'),
  -- tenant: the tenant's own; backup: a snapshot database or dump file; scratch: an operation's, dropped
  -- when it ends; aside: a tenant's previous content, kept until a restore is verified; shared: the
  -- database that holds schema tenants; control: the control database
  purpose       text NOT NULL CHECK (purpose IN ('tenant', 'backup', 'scratch', 'aside', 'shared', 'control')),
  tenant_id     uuid REFERENCES tenants (id),
  backup_id     uuid REFERENCES backups (id),
  operation_id  uuid REFERENCES operations (id),
  -- for an aside: the name whose content it holds
  aside_of      text,
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  UNIQUE (server, kind, database_name, name),
  CHECK (purpose <> 'tenant' OR tenant_id IS NOT NULL),
  CHECK (purpose <> 'backup' OR backup_id IS NOT NULL),
  CHECK (purpose NOT IN ('scratch', 'aside') OR operation_id IS NOT NULL),
  CHECK (purpose <> 'aside' OR aside_of IS NOT NULL)
);

CREATE INDEX storage_tenant_idx ON storage (tenant_id) WHERE tenant_id IS NOT NULL;
CREATE INDEX storage_operation_idx ON storage (operation_id) WHERE operation_id IS NOT NULL;

-- What tenants own today, from what Flotilla recorded creating. When two tenants were given one
-- name (PostgreSQL cut a long name to 63 bytes), the older keeps it; the other owns nothing it
-- could destroy. A schema tenant's other schemas are claimed when its history shows it made them.
INSERT INTO storage (server, kind, database_name, name, purpose, tenant_id)
SELECT server, 'database', '', left(database_name, 63), 'tenant', id FROM tenants WHERE kind = 'database'
 ORDER BY created_at, slug
ON CONFLICT DO NOTHING;

INSERT INTO storage (server, kind, database_name, name, purpose, tenant_id)
SELECT server, 'schema', left(database_name, 63), left(schema_name, 63), 'tenant', id FROM tenants WHERE kind = 'schema'
 ORDER BY created_at, slug
ON CONFLICT DO NOTHING;

INSERT INTO storage (server, kind, database_name, name, purpose)
SELECT DISTINCT server, 'database', '', left(database_name, 63), 'shared' FROM tenants WHERE kind = 'schema'
ON CONFLICT DO NOTHING;

INSERT INTO storage (server, kind, database_name, name, purpose, tenant_id, backup_id)
SELECT b.server, 'database', '', b.location, 'backup', t.id, b.id FROM backups b LEFT JOIN tenants t ON t.slug = b.tenant_slug
 WHERE b.strategy = 'snapshot'
ON CONFLICT DO NOTHING;

INSERT INTO storage (server, kind, database_name, name, purpose, tenant_id, backup_id)
SELECT '', 'file', '', b.location, 'backup', t.id, b.id FROM backups b LEFT JOIN tenants t ON t.slug = b.tenant_slug
 WHERE b.strategy = 'dump'
ON CONFLICT DO NOTHING;

-- Audit: a command's start and its end; one that was killed shows as started, then interrupted.
ALTER TABLE audit_events ADD COLUMN operation_id uuid;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_outcome_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_outcome_check
  CHECK (outcome IN ('succeeded', 'failed', 'skipped', 'planned', 'started', 'interrupted'));

-- A registered server's password, kept apart from its URL so that no listing can show it.
ALTER TABLE servers ADD COLUMN password text;
