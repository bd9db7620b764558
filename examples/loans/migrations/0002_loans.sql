CREATE TABLE loans (
  id           serial PRIMARY KEY,
  member_id    integer NOT NULL REFERENCES members (id),
  amount_cents bigint NOT NULL CHECK (amount_cents > 0),
  status       text NOT NULL DEFAULT 'active',
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX loans_member_id_idx ON loans (member_id);
