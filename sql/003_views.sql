-- Views for DBAs: backlog per mailbox and dead letters per region, category and reason.

CREATE VIEW outbox_backlog AS
SELECT o.region_name,
       o.mailbox_name,
       count(*)                        AS rows,
       min(o.date_added)               AS oldest_date_added,
       now() - min(o.date_added)       AS oldest_age,
       EXISTS (SELECT 1 FROM outbox_pause p
               WHERE (p.kind = 'mailbox' AND p.name = o.mailbox_name)
                  OR (p.kind = 'region' AND p.name = o.region_name)) AS paused
FROM control_outbox o
GROUP BY o.region_name, o.mailbox_name;
COMMENT ON VIEW outbox_backlog IS 'One row per region and mailbox with undelivered rows.';
COMMENT ON COLUMN outbox_backlog.region_name IS 'Destination region (NULL: app webhooks, emails).';
COMMENT ON COLUMN outbox_backlog.mailbox_name IS 'Shard key.';
COMMENT ON COLUMN outbox_backlog.rows IS 'Undelivered rows, including those waiting for a retry.';
COMMENT ON COLUMN outbox_backlog.oldest_date_added IS 'date_added of the oldest row.';
COMMENT ON COLUMN outbox_backlog.oldest_age IS 'How long the oldest row has waited.';
COMMENT ON COLUMN outbox_backlog.paused IS 'True when the mailbox or its region is paused (effective state).';

CREATE VIEW outbox_dead_summary AS
SELECT region_name, category, reason, count(*) AS rows, max(dead_at) AS last_dead_at
FROM control_outbox_dead
GROUP BY region_name, category, reason;
COMMENT ON VIEW outbox_dead_summary IS 'Dead letters per region, category and reason.';
COMMENT ON COLUMN outbox_dead_summary.region_name IS 'Destination region (NULL: app webhooks, emails).';
COMMENT ON COLUMN outbox_dead_summary.category IS 'webhook_proxy, app_webhook or email.';
COMMENT ON COLUMN outbox_dead_summary.reason IS 'Why they died.';
COMMENT ON COLUMN outbox_dead_summary.rows IS 'How many.';
COMMENT ON COLUMN outbox_dead_summary.last_dead_at IS 'Newest dead_at.';
