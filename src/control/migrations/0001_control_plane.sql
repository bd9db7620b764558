-- The control plane: servers, tenants and their domains.
-- Applied by Flotilla's own engine into the schema "flotilla" of the control database.

CREATE TABLE servers (
  name       text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]{0,40}$'),
  url        text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug          text NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9-]{1,40}$'),
  name          text NOT NULL,
  kind          text NOT NULL CHECK (kind IN ('database', 'schema')),
  server        text NOT NULL REFERENCES servers (name),
  database_name text NOT NULL,
  schema_name   text NOT NULL,
  status        text NOT NULL CHECK (status IN ('provisioning', 'active', 'suspended', 'archived')),
  plan          text,
  settings      jsonb NOT NULL DEFAULT '{}',
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (server, database_name, schema_name)
);

CREATE TABLE domains (
  host       text PRIMARY KEY,
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  is_primary boolean NOT NULL DEFAULT false
);

CREATE UNIQUE INDEX domains_one_primary ON domains (tenant_id) WHERE is_primary;
