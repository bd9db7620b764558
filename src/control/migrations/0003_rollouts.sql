-- Fleet rollouts: a rollout and one row per tenant, claimed by runners through this database.

ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_status_check
  CHECK (status IN ('provisioning', 'active', 'suspended', 'archived', 'restoring', 'upgrading'));
ALTER TABLE tenants ADD COLUMN tags text[] NOT NULL DEFAULT '{}';

-- NULL: derived from the server's max_connections.
ALTER TABLE servers ADD COLUMN max_concurrent_migrations integer CHECK (max_concurrent_migrations > 0);

CREATE TABLE rollouts (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  status      text NOT NULL CHECK (status IN ('running', 'halted', 'finished', 'cancelled')),
  target      text,
  options     jsonb NOT NULL,
  selection   jsonb NOT NULL,
  started_by  text NOT NULL,
  halt_reason text,
  -- the --canary-check command: NULL (not run yet), running, passed, failed
  canary_check text CHECK (canary_check IN ('running', 'passed', 'failed')),
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at timestamptz
);

CREATE TABLE rollout_tenants (
  rollout_id      uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  tenant          text NOT NULL,
  server          text NOT NULL,
  -- 0: the canary wave
  wave            integer NOT NULL,
  position        integer NOT NULL,
  state           text NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped')),
  attempts        integer NOT NULL DEFAULT 0,
  runner          text,
  -- the runner's session advisory lock key: held while the runner lives
  runner_key      integer,
  previous_status text,
  version_before  text,
  version_after   text,
  error_code      text,
  error_message   text,
  backup_id       uuid,
  started_at      timestamptz,
  finished_at     timestamptz,
  PRIMARY KEY (rollout_id, tenant)
);

CREATE INDEX rollout_tenants_claim_idx ON rollout_tenants (rollout_id, state, wave, position);
