-- The ingress caches integration and region lookups in memory (ingress.directory_cache_ttl). Any
-- change to the tables they come from tells every daemon to drop its cache, so a disabled
-- integration or a moved organization takes effect at once, not after the cache's lifetime.
-- One NOTIFY per statement; these tables change rarely, webhooks arrive often.
CREATE FUNCTION outbox_directory_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outboxd_directory', TG_TABLE_NAME);
    RETURN NULL;
END $$;
COMMENT ON FUNCTION outbox_directory_notify() IS 'Tells daemons (LISTEN outboxd_directory) that integrations, organization links or organization regions changed, so they drop cached lookups.';

CREATE TRIGGER integration_directory_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON integration
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_directory_notify();
CREATE TRIGGER organization_integration_directory_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON organization_integration
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_directory_notify();
CREATE TRIGGER organization_mapping_directory_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON organization_mapping
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_directory_notify();
