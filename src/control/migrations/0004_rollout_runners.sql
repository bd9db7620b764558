-- The runners working on each rollout; a runner is alive while its session advisory lock is held.
CREATE TABLE rollout_runners (
  rollout_id uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  runner     text NOT NULL,
  runner_key integer NOT NULL,
  joined_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (rollout_id, runner_key)
);
