-- Members of one organization (scenario S2: a lending circle per organization).
CREATE TABLE members (
  id        serial PRIMARY KEY,
  full_name text NOT NULL,
  email     text NOT NULL UNIQUE,
  joined_at timestamptz NOT NULL DEFAULT now()
);
