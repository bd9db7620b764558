-- Scenario S1: every table gets a client_id, and no row is lost.
-- Add the column nullable, insert the default client, back-fill every row, then make it NOT NULL.
CREATE TABLE clients (
  id   serial PRIMARY KEY,
  code text NOT NULL UNIQUE,
  name text NOT NULL
);

INSERT INTO clients (code, name) VALUES ('CLIENT_A', 'Default client');

ALTER TABLE members ADD COLUMN client_id integer REFERENCES clients (id);
ALTER TABLE loans ADD COLUMN client_id integer REFERENCES clients (id);
ALTER TABLE payments ADD COLUMN client_id integer REFERENCES clients (id);

UPDATE members SET client_id = (SELECT id FROM clients WHERE code = 'CLIENT_A') WHERE client_id IS NULL;
UPDATE loans SET client_id = (SELECT id FROM clients WHERE code = 'CLIENT_A') WHERE client_id IS NULL;
UPDATE payments SET client_id = (SELECT id FROM clients WHERE code = 'CLIENT_A') WHERE client_id IS NULL;

ALTER TABLE members ALTER COLUMN client_id SET NOT NULL;
ALTER TABLE loans ALTER COLUMN client_id SET NOT NULL;
ALTER TABLE payments ALTER COLUMN client_id SET NOT NULL;

-- Runs after the transaction commits (it cannot run inside one); Flotilla records it on its own.
CREATE INDEX CONCURRENTLY members_client_id_idx ON members (client_id);
