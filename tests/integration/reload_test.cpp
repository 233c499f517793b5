// SIGHUP reloads the reloadable keys (here a provider secret) without a restart, keeps the
// running value of keys that need one (and says so), and survives a broken file.
#include <gtest/gtest.h>
#include <signal.h>

#include "outboxd/ingress/parser.hpp"
#include "support/harness.hpp"

using namespace testsupport;

namespace {
const std::string kBody = R"({"action":"opened","installation":{"id":4242}})";
int post_signed(unsigned short port, const std::string& secret) {
    return http_request("POST", "127.0.0.1", port, "/extensions/github/webhook/", kBody,
                        {{"X-GitHub-Event", "issues"},
                         {"X-Hub-Signature-256", "sha256=" + outboxd::ingress::hmac_sha256_hex(secret, kBody)}})
        .status;
}
}  // namespace

TEST(Reload, SighupAppliesNewProviderSecretWithoutRestart) {
    TestDatabase db("reload");
    db.seed_integration(7, "github", "4242", {"us"});
    Receiver us;
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, "[provider.github]\nwebhook_secret = \"old-secret\"\n");
    Daemon d(cfg.toml, "reload");
    ASSERT_TRUE(d.start()) << d.log();
    EXPECT_EQ(post_signed(cfg.ingress, "old-secret"), 202);
    EXPECT_EQ(post_signed(cfg.ingress, "new-secret"), 401);

    // New secret, and a changed listen address that cannot move without a restart.
    std::string next = cfg.toml;
    next.replace(next.find("old-secret"), 10, "new-secret");
    auto m = next.find("[metrics]\nlisten = \"127.0.0.1:");
    next.replace(next.find(std::to_string(cfg.metrics), m), std::to_string(cfg.metrics).size(), std::to_string(free_port()));
    d.rewrite_config(next);
    d.signal(SIGHUP);
    ASSERT_TRUE(wait_until([&] { return post_signed(cfg.ingress, "new-secret") == 202; }, 5s)) << d.log();
    EXPECT_EQ(post_signed(cfg.ingress, "old-secret"), 401);
    EXPECT_TRUE(wait_until([&] { return d.log().find("metrics.listen changed but needs a restart") != std::string::npos; }, 2s))
        << d.log();
    EXPECT_EQ(http_request("GET", "127.0.0.1", cfg.metrics, "/healthz").status, 200) << "still on the old metrics port";

    // A broken file is refused and the running configuration stays.
    d.rewrite_config("[drain]\nconcurency = 1\n");
    d.signal(SIGHUP);
    EXPECT_TRUE(wait_until([&] { return d.log().find("drain.concurency") != std::string::npos; }, 5s)) << d.log();
    EXPECT_TRUE(d.running());
    EXPECT_EQ(post_signed(cfg.ingress, "new-secret"), 202);
    EXPECT_TRUE(wait_until([&] { return us.ok().size() == 3; }, 10s));
    EXPECT_EQ(d.terminate(), 0);
}

// log.format is reloadable: the lines after the reload come in the new format.
TEST(Reload, SighupSwitchesTheLogFormat) {
    TestDatabase db("reload_log");
    Receiver us;
    auto cfg = daemon_config(db.url(), {{"us", us.url()}});
    Daemon d(cfg.toml, "reload_log");
    ASSERT_TRUE(d.start()) << d.log();
    d.rewrite_config(cfg.toml + "\n[log]\nformat = \"json\"\n");
    d.signal(SIGHUP);
    ASSERT_TRUE(wait_until([&] { return d.log().find("configuration reloaded") != std::string::npos; }, 5s)) << d.log();
    auto log = d.log();
    auto at = log.rfind('\n', log.find("configuration reloaded"));
    auto line = log.substr(at == std::string::npos ? 0 : at + 1);
    line = line.substr(0, line.find('\n'));
    EXPECT_EQ(line.rfind("{\"ts\":", 0), 0u) << line;
    EXPECT_NE(line.find("\"msg\":\"signal: SIGHUP, configuration reloaded"), std::string::npos) << line;
    EXPECT_EQ(log.find("log.format changed but needs a restart"), std::string::npos);
    EXPECT_EQ(d.terminate(), 0);
}
