-- The database contract for DBAs and producers, from an audit of 2026-11-25:
-- * An app whose sentry_app row a product transaction holds locked no longer stalls the completer
--   (outboxd_app_check_broken skips a locked row and checks again on the app's next outcome).
-- * An unknown installation id is dropped with a WARNING, as Sentry's task drops it, instead of
--   aborting the producer's transaction (an installation deleted concurrently); NULL stays an error.
-- * outboxd_app_lock_installations() lets a producer that enqueues for several installations in
--   one transaction take their mailbox locks in one order, so two such producers cannot deadlock.
-- * Every outboxd function runs with a fixed search_path (its own schema, then pgcrypto's), so a
--   caller's search_path or pgcrypto installed in another schema (managed services put it in
--   "extensions") cannot break the producers' calls.
-- Both replaced functions are otherwise those of 004_apps.sql.

CREATE OR REPLACE FUNCTION outboxd_app_enqueue(p_installation_id bigint, p_event text, p_data jsonb, p_actor json)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    inst    sentry_app_installation%ROWTYPE;
    app     sentry_app%ROWTYPE;
    project text;
    body    bytea;
    headers jsonb;
    mailbox text;
    new_id  bigint;
BEGIN
    IF p_event IS NULL OR NOT (p_event = ANY (outboxd_app_events())) THEN
        RAISE EXCEPTION 'unknown Sentry-App webhook event %', coalesce(quote_literal(p_event), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'valid events: ' || array_to_string(outboxd_app_events(), ', ');
    END IF;
    IF p_installation_id IS NULL THEN
        RAISE EXCEPTION 'the Sentry-App installation id is NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO inst FROM sentry_app_installation i WHERE i.id = p_installation_id;
    IF NOT FOUND THEN
        -- As Sentry's task does (send_resource_change_webhook.missing_installation): an
        -- installation deleted while the producer's transaction ran must not abort the product's
        -- own write. Said out loud, since it may also be a wrong id.
        RAISE WARNING 'no Sentry-App installation %: webhook % not enqueued', p_installation_id, p_event;
        RETURN NULL;
    END IF;
    -- Sentry's filters: a silent no (NULL), not an error.
    IF inst.status <> 'installed' THEN
        RETURN NULL;
    END IF;
    SELECT * INTO app FROM sentry_app a WHERE a.id = inst.sentry_app_id;
    IF NOT FOUND OR app.status = 'disabled' OR coalesce(app.webhook_url, '') = '' THEN
        RETURN NULL;
    END IF;
    project := outboxd_app_project_id(p_data);
    IF NOT EXISTS (
        SELECT 1 FROM service_hook h
        WHERE h.installation_id = inst.id AND p_event = ANY (h.events)
          AND (NOT EXISTS (SELECT 1 FROM service_hook_project sp WHERE sp.service_hook_id = h.id)
               OR EXISTS (SELECT 1 FROM service_hook_project sp
                          WHERE sp.service_hook_id = h.id AND sp.project_id::text = project))) THEN
        RETURN NULL;
    END IF;

    body := convert_to('{"action":' || to_json(split_part(p_event, '.', 2))::text
                       || ',"installation":{"uuid":' || to_json(inst.uuid)::text || '}'
                       || ',"data":' || coalesce(p_data, '{}'::jsonb)::text
                       || ',"actor":' || p_actor::text || '}', 'UTF8');
    headers := jsonb_build_array(
        jsonb_build_array('Content-Type', 'application/json'),
        jsonb_build_array('Request-ID', gen_random_uuid()::text),
        jsonb_build_array('Sentry-Hook-Resource', split_part(p_event, '.', 1)),
        jsonb_build_array('Sentry-Hook-Signature',
                          encode(hmac(body, convert_to(app.client_secret, 'UTF8'), 'sha256'), 'hex')));
    mailbox := 'app:' || inst.id;
    PERFORM outbox_lock_mailbox(mailbox);
    INSERT INTO control_outbox (region_name, mailbox_name, category, request_method, request_path,
                                request_headers, request_body, target_url)
    VALUES (NULL, mailbox, 'app_webhook', 'POST', '/', headers, body, app.webhook_url)
    RETURNING id INTO new_id;
    INSERT INTO sentry_app_outbox_meta (outbox_id, sentry_app_id, installation_id, organization_id, event)
    VALUES (new_id, app.id, inst.id, inst.organization_id, p_event);
    RETURN new_id;
END $$;

CREATE OR REPLACE FUNCTION outboxd_app_check_broken(app_id bigint, today date, timeout_threshold integer,
                                         mail_from text DEFAULT 'outboxd@localhost',
                                         settings_url text DEFAULT 'https://sentry.io')
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    app        sentry_app%ROWTYPE;
    broken_org bigint;
    why        text;
    mailbox    text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM sentry_app a WHERE a.id = outboxd_app_check_broken.app_id AND a.status = 'internal') THEN
        RETURN false;
    END IF;
    SELECT h.organization_id,
           CASE WHEN timeout_threshold > 0 AND max(h.timeout_count) >= timeout_threshold
                THEN 'at least ' || timeout_threshold || ' timeouts in one day'
                ELSE 'errors and no success on each of the last 7 days' END
      INTO broken_org, why
    FROM sentry_app_health_day h
    WHERE h.sentry_app_id = outboxd_app_check_broken.app_id AND h.day BETWEEN today - 6 AND today
    GROUP BY h.organization_id
    HAVING (timeout_threshold > 0 AND max(h.timeout_count) >= timeout_threshold)
        OR count(*) FILTER (WHERE h.error_count > 0 AND h.success_count = 0) = 7
    ORDER BY h.organization_id
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- Broken: lock the app (serialises concurrent checks by several daemons) and check again that
    -- no one disabled it meanwhile. Healthy apps are never locked here. A row someone else holds
    -- (another daemon disabling it, or a product transaction editing the app) is skipped, not
    -- waited for: this runs inside the completer's transaction, and waiting would hold back every
    -- delivery's completion. The counters stay, so the next outcome of the app checks again.
    SELECT * INTO app FROM sentry_app a WHERE a.id = outboxd_app_check_broken.app_id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND OR app.status <> 'internal' THEN
        RETURN false;
    END IF;

    UPDATE sentry_app SET status = 'disabled' WHERE id = app.id;

    INSERT INTO audit_log_entry (organization_id, event, target_object, data)
    SELECT o.organization_id, 'INTERNAL_INTEGRATION_DISABLED', app.id,
           jsonb_build_object('name', app.name, 'slug', app.slug, 'webhook_url', app.webhook_url,
                              'reason', why, 'broken_organization_id', broken_org)
    FROM (SELECT i.organization_id FROM sentry_app_installation i
          WHERE i.sentry_app_id = app.id AND i.status = 'installed'
          UNION SELECT broken_org) o
    ORDER BY o.organization_id;

    DELETE FROM sentry_app_health_day WHERE sentry_app_id = app.id;

    -- Webhooks still queued for the app would only go to a disabled endpoint: keep them, dead,
    -- for inspection or replay once the app is fixed.
    WITH moved AS (
        DELETE FROM control_outbox c USING sentry_app_outbox_meta mm
        WHERE c.category = 'app_webhook' AND mm.outbox_id = c.id AND mm.sentry_app_id = app.id
        RETURNING c.*)
    INSERT INTO control_outbox_dead (id, region_name, mailbox_name, category, provider, integration_id, date_added,
                                     attempts, last_status, last_error, request_method, request_path,
                                     request_headers, request_body, target_url, dead_at, reason)
    SELECT id, region_name, mailbox_name, category, provider, integration_id, date_added,
           attempts, last_status, coalesce(last_error, 'app disabled as broken'), request_method, request_path,
           request_headers, request_body, target_url, now(), 'app_disabled'
    FROM moved
    ON CONFLICT (id) DO NOTHING;

    mailbox := 'email:app:' || app.id;
    PERFORM outbox_lock_mailbox(mailbox);
    INSERT INTO control_outbox (region_name, mailbox_name, category, request_method, request_path, request_headers,
                                request_body, target_url)
    SELECT NULL, mailbox, 'email', 'POST', '/', '[]'::jsonb,
           convert_to(outboxd_app_disabled_email(app, coalesce(om.slug, o.organization_id::text), m.email, mail_from,
                                                 why, settings_url), 'UTF8'),
           m.email
    FROM (SELECT i.organization_id FROM sentry_app_installation i
          WHERE i.sentry_app_id = app.id AND i.status = 'installed'
          UNION SELECT broken_org) o
    JOIN LATERAL (SELECT DISTINCT ON (lower(btrim(mm.email))) btrim(mm.email) AS email
                  FROM organization_member mm
                  WHERE mm.organization_id = o.organization_id AND mm.role = 'owner'
                    AND btrim(mm.email) <> '' AND mm.email !~ '[\r\n<>]'
                  ORDER BY lower(btrim(mm.email))) m ON true
    LEFT JOIN organization_mapping om ON om.organization_id = o.organization_id
    ORDER BY o.organization_id, m.email;
    RETURN true;
END $$;

CREATE FUNCTION outboxd_app_lock_installations(installation_ids bigint[]) RETURNS void LANGUAGE sql AS $$
    SELECT count(pg_advisory_xact_lock(7401, h))
    FROM (SELECT DISTINCT hashtext('app:' || i) AS h FROM unnest(installation_ids) AS i
          WHERE i IS NOT NULL ORDER BY 1) s;
$$;
COMMENT ON FUNCTION outboxd_app_lock_installations(bigint[]) IS
'For a producer transaction that enqueues webhooks for several installations: call it first with all of their ids. '
'Each installation''s mailbox (app:{id}) is locked from its first enqueue until the transaction ends, so that its webhooks '
'are delivered in commit order; two transactions that enqueue for the same installations in different orders can deadlock. '
'This takes all of those locks at once, in the order outboxd''s own writer uses, which rules that out.';

COMMENT ON FUNCTION send_resource_change_webhook(bigint, text, jsonb) IS
'Enqueues a Sentry-App webhook inside the caller''s transaction (delivered if and only if it commits). '
'event: one of outboxd_app_events(), else an error; a NULL installation id is an error, an unknown one is dropped with a WARNING '
'(as Sentry drops it: an installation deleted while the caller ran must not abort the caller''s transaction). '
'Returns the control_outbox id, or NULL when Sentry''s filters drop it: installation not installed, app disabled or without webhook_url, '
'no service_hook of the installation lists the event, or the hook has service_hook_project rows and the project of data '
'(outboxd_app_project_id: data.issue.project.id, data.error.project, data.project_id, ...) is missing or not among them. '
'Body {"action","installation":{"uuid"},"data","actor"} with the application actor; headers Content-Type, Request-ID (fixed now, '
'the same on every retry), Sentry-Hook-Resource and Sentry-Hook-Signature (hex HMAC-SHA256 of the body with sentry_app.client_secret); '
'the drainer adds Sentry-Hook-Timestamp when it sends. '
'The installation''s mailbox stays locked until the caller''s transaction ends (keep it short; for several installations in one '
'transaction call outboxd_app_lock_installations first). The row''s NOTIFY makes PREPARE TRANSACTION fail: a two-phase '
'producer sets outboxd.defer_notify = on for its transaction and the drainers find the row by polling.';

DO $migration$
DECLARE
    home     text := current_schema();
    crypto   text := (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgcrypto');
    path     text;
    f        regprocedure;
BEGIN
    path := quote_ident(home);
    IF crypto IS NOT NULL AND crypto <> quote_ident(home) AND crypto <> 'pg_catalog' THEN
        path := path || ', ' || crypto;
    END IF;
    path := path || ', pg_temp';
    FOREACH f IN ARRAY ARRAY[
        'control_outbox_notify()', 'outbox_lock_mailbox(text)', 'outbox_directory_notify()',
        'outboxd_app_events()', 'outboxd_app_project_id(jsonb)', 'outboxd_app_enqueue(bigint, text, jsonb, json)',
        'send_resource_change_webhook(bigint, text, jsonb)', 'workflow_notification(bigint, bigint, text, bigint, jsonb)',
        'outboxd_mime_header(text)', 'outboxd_app_disabled_email(sentry_app, text, text, text, text, text)',
        'outboxd_app_check_broken(bigint, date, integer, text, text)',
        'outboxd_app_record_outcomes(jsonb, integer, text, date)', 'outboxd_app_prune_meta(interval)',
        'outboxd_app_lock_installations(bigint[])']::regprocedure[]
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %s', f, path);
    END LOOP;
END $migration$;
