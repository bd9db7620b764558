-- What running apps need from the control plane: maintenance, per tenant and for the
-- whole fleet, and a notification on every change an app must follow (a tenant's
-- status, maintenance or placement, its domains, a server's address), sent by the
-- database itself so that no writer can forget it.

-- A tenant under maintenance: {"message": text, "retryAfter": seconds, "since": timestamp}; null when it is up.
ALTER TABLE flotilla.tenants ADD COLUMN maintenance jsonb;

-- The whole fleet under maintenance: at most one row.
CREATE TABLE flotilla.fleet_maintenance (
  only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  message     text,
  retry_after integer NOT NULL CHECK (retry_after > 0),
  since       timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION flotilla.notify_runtime() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'tenants' THEN
    IF TG_OP <> 'INSERT' THEN PERFORM pg_notify('flotilla_runtime', 'tenant:' || OLD.slug); END IF;
    IF TG_OP <> 'DELETE' THEN PERFORM pg_notify('flotilla_runtime', 'tenant:' || NEW.slug); END IF;
  ELSIF TG_TABLE_NAME = 'domains' THEN
    IF TG_OP <> 'INSERT' THEN PERFORM pg_notify('flotilla_runtime', 'domain:' || OLD.host); END IF;
    IF TG_OP <> 'DELETE' THEN PERFORM pg_notify('flotilla_runtime', 'domain:' || NEW.host); END IF;
  ELSIF TG_TABLE_NAME = 'servers' THEN
    PERFORM pg_notify('flotilla_runtime', 'server:' || coalesce(NEW.name, OLD.name));
  ELSE
    PERFORM pg_notify('flotilla_runtime', 'fleet');
  END IF;
  RETURN NULL;
END $$;

-- Only the columns an app reads: tags, settings and timestamps change without waking every app.
CREATE TRIGGER tenants_notify_runtime AFTER INSERT OR DELETE OR UPDATE OF slug, kind, server, database_name, schema_name, status, maintenance
  ON flotilla.tenants FOR EACH ROW EXECUTE FUNCTION flotilla.notify_runtime();
CREATE TRIGGER domains_notify_runtime AFTER INSERT OR UPDATE OR DELETE ON flotilla.domains FOR EACH ROW EXECUTE FUNCTION flotilla.notify_runtime();
CREATE TRIGGER servers_notify_runtime AFTER INSERT OR UPDATE OF url, password OR DELETE ON flotilla.servers FOR EACH ROW EXECUTE FUNCTION flotilla.notify_runtime();
CREATE TRIGGER fleet_maintenance_notify_runtime AFTER INSERT OR UPDATE OR DELETE ON flotilla.fleet_maintenance FOR EACH STATEMENT EXECUTE FUNCTION flotilla.notify_runtime();
