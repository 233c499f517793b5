// The ingress's lookup cache against a real PostgreSQL and a real daemon: repeated webhooks of one
// integration are routed from memory, and a change to the directory tables (an organization moved
// to another region, an integration disabled) applies to the very next webhook once the daemon has
// heard the change's NOTIFY.
#include <gtest/gtest.h>

#include "outboxd/ingress/parser.hpp"
#include "support/harness.hpp"

using namespace testsupport;

namespace {

std::string body(int n) {
    return R"({"action":"opened","issue":{"id":)" + std::to_string(n) + R"(},"installation":{"id":4242}})";
}

HttpResult post_github(unsigned short port, const std::string& b) {
    return http_request("POST", "127.0.0.1", port, "/extensions/github/webhook/", b,
                        {{"X-GitHub-Event", "issues"},
                         {"Content-Type", "application/json"},
                         {"X-Hub-Signature-256", "sha256=" + outboxd::ingress::hmac_sha256_hex("gh-secret", b)}});
}

}  // namespace

TEST(DirectoryCache, RepeatedWebhooksAreRoutedFromMemoryAndChangesApplyAtOnce) {
    TestDatabase db("directory_cache");
    db.seed_integration(7, "github", "4242", {"us"});
    Receiver us, eu;
    auto cfg = daemon_config(db.url(), {{"us", us.url()}, {"eu", eu.url()}},
                             "[provider.github]\nwebhook_secret = \"gh-secret\"\n");
    Daemon d(cfg.toml, "dircache");
    ASSERT_TRUE(d.start()) << d.log();
    auto invalidations = [&] {
        return metric_value(cfg.metrics, "outboxd_ingress_directory_cache_invalidations_total");
    };
    ASSERT_TRUE(wait_until([&] { return invalidations() >= 1; }, 5s)) << "the listener is up\n" << d.log();

    ASSERT_EQ(post_github(cfg.ingress, body(1)).status, 202);
    ASSERT_EQ(post_github(cfg.ingress, body(2)).status, 202);
    ASSERT_EQ(post_github(cfg.ingress, body(3)).status, 202);
    EXPECT_EQ(metric_series(cfg.metrics, "outboxd_ingress_directory_cache_total{result=\"miss\"}"), 1);
    EXPECT_EQ(metric_series(cfg.metrics, "outboxd_ingress_directory_cache_total{result=\"hit\"}"), 2);
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 3; }, 10s)) << d.log();

    // The organization moves to eu: the next webhook goes there, not to the cached region.
    auto before = invalidations();
    db.sql("UPDATE organization_mapping SET region_name = 'eu' WHERE organization_id = 700");
    ASSERT_TRUE(wait_until([&] { return invalidations() > before; }, 5s)) << d.log();
    ASSERT_EQ(post_github(cfg.ingress, body(4)).status, 202);
    ASSERT_TRUE(wait_until([&] { return eu.ok().size() == 1; }, 10s)) << d.log();
    EXPECT_EQ(eu.ok().at(0).body, body(4));
    EXPECT_EQ(us.requests().size(), 3u);

    // The integration is disabled: the next webhook is refused, nothing is stored.
    before = invalidations();
    db.sql("UPDATE integration SET status = 'disabled' WHERE id = 7");
    ASSERT_TRUE(wait_until([&] { return invalidations() > before; }, 5s)) << d.log();
    auto refused = post_github(cfg.ingress, body(5));
    EXPECT_NE(refused.status, 202) << refused.body;
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox WHERE convert_from(request_body, 'UTF8') = '" + body(5) + "'"),
              "0");

    // The disabled integration is cached now; a second webhook's refusal is checked in the database.
    EXPECT_NE(post_github(cfg.ingress, body(5)).status, 202);
    EXPECT_EQ(metric_series(cfg.metrics, "outboxd_ingress_directory_cache_total{result=\"recheck\"}"), 1);

    // Enabled again, and the next webhook is sent at once, without waiting for the NOTIFY: a
    // refusal is never answered from memory, so it is accepted.
    db.sql("UPDATE integration SET status = 'active' WHERE id = 7");
    auto accepted = post_github(cfg.ingress, body(6));
    EXPECT_EQ(accepted.status, 202) << accepted.body;
    ASSERT_TRUE(wait_until([&] { return eu.ok().size() == 2; }, 10s)) << d.log();
    EXPECT_EQ(d.terminate(), 0);
}

TEST(DirectoryCache, OffWhenTheTtlIsZero) {
    TestDatabase db("directory_cache_off");
    db.seed_integration(7, "github", "4242", {"us"});
    Receiver us;
    auto cfg = daemon_config(db.url(), {{"us", us.url()}},
                             "[provider.github]\nwebhook_secret = \"gh-secret\"\n");
    // daemon_config writes an [ingress] table; the key goes into it.
    auto pos = cfg.toml.find("[ingress]\n");
    ASSERT_NE(pos, std::string::npos);
    cfg.toml.insert(pos + 10, "directory_cache_ttl = \"0s\"\n");
    Daemon d(cfg.toml, "dircache-off");
    ASSERT_TRUE(d.start()) << d.log();
    ASSERT_EQ(post_github(cfg.ingress, body(1)).status, 202);
    ASSERT_EQ(post_github(cfg.ingress, body(2)).status, 202);
    EXPECT_EQ(metric_value(cfg.metrics, "outboxd_ingress_directory_cache_total"), -1) << "no cache, nothing counted";
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 2; }, 10s)) << d.log();
    EXPECT_EQ(d.terminate(), 0);
}
