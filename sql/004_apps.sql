-- Sentry-App webhooks: the producers' SQL API (enqueue inside their own transaction), the request
-- log for app developers, daily health counters, and the broken-app rule that disables an internal
-- app, writes the audit log and queues one email per organization owner, all in one transaction.
--
-- The drainer delivers the rows generically (category app_webhook: POST to target_url with the
-- stored headers plus a fresh Sentry-Hook-Timestamp; category email: SMTP to the recipient in
-- target_url). After each batch of outcomes the daemon calls outboxd_app_record_outcomes() inside
-- the completer's transaction.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- ---------------------------------------------------------------------------------- tables

CREATE TABLE sentry_app_outbox_meta (
    outbox_id       bigint      PRIMARY KEY,
    sentry_app_id   bigint      NOT NULL,
    installation_id bigint      NOT NULL,
    organization_id bigint      NOT NULL,
    event           text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sentry_app_outbox_meta_created ON sentry_app_outbox_meta (created_at);
COMMENT ON TABLE sentry_app_outbox_meta IS 'What an app_webhook row of control_outbox is about, fixed when the row is made, so that its delivery outcome can be logged and counted after the row itself is gone. Removed when the row is delivered; kept while the row is dead (a replay needs it); pruned once the row is in neither outbox table.';
COMMENT ON COLUMN sentry_app_outbox_meta.outbox_id IS 'control_outbox.id (and control_outbox_dead.id) of the webhook row.';
COMMENT ON COLUMN sentry_app_outbox_meta.sentry_app_id IS 'The app the webhook goes to.';
COMMENT ON COLUMN sentry_app_outbox_meta.installation_id IS 'The installation it was sent for (mailbox app:{installation_id}).';
COMMENT ON COLUMN sentry_app_outbox_meta.organization_id IS 'The organization of that installation.';
COMMENT ON COLUMN sentry_app_outbox_meta.event IS 'The event, e.g. issue.created.';
COMMENT ON COLUMN sentry_app_outbox_meta.created_at IS 'When the webhook was enqueued.';

CREATE TABLE sentry_app_webhook_request (
    id              bigserial   PRIMARY KEY,
    sentry_app_id   bigint      NOT NULL,
    event           text        NOT NULL,
    organization_id bigint,
    installation_id bigint,
    outbox_id       bigint,
    date            timestamptz NOT NULL DEFAULT now(),
    url             text        NOT NULL,
    status          integer     NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
    error           text
);
CREATE INDEX sentry_app_webhook_request_recent ON sentry_app_webhook_request (sentry_app_id, event, id DESC);
COMMENT ON TABLE sentry_app_webhook_request IS 'Request log for app developers: every delivery attempt of a Sentry-App webhook, the newest 100 per app and event (older ones are deleted as new ones are written). Newest first: ORDER BY id DESC.';
COMMENT ON COLUMN sentry_app_webhook_request.id IS 'Insertion order.';
COMMENT ON COLUMN sentry_app_webhook_request.sentry_app_id IS 'The app.';
COMMENT ON COLUMN sentry_app_webhook_request.event IS 'The event, e.g. issue.created (unknown when the row was not made by send_resource_change_webhook/workflow_notification).';
COMMENT ON COLUMN sentry_app_webhook_request.organization_id IS 'Organization of the installation the webhook was sent for.';
COMMENT ON COLUMN sentry_app_webhook_request.installation_id IS 'The installation.';
COMMENT ON COLUMN sentry_app_webhook_request.outbox_id IS 'control_outbox id of the webhook (the same for all attempts of one webhook).';
COMMENT ON COLUMN sentry_app_webhook_request.date IS 'When the attempt''s outcome was recorded.';
COMMENT ON COLUMN sentry_app_webhook_request.url IS 'The URL the request went to.';
COMMENT ON COLUMN sentry_app_webhook_request.status IS 'HTTP status of the response; 0 = timeout, connection error or refused destination.';
COMMENT ON COLUMN sentry_app_webhook_request.outcome IS 'delivered, retry (will be tried again) or dead (moved to control_outbox_dead).';
COMMENT ON COLUMN sentry_app_webhook_request.error IS 'Why the attempt failed; NULL when delivered.';

CREATE TABLE sentry_app_webhook_error (
    id              bigserial   PRIMARY KEY,
    sentry_app_id   bigint      NOT NULL,
    event           text        NOT NULL,
    organization_id bigint,
    installation_id bigint,
    outbox_id       bigint,
    date            timestamptz NOT NULL DEFAULT now(),
    url             text        NOT NULL,
    status          integer     NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('retry', 'dead')),
    error           text,
    request_body    text        NOT NULL DEFAULT '',
    response_body   text        NOT NULL DEFAULT ''
);
CREATE INDEX sentry_app_webhook_error_recent ON sentry_app_webhook_error (sentry_app_id, id DESC);
COMMENT ON TABLE sentry_app_webhook_error IS 'Failed delivery attempts of Sentry-App webhooks (any attempt not answered 2xx), the newest 100 per app whatever the event, with the start of the request and response bodies. Newest first: ORDER BY id DESC.';
COMMENT ON COLUMN sentry_app_webhook_error.id IS 'Insertion order.';
COMMENT ON COLUMN sentry_app_webhook_error.sentry_app_id IS 'The app.';
COMMENT ON COLUMN sentry_app_webhook_error.event IS 'The event, e.g. issue.created.';
COMMENT ON COLUMN sentry_app_webhook_error.organization_id IS 'Organization of the installation the webhook was sent for.';
COMMENT ON COLUMN sentry_app_webhook_error.installation_id IS 'The installation.';
COMMENT ON COLUMN sentry_app_webhook_error.outbox_id IS 'control_outbox id of the webhook.';
COMMENT ON COLUMN sentry_app_webhook_error.date IS 'When the failure was recorded.';
COMMENT ON COLUMN sentry_app_webhook_error.url IS 'The URL the request went to.';
COMMENT ON COLUMN sentry_app_webhook_error.status IS 'HTTP status of the response; 0 = timeout, connection error or refused destination.';
COMMENT ON COLUMN sentry_app_webhook_error.outcome IS 'retry (will be tried again) or dead (moved to control_outbox_dead).';
COMMENT ON COLUMN sentry_app_webhook_error.error IS 'Why the attempt failed.';
COMMENT ON COLUMN sentry_app_webhook_error.request_body IS 'First 1 KiB of the request body (invalid UTF-8 replaced by U+FFFD, NUL bytes dropped).';
COMMENT ON COLUMN sentry_app_webhook_error.response_body IS 'First 1 KiB of the response body (invalid UTF-8 replaced by U+FFFD, NUL bytes dropped).';

CREATE TABLE sentry_app_health_day (
    sentry_app_id   bigint  NOT NULL,
    organization_id bigint  NOT NULL,
    day             date    NOT NULL,
    success_count   integer NOT NULL DEFAULT 0,
    error_count     integer NOT NULL DEFAULT 0,
    timeout_count   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (sentry_app_id, organization_id, day)
);
COMMENT ON TABLE sentry_app_health_day IS 'Daily health counters of Sentry-App webhook deliveries per app and organization (days in UTC), the input of the broken-app rule (outboxd_app_check_broken). Days older than 30 are pruned; an app''s counters are cleared when it is disabled. 1xx, 3xx and 429 answers count in none of the three.';
COMMENT ON COLUMN sentry_app_health_day.sentry_app_id IS 'The app.';
COMMENT ON COLUMN sentry_app_health_day.organization_id IS 'Organization of the installation the webhooks were sent for.';
COMMENT ON COLUMN sentry_app_health_day.day IS 'UTC day of the attempts.';
COMMENT ON COLUMN sentry_app_health_day.success_count IS 'Attempts answered 2xx.';
COMMENT ON COLUMN sentry_app_health_day.error_count IS 'Attempts answered 4xx other than 429, or 5xx.';
COMMENT ON COLUMN sentry_app_health_day.timeout_count IS 'Attempts without an HTTP answer: timeout, connection error, refused destination (status 0).';

CREATE TABLE IF NOT EXISTS audit_log_entry (
    id              bigserial   PRIMARY KEY,
    organization_id bigint      NOT NULL,
    event           text        NOT NULL,
    target_object   bigint,
    data            jsonb       NOT NULL DEFAULT '{}',
    datetime        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_log_entry_by_organization ON audit_log_entry (organization_id, datetime);
COMMENT ON TABLE audit_log_entry IS 'Organization audit log; outboxd writes INTERNAL_INTEGRATION_DISABLED when it disables a broken internal app.';
COMMENT ON COLUMN audit_log_entry.id IS 'Entry id.';
COMMENT ON COLUMN audit_log_entry.organization_id IS 'The organization the entry belongs to.';
COMMENT ON COLUMN audit_log_entry.event IS 'What happened, e.g. INTERNAL_INTEGRATION_DISABLED.';
COMMENT ON COLUMN audit_log_entry.target_object IS 'Id of the object acted on (sentry_app.id for INTERNAL_INTEGRATION_DISABLED).';
COMMENT ON COLUMN audit_log_entry.data IS 'Details: name, slug, webhook_url, reason (errors or timeouts), broken_organization_id.';
COMMENT ON COLUMN audit_log_entry.datetime IS 'When it happened.';

-- ---------------------------------------------------------------------------------- enqueue

CREATE FUNCTION outboxd_app_events() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['issue.created', 'issue.assigned', 'issue.resolved', 'issue.ignored', 'issue.unresolved',
                 'error.created', 'comment.created', 'comment.updated', 'comment.deleted']
$$;
COMMENT ON FUNCTION outboxd_app_events() IS 'The Sentry-App webhook events send_resource_change_webhook accepts (Sentry''s list); any other name is an error.';

-- The project an event belongs to, for service_hook_project filtering: the first of
-- data.issue.project.id, data.issue.project_id, data.error.project.id, data.error.project,
-- data.error.project_id, data.comment.project_id, data.project.id, data.project_id that is a
-- JSON number or string. NULL when none is.
CREATE FUNCTION outboxd_app_project_id(data jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT c.v #>> '{}'
    FROM (VALUES (1, data #> '{issue,project,id}'), (2, data #> '{issue,project_id}'),
                 (3, data #> '{error,project,id}'), (4, data #> '{error,project}'),
                 (5, data #> '{error,project_id}'), (6, data #> '{comment,project_id}'),
                 (7, data #> '{project,id}'), (8, data #> '{project_id}')) AS c(o, v)
    WHERE jsonb_typeof(c.v) IN ('number', 'string')
    ORDER BY c.o
    LIMIT 1
$$;
COMMENT ON FUNCTION outboxd_app_project_id(jsonb) IS 'Project id of a webhook''s data for service_hook_project filtering: the first JSON number or string among data.issue.project.id, data.issue.project_id, data.error.project.id, data.error.project, data.error.project_id, data.comment.project_id, data.project.id, data.project_id; NULL when none.';

-- Shared by both producer functions: validation, Sentry's filters, the signed request, the row.
CREATE FUNCTION outboxd_app_enqueue(p_installation_id bigint, p_event text, p_data jsonb, p_actor json)
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
    SELECT * INTO inst FROM sentry_app_installation i WHERE i.id = p_installation_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown Sentry-App installation %', coalesce(p_installation_id::text, 'NULL')
            USING ERRCODE = 'no_data_found';
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
COMMENT ON FUNCTION outboxd_app_enqueue(bigint, text, jsonb, json) IS 'Internal to send_resource_change_webhook and workflow_notification: checks the event and the installation (errors), applies Sentry''s filters (NULL), and inserts the signed app_webhook row (mailbox app:{installation_id}) and its sentry_app_outbox_meta row; returns the control_outbox id.';

CREATE FUNCTION send_resource_change_webhook(installation_id bigint, event text, data jsonb)
RETURNS bigint LANGUAGE sql AS $$
    SELECT outboxd_app_enqueue($1, $2, $3, '{"type":"application","id":"sentry","name":"Sentry"}'::json)
$$;
COMMENT ON FUNCTION send_resource_change_webhook(bigint, text, jsonb) IS
'Enqueues a Sentry-App webhook inside the caller''s transaction (delivered if and only if it commits). '
'event: one of outboxd_app_events(), else an error; an unknown installation is an error too. '
'Returns the control_outbox id, or NULL when Sentry''s filters drop it: installation not installed, app disabled or without webhook_url, '
'no service_hook of the installation lists the event, or the hook has service_hook_project rows and the project of data '
'(outboxd_app_project_id: data.issue.project.id, data.error.project, data.project_id, ...) is missing or not among them. '
'Body {"action","installation":{"uuid"},"data","actor"} with the application actor; headers Content-Type, Request-ID (fixed now, '
'the same on every retry), Sentry-Hook-Resource and Sentry-Hook-Signature (hex HMAC-SHA256 of the body with sentry_app.client_secret); '
'the drainer adds Sentry-Hook-Timestamp when it sends.';

CREATE FUNCTION workflow_notification(installation_id bigint, issue_id bigint, type text, user_id bigint, data jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    actor   json;
    uname   text;
    payload jsonb := coalesce(workflow_notification.data, '{}'::jsonb);
BEGIN
    IF workflow_notification.type IS NULL
       OR workflow_notification.type NOT IN ('assigned', 'resolved', 'ignored', 'unresolved') THEN
        RAISE EXCEPTION 'unknown workflow notification type %', coalesce(quote_literal(workflow_notification.type), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'valid types: assigned, resolved, ignored, unresolved';
    END IF;
    IF workflow_notification.user_id IS NULL THEN
        actor := '{"type":"application","id":"sentry","name":"Sentry"}'::json;
    ELSE
        SELECT u.name INTO uname FROM auth_user u WHERE u.id = workflow_notification.user_id;
        actor := ('{"type":"user","id":' || workflow_notification.user_id
                  || ',"name":' || to_json(coalesce(uname, ''))::text || '}')::json;
    END IF;
    IF jsonb_typeof(payload) = 'object' AND NOT payload ? 'issue' AND workflow_notification.issue_id IS NOT NULL THEN
        payload := payload || jsonb_build_object('issue', jsonb_build_object('id', workflow_notification.issue_id::text));
    END IF;
    RETURN outboxd_app_enqueue(workflow_notification.installation_id, 'issue.' || workflow_notification.type,
                               payload, actor);
END $$;
COMMENT ON FUNCTION workflow_notification(bigint, bigint, text, bigint, jsonb) IS
'Enqueues the issue.{type} webhook (type: assigned, resolved, ignored or unresolved, else an error) inside the caller''s transaction, '
'filtered like send_resource_change_webhook. data is sent as given (the producer puts the serialized issue in data.issue; '
'when data has no issue key, {"issue":{"id":"<issue_id>"}} is added). Actor {"type":"user","id":user_id,"name":auth_user.name} '
'(name "" when there is no such user), or the application actor when user_id is NULL. Returns the control_outbox id or NULL.';

-- ---------------------------------------------------------------------------------- disabling

CREATE FUNCTION outboxd_mime_header(value text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    result text := '';
    chunk  text := '';
    ch     text;
BEGIN
    value := regexp_replace(coalesce(value, ''), '[\r\n\t]+', ' ', 'g');
    IF value ~ '^[ -~]*$' THEN
        RETURN value;
    END IF;
    FOREACH ch IN ARRAY regexp_split_to_array(value, '') LOOP
        IF octet_length(convert_to(chunk || ch, 'UTF8')) > 45 THEN
            result := result || CASE WHEN result = '' THEN '' ELSE E'\r\n ' END
                      || '=?UTF-8?B?' || encode(convert_to(chunk, 'UTF8'), 'base64') || '?=';
            chunk := '';
        END IF;
        chunk := chunk || ch;
    END LOOP;
    IF chunk <> '' THEN
        result := result || CASE WHEN result = '' THEN '' ELSE E'\r\n ' END
                  || '=?UTF-8?B?' || encode(convert_to(chunk, 'UTF8'), 'base64') || '?=';
    END IF;
    RETURN result;
END $$;
COMMENT ON FUNCTION outboxd_mime_header(text) IS 'A header value safe for an RFC 5322 message: line breaks become spaces; non-ASCII text becomes RFC 2047 UTF-8 encoded words, folded.';

CREATE FUNCTION outboxd_app_disabled_email(app sentry_app, organization_slug text, recipient text, mail_from text,
                                           reason text, settings_url text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    nl          text := E'\r\n';
    one_line    text := '[\r\n]+';
    app_name    text := regexp_replace(app.name, one_line, ' ', 'g');
    fix_url     text := rtrim(settings_url, '/') || '/settings/' || organization_slug || '/developer-settings/' || app.slug || '/';
    mail_domain text := coalesce(nullif(substring(mail_from FROM '@([A-Za-z0-9.-]+)'), ''), 'localhost');
BEGIN
    RETURN 'From: ' || outboxd_mime_header(mail_from) || nl
        || 'To: ' || outboxd_mime_header(recipient) || nl
        || 'Subject: ' || outboxd_mime_header('Integration disabled: ' || app_name) || nl
        || 'Date: ' || to_char(now() AT TIME ZONE 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS') || ' +0000' || nl
        || 'Message-ID: <app-' || app.id || '-disabled-' || md5(recipient || clock_timestamp()::text) || '@' || mail_domain || '>' || nl
        || 'MIME-Version: 1.0' || nl
        || 'Content-Type: text/plain; charset=utf-8' || nl
        || 'Content-Transfer-Encoding: 8bit' || nl
        || nl
        || 'Hello,' || nl
        || nl
        || 'the internal integration "' || app_name || '" (' || app.slug || ') of your organization '
        || organization_slug || ' has been disabled,' || nl
        || 'because its webhook URL kept failing (' || reason || '):' || nl
        || nl
        || '    ' || regexp_replace(coalesce(app.webhook_url, ''), one_line, ' ', 'g') || nl
        || nl
        || 'While it is disabled it receives no webhooks. Make sure the URL answers with a 2xx' || nl
        || 'status quickly, then fix and re-enable the integration here:' || nl
        || nl
        || '    ' || fix_url || nl
        || nl
        || '-- ' || nl
        || 'outboxd' || nl;
END $$;
COMMENT ON FUNCTION outboxd_app_disabled_email(sentry_app, text, text, text, text, text) IS 'The RFC 5322 message (CRLF line ends, UTF-8 text/plain) telling an organization owner that an internal app was disabled: the app name, its webhook URL, the reason and a link to its developer settings.';

CREATE FUNCTION outboxd_app_check_broken(app_id bigint, today date, timeout_threshold integer,
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
    -- no one disabled it meanwhile. Healthy apps are never locked here.
    SELECT * INTO app FROM sentry_app a WHERE a.id = outboxd_app_check_broken.app_id FOR UPDATE;
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
COMMENT ON FUNCTION outboxd_app_check_broken(bigint, date, integer, text, text) IS
'Sentry''s broken-endpoint rule, for internal apps only (status internal; published, unpublished and disabled apps are never disabled by it): '
'with the window today-6 .. today (today is a parameter so tests can inject the clock; the daemon passes the current UTC day), '
'the app is broken when, for one organization, each of the 7 days has error_count > 0 and success_count = 0, '
'or one day has timeout_count >= timeout_threshold (a threshold <= 0 turns that half off). '
'Then, in the caller''s transaction: sentry_app.status = disabled, one audit_log_entry INTERNAL_INTEGRATION_DISABLED '
'(target_object = app id) per organization with an installed installation (and the broken one), the app''s counters deleted, '
'and one email row (category email, mailbox email:app:{app_id}, target_url = the recipient) per owner of those organizations. '
'Returns true when it disabled the app.';

-- ---------------------------------------------------------------------------------- outcomes

CREATE FUNCTION outboxd_app_record_outcomes(outcomes jsonb, timeout_threshold integer,
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

    -- Trim as written: the newest 100 per app and event, the newest 100 errors per app.
    DELETE FROM sentry_app_webhook_request q
    USING (SELECT s.id
           FROM (SELECT w.id, row_number() OVER (PARTITION BY w.sentry_app_id, w.event ORDER BY w.id DESC) AS n
                 FROM sentry_app_webhook_request w
                 WHERE (w.sentry_app_id, w.event) IN (SELECT * FROM unnest(pair_apps, pair_evts))) s
           WHERE s.n > 100) old
    WHERE q.id = old.id;
    DELETE FROM sentry_app_webhook_error q
    USING (SELECT s.id
           FROM (SELECT w.id, row_number() OVER (PARTITION BY w.sentry_app_id ORDER BY w.id DESC) AS n
                 FROM sentry_app_webhook_error w
                 WHERE w.sentry_app_id = ANY (fail_apps)) s
           WHERE s.n > 100) old
    WHERE q.id = old.id;
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
'error log (trimmed to 100 as written), adds to the day''s health counters (success: delivered; error: 4xx except 429, and 5xx; '
'timeout: status 0), and runs outboxd_app_check_broken for each app with a failure. The app, organization and event come from '
'sentry_app_outbox_meta (else from the app:{installation_id} mailbox, event unknown). Returns the ids of the apps it disabled. '
'today (default: the current UTC day) is injectable for tests.';

CREATE FUNCTION outboxd_app_prune_meta(older_than interval DEFAULT '1 hour') RETURNS bigint LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM sentry_app_outbox_meta m
        WHERE m.created_at < now() - older_than
          AND NOT EXISTS (SELECT 1 FROM control_outbox c WHERE c.id = m.outbox_id)
          AND NOT EXISTS (SELECT 1 FROM control_outbox_dead c WHERE c.id = m.outbox_id)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
COMMENT ON FUNCTION outboxd_app_prune_meta(interval) IS 'Deletes sentry_app_outbox_meta rows whose webhook row is in neither control_outbox nor control_outbox_dead (a discarded dead row); the daemon runs it now and then. Returns how many.';
