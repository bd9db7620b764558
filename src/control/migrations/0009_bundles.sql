-- Signed bundles applied at this site (`flotilla bundle apply`): every attempt, in
-- order, with its outcome and its report. The installed version is the newest
-- `installed` row: a bundle at or below it is refused (anti-rollback). Append-only.

CREATE TABLE flotilla.bundle_installs (
  id           text PRIMARY KEY,
  product      text NOT NULL,
  version      text NOT NULL,
  -- SHA-256 of the bundle file as a whole, and the id of the key that signed it.
  digest       text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
  key_id       text NOT NULL,
  outcome      text NOT NULL CHECK (outcome IN ('installed', 'failed')),
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz NOT NULL DEFAULT now(),
  installed_by text NOT NULL,
  report       jsonb NOT NULL
);

CREATE INDEX bundle_installs_by_product ON flotilla.bundle_installs (product, finished_at);

CREATE FUNCTION flotilla.bundle_installs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'bundle_installs is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER bundle_installs_no_update_or_delete BEFORE UPDATE OR DELETE ON flotilla.bundle_installs
  FOR EACH ROW EXECUTE FUNCTION flotilla.bundle_installs_append_only();

CREATE TRIGGER bundle_installs_no_truncate BEFORE TRUNCATE ON flotilla.bundle_installs
  FOR EACH STATEMENT EXECUTE FUNCTION flotilla.bundle_installs_append_only();
