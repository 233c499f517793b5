-- The NOTIFY trigger holds PostgreSQL's notify lock across the inserting transaction's commit
-- (WAL flush included), which serialises every writer's commit. outboxd's own writer therefore
-- sets outboxd.defer_notify = on for its session and sends the wake-up itself after COMMIT, in a
-- transaction of its own that needs no flush. Other writers (product transactions calling the
-- app functions) keep the trigger, so their rows wake drainers at once as before.
CREATE OR REPLACE FUNCTION control_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('outboxd.defer_notify', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('outboxd_outbox', '');
    RETURN NULL;
END $$;
COMMENT ON FUNCTION control_outbox_notify() IS 'Wakes drainers (LISTEN outboxd_outbox) when rows are inserted, unless the session set outboxd.defer_notify = on and sends NOTIFY outboxd_outbox itself after its commit.';
