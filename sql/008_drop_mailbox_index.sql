-- control_outbox_mailbox served no query: claims go through control_outbox_shard_id, the backlog
-- gauges through control_outbox_region, and outboxctl filters by mailbox on control_outbox_dead.
-- Every index costs each insert, its WAL, and a full pass in every vacuum of this hot table
-- (measured: about 5 % of PostgreSQL's CPU per webhook on the ingress). Rows of one mailbox are
-- still found through the shard index: WHERE shard_key = mailbox_name || '@' || region_name.
DROP INDEX IF EXISTS control_outbox_mailbox;
COMMENT ON INDEX control_outbox_region IS 'Oldest row per region (the backlog-age gauges walk it as a loose index scan).';
COMMENT ON INDEX control_outbox_shard_id IS 'Claims: each shard''s head and the rows after it, in id order; also the way to find one mailbox''s rows (shard_key = mailbox_name || ''@'' || coalesce(region_name, '''')).';
