-- The error log is kept per app and event, as Sentry's request buffer keys it
-- (sentry-app-webhook-error:{app}:{event}): with one list per app, a noisy event's failures pushed
-- a rare event's failures out before its developer could read them. Only the trim changes; the
-- function is otherwise the one of 004_apps.sql.
CREATE INDEX sentry_app_webhook_error_recent_event ON sentry_app_webhook_error (sentry_app_id, event, id DESC);
COMMENT ON TABLE sentry_app_webhook_error IS 'Failed delivery attempts of Sentry-App webhooks (any attempt not answered 2xx), the newest 100 per app and event, with the start of the request and response bodies. Newest first: ORDER BY id DESC.';

CREATE OR REPLACE FUNCTION outboxd_app_record_outcomes(outcomes jsonb, timeout_threshold integer,
                                            mail_from text DEFAULT 'outboxd@localhost', today date DEFAULT NULL)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    d          date := coalesce(today, (now() AT TIME ZONE 'UTC')::date);
    pair_apps  bigint[];
    pair_evts  text[];
    fail_apps  bigint[];
    all_apps   bigint[];
    candidate  bigint;
BEGIN
    WITH o AS (
        SELECT e.ord, x.*
        FROM jsonb_array_elements(outcomes) WITH ORDINALITY AS e(j, ord),
             jsonb_to_record(e.j) AS x(id bigint, mailbox text, kind text, status integer, url text, error text,
                                       request_head text, response_head text)
        WHERE x.kind IN ('delivered', 'retry', 'dead')
    ), r AS (
        SELECT o.*,
               coalesce(m.sentry_app_id, i.sentry_app_id) AS app_id,
               coalesce(m.organization_id, i.organization_id) AS org_id,
               coalesce(m.installation_id, i.id) AS inst_id,
               coalesce(m.event, 'unknown') AS event,
               (o.kind = 'delivered')::int AS is_success,
               (o.kind <> 'delivered' AND coalesce(o.status, 0) BETWEEN 400 AND 599
                AND coalesce(o.status, 0) <> 429)::int AS is_error,
               -- status 0 of an attempt that was made (a row dead of max_age before sending has no url)
               (o.kind <> 'delivered' AND coalesce(o.status, 0) = 0 AND coalesce(o.url, '') <> '')::int AS is_timeout
        FROM o
        LEFT JOIN sentry_app_outbox_meta m ON m.outbox_id = o.id
        LEFT JOIN sentry_app_installation i
               ON m.outbox_id IS NULL
              AND i.id = CASE WHEN o.mailbox ~ '^app:[0-9]{1,18}$' THEN substr(o.mailbox, 5)::bigint END
    ), known AS (
        SELECT * FROM r WHERE r.app_id IS NOT NULL
    ), log_requests AS (
        INSERT INTO sentry_app_webhook_request (sentry_app_id, event, organization_id, installation_id, outbox_id,
                                                url, status, outcome, error)
        SELECT k.app_id, k.event, k.org_id, k.inst_id, k.id, coalesce(k.url, ''), coalesce(k.status, 0), k.kind,
               CASE WHEN k.kind = 'delivered' THEN NULL ELSE k.error END
        FROM known k ORDER BY k.ord
    ), log_errors AS (
        INSERT INTO sentry_app_webhook_error (sentry_app_id, event, organization_id, installation_id, outbox_id,
                                              url, status, outcome, error, request_body, response_body)
        SELECT k.app_id, k.event, k.org_id, k.inst_id, k.id, coalesce(k.url, ''), coalesce(k.status, 0), k.kind,
               k.error, coalesce(k.request_head, ''), coalesce(k.response_head, '')
        FROM known k WHERE k.kind <> 'delivered' ORDER BY k.ord
    ), count_days AS (
        INSERT INTO sentry_app_health_day AS h (sentry_app_id, organization_id, day, success_count, error_count,
                                                timeout_count)
        SELECT k.app_id, k.org_id, d, sum(k.is_success), sum(k.is_error), sum(k.is_timeout)
        FROM known k WHERE k.org_id IS NOT NULL
        GROUP BY k.app_id, k.org_id
        ORDER BY k.app_id, k.org_id
        ON CONFLICT (sentry_app_id, organization_id, day) DO UPDATE
        SET success_count = h.success_count + EXCLUDED.success_count,
            error_count = h.error_count + EXCLUDED.error_count,
            timeout_count = h.timeout_count + EXCLUDED.timeout_count
    ), done AS (
        DELETE FROM sentry_app_outbox_meta m USING known k WHERE m.outbox_id = k.id AND k.kind = 'delivered'
    )
    SELECT (SELECT array_agg(p.app_id ORDER BY p.app_id, p.event) FROM (SELECT DISTINCT app_id, event FROM known) p),
           (SELECT array_agg(p.event ORDER BY p.app_id, p.event) FROM (SELECT DISTINCT app_id, event FROM known) p),
           (SELECT array_agg(DISTINCT k.app_id) FROM known k WHERE k.is_error + k.is_timeout > 0),
           (SELECT array_agg(DISTINCT k.app_id) FROM known k)
      INTO pair_apps, pair_evts, fail_apps, all_apps;

    IF all_apps IS NULL THEN
        RETURN;
    END IF;

    -- Trim as written: the newest 100 requests and the newest 100 errors per app and event.
    DELETE FROM sentry_app_webhook_request q
    USING (SELECT s.id
           FROM (SELECT w.id, row_number() OVER (PARTITION BY w.sentry_app_id, w.event ORDER BY w.id DESC) AS n
                 FROM sentry_app_webhook_request w
                 WHERE (w.sentry_app_id, w.event) IN (SELECT * FROM unnest(pair_apps, pair_evts))) s
           WHERE s.n > 100) old
    WHERE q.id = old.id;
    IF fail_apps IS NOT NULL THEN
        DELETE FROM sentry_app_webhook_error q
        USING (SELECT s.id
               FROM (SELECT w.id, row_number() OVER (PARTITION BY w.sentry_app_id, w.event ORDER BY w.id DESC) AS n
                     FROM sentry_app_webhook_error w
                     WHERE (w.sentry_app_id, w.event) IN (SELECT * FROM unnest(pair_apps, pair_evts))
                       AND w.sentry_app_id = ANY (fail_apps)) s
               WHERE s.n > 100) old
        WHERE q.id = old.id;
    END IF;
    -- Counters older than 30 days serve no rule.
    DELETE FROM sentry_app_health_day h WHERE h.sentry_app_id = ANY (all_apps) AND h.day < d - 30;

    -- Only a failure can make an app broken; apps in id order (lock order across daemons).
    FOR candidate IN SELECT a FROM unnest(fail_apps) AS a ORDER BY a LOOP
        IF outboxd_app_check_broken(candidate, d, timeout_threshold, mail_from) THEN
            RETURN NEXT candidate;
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION outboxd_app_record_outcomes(jsonb, integer, text, date) IS
'Called by the daemon inside each completer transaction with the batch''s app_webhook outcomes, a JSON array of '
'{id, mailbox, kind (delivered|retry|dead), status, url, error, request_head, response_head}: writes the request log and the '
'error log (each trimmed to the newest 100 per app and event as written), adds to the day''s health counters (success: delivered; error: 4xx except 429, and 5xx; '
'timeout: status 0), and runs outboxd_app_check_broken for each app with a failure. The app, organization and event come from '
'sentry_app_outbox_meta (else from the app:{installation_id} mailbox, event unknown). Returns the ids of the apps it disabled. '
'today (default: the current UTC day) is injectable for tests.';
