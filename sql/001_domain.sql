-- Domain tables: owned by the product, read by outboxd. Created here (IF NOT EXISTS) so that a
-- fresh database, the tests and `make run` have them. Existing product tables are not recreated or
-- altered, but outboxd adds to them what it reads them by: the indexes below (IF NOT EXISTS), the
-- directory triggers of 007, and COMMENT ON for the columns it relies on (which replaces a
-- comment the product had set).

CREATE TABLE IF NOT EXISTS integration (
    id          bigserial PRIMARY KEY,
    provider    text   NOT NULL,
    external_id text   NOT NULL,
    name        text   NOT NULL DEFAULT '',
    status      text   NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    metadata    jsonb  NOT NULL DEFAULT '{}',
    UNIQUE (provider, external_id)
);
COMMENT ON TABLE integration IS 'One installed provider integration (GitHub App installation, Slack workspace, ...). Owned by the product.';
COMMENT ON COLUMN integration.id IS 'Integration id; shards (mailboxes) are named {provider}:{id}.';
COMMENT ON COLUMN integration.provider IS 'github, gitlab, slack, jira, jira_server, msteams, vsts, discord, ...';
COMMENT ON COLUMN integration.external_id IS 'The provider''s id for it (installation id, team id, instance:group, JWT iss ...).';
COMMENT ON COLUMN integration.name IS 'Display name.';
COMMENT ON COLUMN integration.status IS 'active or disabled; webhooks of a disabled integration are refused (400).';
COMMENT ON COLUMN integration.metadata IS 'Provider settings: webhook_secret, shared_secret, ...';

CREATE TABLE IF NOT EXISTS organization_integration (
    organization_id bigint NOT NULL,
    integration_id  bigint NOT NULL,
    status          text   NOT NULL DEFAULT 'active',
    PRIMARY KEY (organization_id, integration_id)
);
CREATE INDEX IF NOT EXISTS organization_integration_by_integration ON organization_integration (integration_id);
COMMENT ON TABLE organization_integration IS 'Which organizations use an integration. Owned by the product.';
COMMENT ON COLUMN organization_integration.organization_id IS 'The organization.';
COMMENT ON COLUMN organization_integration.integration_id IS 'The integration.';
COMMENT ON COLUMN organization_integration.status IS 'Only active rows route webhooks.';

CREATE TABLE IF NOT EXISTS organization_mapping (
    organization_id bigint PRIMARY KEY,
    slug            text NOT NULL,
    region_name     text NOT NULL
);
COMMENT ON TABLE organization_mapping IS 'Where each organization lives. Owned by the product.';
COMMENT ON COLUMN organization_mapping.organization_id IS 'The organization.';
COMMENT ON COLUMN organization_mapping.slug IS 'Its URL slug.';
COMMENT ON COLUMN organization_mapping.region_name IS 'Its region; must name a [[region]] of the config.';

CREATE TABLE IF NOT EXISTS sentry_app (
    id            bigserial PRIMARY KEY,
    slug          text NOT NULL UNIQUE,
    name          text NOT NULL,
    webhook_url   text,
    client_secret text NOT NULL,
    status        text NOT NULL DEFAULT 'unpublished'
                  CHECK (status IN ('published', 'unpublished', 'internal', 'disabled')),
    events        text[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE sentry_app IS 'A third-party app that receives signed webhooks. Owned by the product.';
COMMENT ON COLUMN sentry_app.id IS 'App id.';
COMMENT ON COLUMN sentry_app.slug IS 'Unique slug.';
COMMENT ON COLUMN sentry_app.name IS 'Display name (used in the disabled-app email).';
COMMENT ON COLUMN sentry_app.webhook_url IS 'Where webhooks are POSTed.';
COMMENT ON COLUMN sentry_app.client_secret IS 'HMAC-SHA256 key of Sentry-Hook-Signature.';
COMMENT ON COLUMN sentry_app.status IS 'published, unpublished, internal or disabled (no webhooks).';
COMMENT ON COLUMN sentry_app.events IS 'Resources the app may subscribe to.';

CREATE TABLE IF NOT EXISTS sentry_app_installation (
    id              bigserial PRIMARY KEY,
    uuid            text   NOT NULL UNIQUE,
    sentry_app_id   bigint NOT NULL,
    organization_id bigint NOT NULL,
    status          text   NOT NULL DEFAULT 'installed' CHECK (status IN ('pending', 'installed'))
);
COMMENT ON TABLE sentry_app_installation IS 'An app installed on an organization. Owned by the product.';
COMMENT ON COLUMN sentry_app_installation.id IS 'Installation id; app mailboxes are named app:{id}.';
COMMENT ON COLUMN sentry_app_installation.uuid IS 'Sent as installation.uuid in every webhook.';
COMMENT ON COLUMN sentry_app_installation.sentry_app_id IS 'The app.';
COMMENT ON COLUMN sentry_app_installation.organization_id IS 'The organization it is installed on.';
COMMENT ON COLUMN sentry_app_installation.status IS 'pending or installed; only installed ones get webhooks.';

CREATE TABLE IF NOT EXISTS service_hook (
    id              bigserial PRIMARY KEY,
    installation_id bigint NOT NULL,
    organization_id bigint NOT NULL,
    url             text,
    events          text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS service_hook_by_installation ON service_hook (installation_id);
COMMENT ON TABLE service_hook IS 'What an installation subscribed to. Owned by the product.';
COMMENT ON COLUMN service_hook.id IS 'Hook id.';
COMMENT ON COLUMN service_hook.installation_id IS 'The installation.';
COMMENT ON COLUMN service_hook.organization_id IS 'The organization.';
COMMENT ON COLUMN service_hook.url IS 'Webhook URL recorded with the hook.';
COMMENT ON COLUMN service_hook.events IS 'Events delivered (issue.created, comment.created, ...).';

CREATE TABLE IF NOT EXISTS service_hook_project (
    service_hook_id bigint NOT NULL,
    project_id      bigint NOT NULL,
    PRIMARY KEY (service_hook_id, project_id)
);
COMMENT ON TABLE service_hook_project IS 'No rows: a hook covers all projects; else only these. Owned by the product.';
COMMENT ON COLUMN service_hook_project.service_hook_id IS 'The hook.';
COMMENT ON COLUMN service_hook_project.project_id IS 'A project the hook is limited to.';

CREATE TABLE IF NOT EXISTS organization_member (
    organization_id bigint NOT NULL,
    email           text   NOT NULL,
    role            text   NOT NULL DEFAULT 'member'
);
COMMENT ON TABLE organization_member IS 'Members; owners get the integration-disabled email. Owned by the product.';
COMMENT ON COLUMN organization_member.organization_id IS 'The organization.';
COMMENT ON COLUMN organization_member.email IS 'Where mail goes.';
COMMENT ON COLUMN organization_member.role IS 'owner, manager, member, ...';

CREATE TABLE IF NOT EXISTS auth_user (
    id    bigserial PRIMARY KEY,
    name  text NOT NULL DEFAULT '',
    email text NOT NULL DEFAULT ''
);
COMMENT ON TABLE auth_user IS 'Users; named as the actor of workflow notifications. Owned by the product.';
COMMENT ON COLUMN auth_user.id IS 'User id.';
COMMENT ON COLUMN auth_user.name IS 'Display name.';
COMMENT ON COLUMN auth_user.email IS 'Email address.';
