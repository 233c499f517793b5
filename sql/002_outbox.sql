-- The outbox itself: undelivered rows, dead letters, pauses, and the NOTIFY that wakes drainers.

CREATE TABLE control_outbox (
    id              bigserial   PRIMARY KEY,
    region_name     text,
    mailbox_name    text        NOT NULL,
    category        text        NOT NULL DEFAULT 'webhook_proxy',
    provider        text,
    integration_id  bigint,
    date_added      timestamptz NOT NULL DEFAULT now(),
    scheduled_for   timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    last_status     integer,
    last_error      text,
    last_attempt_at timestamptz,
    request_method  text        NOT NULL DEFAULT 'POST',
    request_path    text        NOT NULL DEFAULT '/',
    request_headers jsonb       NOT NULL DEFAULT '[]',
    request_body    bytea       NOT NULL DEFAULT '',
    target_url      text,
    lease_owner     text,
    lease_pid       integer,
    lease_until     timestamptz,
    shard_key       text        GENERATED ALWAYS AS (mailbox_name || '@' || coalesce(region_name, '')) STORED,
    CONSTRAINT control_outbox_has_destination CHECK (region_name IS NOT NULL OR target_url IS NOT NULL OR category = 'email')
);
-- Claims walk shards in key order and take each one's lowest id (the head).
CREATE INDEX control_outbox_shard_id ON control_outbox (shard_key, id);
CREATE INDEX control_outbox_mailbox ON control_outbox (mailbox_name);
CREATE INDEX control_outbox_region ON control_outbox (region_name, date_added);
-- Rows are short-lived: vacuum early and often so delivered rows do not bloat the table.
ALTER TABLE control_outbox SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000,
                                autovacuum_vacuum_insert_scale_factor = 0.0, autovacuum_vacuum_insert_threshold = 20000,
                                autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.05,
                                fillfactor = 90);

COMMENT ON TABLE control_outbox IS 'Undelivered messages, including those waiting for a retry. A delivered row is deleted; an undeliverable one moves to control_outbox_dead.';
COMMENT ON COLUMN control_outbox.id IS 'Insertion order; the X-Outbox-Id idempotency key, stable across retries and replays.';
COMMENT ON COLUMN control_outbox.region_name IS 'Destination region (a [[region]] of the config); NULL for app webhooks and emails.';
COMMENT ON COLUMN control_outbox.mailbox_name IS 'Shard key: rows of one mailbox are delivered strictly in id order, e.g. github:42, app:10.';
COMMENT ON COLUMN control_outbox.category IS 'webhook_proxy (a provider webhook for a region), app_webhook (Sentry-App webhook), email.';
COMMENT ON COLUMN control_outbox.provider IS 'Provider of a webhook_proxy row (github, slack, ...).';
COMMENT ON COLUMN control_outbox.integration_id IS 'Integration the webhook belongs to, when there is one.';
COMMENT ON COLUMN control_outbox.date_added IS 'When the row was committed; max_age counts from here.';
COMMENT ON COLUMN control_outbox.scheduled_for IS 'Not delivered before this time (backoff of a failed head).';
COMMENT ON COLUMN control_outbox.attempts IS 'Delivery attempts that failed so far.';
COMMENT ON COLUMN control_outbox.last_status IS 'HTTP status of the last attempt; 0 = timeout or connection error.';
COMMENT ON COLUMN control_outbox.last_error IS 'Why the last attempt failed.';
COMMENT ON COLUMN control_outbox.last_attempt_at IS 'When the last failed attempt ended.';
COMMENT ON COLUMN control_outbox.request_method IS 'HTTP method to replay.';
COMMENT ON COLUMN control_outbox.request_path IS 'Path with query to replay (appended to the region URL).';
COMMENT ON COLUMN control_outbox.request_headers IS 'Headers to replay, as a JSON array of [name, value] pairs (hop-by-hop, Host and Content-Length removed).';
COMMENT ON COLUMN control_outbox.request_body IS 'Body bytes, forwarded byte for byte so provider signatures still verify.';
COMMENT ON COLUMN control_outbox.target_url IS 'Full destination URL of rows without a region (app webhooks); for emails the recipient.';
COMMENT ON COLUMN control_outbox.lease_owner IS 'Daemon instance that claimed the row; NULL when unclaimed.';
COMMENT ON COLUMN control_outbox.lease_pid IS 'Backend pid of the claiming session: when it is gone, the claim is void at once.';
COMMENT ON COLUMN control_outbox.lease_until IS 'The claim expires at this time even if that session lives on.';
COMMENT ON COLUMN control_outbox.shard_key IS 'Ordering unit: mailbox within one destination region ({mailbox}@{region}); a failing head blocks only its own shard, so a region that is down or paused never holds back the other regions of the same mailbox.';

CREATE TABLE control_outbox_dead (
    id              bigint      PRIMARY KEY,
    region_name     text,
    mailbox_name    text        NOT NULL,
    category        text        NOT NULL,
    provider        text,
    integration_id  bigint,
    date_added      timestamptz NOT NULL,
    attempts        integer     NOT NULL,
    last_status     integer,
    last_error      text,
    request_method  text        NOT NULL,
    request_path    text        NOT NULL,
    request_headers jsonb       NOT NULL,
    request_body    bytea       NOT NULL,
    target_url      text,
    dead_at         timestamptz NOT NULL DEFAULT now(),
    reason          text        NOT NULL
);
CREATE INDEX control_outbox_dead_region ON control_outbox_dead (region_name, dead_at);
CREATE INDEX control_outbox_dead_mailbox ON control_outbox_dead (mailbox_name, id);
COMMENT ON TABLE control_outbox_dead IS 'Rows that exhausted their attempts or failed permanently; kept for inspection, replay (outboxctl dead replay) or discard. Never deleted silently.';
COMMENT ON COLUMN control_outbox_dead.id IS 'The original control_outbox id; a replay reuses it.';
COMMENT ON COLUMN control_outbox_dead.region_name IS 'Destination region; NULL for app webhooks and emails.';
COMMENT ON COLUMN control_outbox_dead.mailbox_name IS 'Shard key of the row.';
COMMENT ON COLUMN control_outbox_dead.category IS 'webhook_proxy, app_webhook or email.';
COMMENT ON COLUMN control_outbox_dead.provider IS 'Provider of a webhook_proxy row.';
COMMENT ON COLUMN control_outbox_dead.integration_id IS 'Integration of the webhook, when there is one.';
COMMENT ON COLUMN control_outbox_dead.date_added IS 'When the row was first committed.';
COMMENT ON COLUMN control_outbox_dead.attempts IS 'Attempts made, the last one included.';
COMMENT ON COLUMN control_outbox_dead.last_status IS 'HTTP status of the last attempt; 0 = timeout or connection error.';
COMMENT ON COLUMN control_outbox_dead.last_error IS 'Why the last attempt failed.';
COMMENT ON COLUMN control_outbox_dead.request_method IS 'HTTP method to replay.';
COMMENT ON COLUMN control_outbox_dead.request_path IS 'Path with query to replay.';
COMMENT ON COLUMN control_outbox_dead.request_headers IS 'Headers to replay, JSON array of [name, value].';
COMMENT ON COLUMN control_outbox_dead.request_body IS 'Body bytes.';
COMMENT ON COLUMN control_outbox_dead.target_url IS 'Destination URL of rows without a region.';
COMMENT ON COLUMN control_outbox_dead.dead_at IS 'When the row was dead-lettered.';
COMMENT ON COLUMN control_outbox_dead.reason IS 'permanent_status (a 4xx other than 408/429), max_attempts, max_age, unknown_region (not in this daemon''s config), refused_url (private address or unusable destination), app_disabled (queued for an app disabled as broken).';

CREATE TABLE outbox_pause (
    kind      text        NOT NULL CHECK (kind IN ('region', 'mailbox')),
    name      text        NOT NULL,
    paused_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);
COMMENT ON TABLE outbox_pause IS 'Paused regions and mailboxes (outboxctl pause/resume): their rows are accepted but not claimed.';
COMMENT ON COLUMN outbox_pause.kind IS 'region or mailbox.';
COMMENT ON COLUMN outbox_pause.name IS 'Region name or mailbox name.';
COMMENT ON COLUMN outbox_pause.paused_at IS 'When the pause began.';

-- One NOTIFY per inserting statement (not per row) wakes idle drainers; polling is the fallback.
CREATE FUNCTION control_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outboxd_outbox', '');
    RETURN NULL;
END $$;
COMMENT ON FUNCTION control_outbox_notify() IS 'Wakes drainers (LISTEN outboxd_outbox) when rows are inserted.';
CREATE TRIGGER control_outbox_notify AFTER INSERT ON control_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION control_outbox_notify();

-- Serialises writers of one mailbox until commit, so ids of one mailbox become visible in id
-- order (a later id can never commit before an earlier one and be delivered first).
CREATE FUNCTION outbox_lock_mailbox(mailbox text) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(7401, hashtext(mailbox));
$$;
COMMENT ON FUNCTION outbox_lock_mailbox(text) IS 'Every writer of control_outbox takes this lock for each mailbox it writes, before inserting.';
