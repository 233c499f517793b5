-- Claims move from the rows to their shards. A row lease rewrote each wide row (about 1.7 KB
-- with its body, four indexes) only to mark it taken, then deleted it after delivery: the UPDATE
-- cost PostgreSQL about seven times the DELETE (measured: 100,000 rows, 2.0 s against 0.28 s).
-- A shard lease is one narrow row per claimed run, whatever the run's length, and the rows
-- themselves are written once: deleted when delivered, updated only when a delivery fails.
--
-- A shard's lease row outlives its lease (owner NULL when free): claiming and releasing are then
-- HOT updates of the same narrow row, which pruning keeps compact without waiting for VACUUM
-- (autovacuum visits a database once a minute by default; an insert-and-delete lease table grew
-- 100,000 dead rows in 30 s of steady traffic and its scans dominated PostgreSQL's profile).
-- Drainers sweep rows of shards that emptied.

CREATE TABLE outbox_lease (
    shard_key  text        PRIMARY KEY,
    owner      text,
    pid        integer,
    until      timestamptz,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE outbox_lease SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000,
                              autovacuum_vacuum_cost_delay = 0, fillfactor = 50);
COMMENT ON TABLE outbox_lease IS 'Shards (mailbox within a region) claimed by a drainer. Only the holder delivers, retries or dead-letters rows of a shard, so its rows go out in id order. A lease is void when its session is gone or its time is up; the holder ends it (owner NULL) together with the outcome of the run''s last row. Rows of free shards without undelivered rows are swept.';
COMMENT ON COLUMN outbox_lease.shard_key IS 'control_outbox.shard_key of the claimed shard ({mailbox}@{region}).';
COMMENT ON COLUMN outbox_lease.owner IS 'Daemon instance holding the claim; NULL while the shard is free.';
COMMENT ON COLUMN outbox_lease.pid IS 'Backend pid of the claiming session: when it is gone (the daemon died), the lease is void at once.';
COMMENT ON COLUMN outbox_lease.until IS 'The lease is void after this time even if that session lives on (drain.lease).';
COMMENT ON COLUMN outbox_lease.claimed_at IS 'When the shard was last claimed.';

ALTER TABLE control_outbox DROP COLUMN lease_owner, DROP COLUMN lease_pid, DROP COLUMN lease_until;
