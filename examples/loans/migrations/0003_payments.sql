CREATE TABLE payments (
  id           serial PRIMARY KEY,
  loan_id      integer NOT NULL REFERENCES loans (id),
  amount_cents bigint NOT NULL CHECK (amount_cents > 0),
  paid_at      timestamptz NOT NULL DEFAULT now()
);
