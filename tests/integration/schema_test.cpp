// What DBAs read: the schema that `outboxd migrate` leaves behind documents itself.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "outboxd/db/migrations.hpp"
#include "outboxd/ingress/parser.hpp"
#include "support/harness.hpp"

using namespace testsupport;

// SPEC: "Every table, view and column carries COMMENT ON" (outboxd's own bookkeeping included).
TEST(Schema, EveryTableViewAndColumnCarriesAComment) {
    TestDatabase db("schema_comments");
    auto missing = db.sql(R"(
        SELECT c.relname || coalesce('.' || a.attname, '')
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'v', 'p')
          AND (obj_description(c.oid, 'pg_class') IS NULL
               OR (a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))
        ORDER BY 1)");
    std::string names;
    for (int i = 0; i < missing.rows(); ++i) names += missing.text(i, 0) + " ";
    EXPECT_EQ(missing.rows(), 0) << "without COMMENT ON: " << names;
    EXPECT_GT(std::stoi(db.scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                  "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v')")),
              10)
        << "the query looked at the migrated schema";
}

// A migration that cannot be applied names itself, and leaves nothing of itself behind: not even
// the bookkeeping table when it is the first one (a table owned by a role that could not finish
// would then refuse the role that can).
TEST(Migrations, AFailingMigrationIsNamedAndLeavesNothing) {
    TestDatabase db("migrate_fails", TestDatabase::Schema::empty);
    // A product table of that name without the columns 001 documents.
    db.sql("CREATE TABLE integration (x int)");
    try {
        outboxd::db::migrate(db.conn());
        FAIL() << "migrated over a conflicting table";
    } catch (const outboxd::db::Error& e) {
        EXPECT_NE(std::string(e.what()).find("migration 001_domain failed (nothing of it was applied)"), std::string::npos)
            << e.what();
    }
    EXPECT_EQ(db.scalar("SELECT to_regclass('outboxd_schema_migrations') IS NULL"), "t");
    EXPECT_EQ(db.scalar("SELECT to_regclass('organization_mapping') IS NULL"), "t");

    db.sql("DROP TABLE integration");
    db.sql("CREATE VIEW outbox_backlog AS SELECT 1 AS n");  // made by hand, not recorded
    try {
        outboxd::db::migrate(db.conn());
        FAIL() << "migrated over a conflicting view";
    } catch (const outboxd::db::Error& e) {
        EXPECT_NE(std::string(e.what()).find("migration 003_views failed"), std::string::npos) << e.what();
    }
    EXPECT_EQ(db.scalar("SELECT string_agg(version, ',' ORDER BY version) FROM outboxd_schema_migrations"),
              "001_domain,002_outbox");
}

// Every start runs the no-op migrate (the unit's ExecStartPre), often as a role that may read
// the bookkeeping table but not alter it.
TEST(Migrations, AnUpToDateSchemaNeedsOnlyReadRightsToMigrate) {
    TestDatabase db("migrate_reader");
    db.sql("DROP ROLE IF EXISTS outboxd_reader");
    db.sql("CREATE ROLE outboxd_reader LOGIN PASSWORD 'reader'");
    db.sql("GRANT SELECT ON outboxd_schema_migrations TO outboxd_reader");
    const char* host = std::getenv("PGHOST");
    const char* port = std::getenv("PGPORT");
    outboxd::db::Connection reader("postgresql://outboxd_reader:reader@" + std::string(host ? host : "localhost") + ":" +
                                       std::string(port ? port : "5432") + "/" + db.name(),
                                   "reader");
    EXPECT_TRUE(outboxd::db::migrate(reader).empty());
    reader.exec("SELECT 1");
    db.sql("REVOKE ALL ON outboxd_schema_migrations FROM outboxd_reader");
}

namespace {

// The ```sql blocks of ops/RUNBOOK.md's "Rights" paragraph, in order.
std::vector<std::string> runbook_grant_blocks() {
    std::ifstream in(std::string(OUTBOXD_SOURCE_DIR) + "/ops/RUNBOOK.md");
    std::stringstream all;
    all << in.rdbuf();
    std::string text = all.str();
    auto at = text.find("**Rights.**");
    std::vector<std::string> blocks;
    while (at != std::string::npos && blocks.size() < 2) {
        auto open = text.find("```sql\n", at);
        if (open == std::string::npos) break;
        auto close = text.find("```", open + 7);
        blocks.push_back(text.substr(open + 7, close - open - 7));
        at = close + 3;
    }
    return blocks;
}

std::string role_url(const TestDatabase& db, const std::string& role) {
    const char* host = std::getenv("PGHOST");
    const char* port = std::getenv("PGPORT");
    return "postgresql://" + role + ":pw@" + std::string(host ? host : "localhost") + ":" +
           std::string(port ? port : "5432") + "/" + db.name();
}

}  // namespace

// ops/RUNBOOK.md promises that, once the owner has migrated, the daemon runs with the grants it
// lists, and a product role enqueues app webhooks with the ones it lists. Both blocks are read
// from the runbook itself, so the document cannot drift from what works.
TEST(Grants, TheRunbooksGrantsAreEnough) {
    auto blocks = runbook_grant_blocks();
    ASSERT_EQ(blocks.size(), 2u) << "the runbook's Rights paragraph has the daemon's and the producer's grants";
    TestDatabase db("grants");
    for (const char* role : {"outboxd", "webapp"}) {
        db.sql(std::string("DROP ROLE IF EXISTS ") + role);
        db.sql(std::string("CREATE ROLE ") + role + " LOGIN PASSWORD 'pw'");
    }
    db.sql(blocks[0]);
    db.sql(blocks[1]);
    db.seed_integration(7, "github", "4242", {"us"});
    Receiver us, app;
    db.sql("INSERT INTO sentry_app(id, slug, name, webhook_url, client_secret, status) "
           "VALUES (1, 'kanban', 'Kanban', $1, 'app-secret', 'internal')",
           outboxd::db::Params(app.url() + "/hook"));
    db.sql("INSERT INTO sentry_app_installation(id, uuid, sentry_app_id, organization_id, status) "
           "VALUES (10, 'inst-uuid-1', 1, 501, 'installed')");
    db.sql("INSERT INTO service_hook(id, installation_id, organization_id, url, events) "
           "VALUES (100, 10, 501, '', '{issue.created}')");

    {
        outboxd::db::Connection daemon_role(role_url(db, "outboxd"), "grants-migrate");
        EXPECT_TRUE(outboxd::db::migrate(daemon_role).empty()) << "the no-op migrate of every start";
    }
    auto cfg = daemon_config(role_url(db, "outboxd"), {{"us", us.url()}},
                             "[apps]\nallow_private_urls = true\n\n[provider.github]\nwebhook_secret = \"gh\"\n");
    Daemon d(cfg.toml, "grants");
    ASSERT_TRUE(d.start()) << d.log();

    const std::string body = R"({"action":"opened","installation":{"id":4242}})";
    auto res = http_request("POST", "127.0.0.1", cfg.ingress, "/extensions/github/webhook/", body,
                            {{"X-GitHub-Event", "issues"},
                             {"Content-Type", "application/json"},
                             {"X-Hub-Signature-256", "sha256=" + outboxd::ingress::hmac_sha256_hex("gh", body)}});
    EXPECT_EQ(res.status, 202) << res.body << d.log();
    outboxd::db::Connection webapp(role_url(db, "webapp"), "grants-webapp");
    webapp.exec("BEGIN");
    EXPECT_FALSE(webapp.exec("SELECT send_resource_change_webhook(10, 'issue.created', '{}')").is_null(0, 0));
    webapp.exec("COMMIT");

    EXPECT_TRUE(wait_until([&] { return us.ok().size() == 1 && app.ok().size() == 1; }, 10s)) << d.log();
    EXPECT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM sentry_app_webhook_request") == "1"; }, 5s))
        << "the app's request log is written\n" << d.log();
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "0");
    EXPECT_EQ(d.terminate(), 0);
    EXPECT_EQ(d.log().find("permission denied"), std::string::npos) << d.log();
    for (const char* role : {"outboxd", "webapp"}) db.sql(std::string("DROP OWNED BY ") + role);
}
