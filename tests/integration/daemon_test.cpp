// The daemon as systemd and a load balancer see it: signals that come while it starts, /readyz
// after the server ended an idle session, listen addresses written as names.
#include <gtest/gtest.h>
#include <signal.h>

#include "outboxd/db/connection.hpp"
#include "support/harness.hpp"

using namespace testsupport;
using namespace std::chrono_literals;

// Start-up reads the schema version; a migration holding its table locked keeps the daemon there.
// SIGHUP and SIGTERM sent meanwhile used to kill it (status 129 and 143, no log line); they now
// wait for their handlers: the reload happens, then the stop, and the exit is a clean 0.
TEST(Daemon, SignalsDuringStartUpWaitForTheirHandlers) {
    TestDatabase db("daemon_startup_signals");
    Receiver us;
    auto cfg = daemon_config(db.url(), {{"us", us.url()}});
    outboxd::db::Connection migration(db.url(), "test-migration");
    migration.exec("BEGIN");
    migration.exec("LOCK TABLE outboxd_schema_migrations IN ACCESS EXCLUSIVE MODE");
    Daemon d(cfg.toml, "startup_signals");
    EXPECT_FALSE(d.start(1500ms)) << "start-up is held by the lock";
    ASSERT_TRUE(d.running()) << d.log();
    d.signal(SIGHUP);
    d.signal(SIGTERM);
    std::this_thread::sleep_for(200ms);  // let them arrive while start-up still waits
    EXPECT_TRUE(d.running()) << "a signal during start-up killed the daemon\n" << d.log();
    migration.exec("COMMIT");
    EXPECT_EQ(d.wait_exit(20s), 0) << d.log();
    auto log = d.log();
    EXPECT_NE(log.find("SIGTERM received, shutting down"), std::string::npos) << log;
    EXPECT_NE(log.find("outboxd: stopped"), std::string::npos) << log;
}

// A pooled session the server ended while idle must not make /readyz say the database is down.
TEST(Daemon, ReadyzAsksAgainOnAFreshSessionWhenAnIdleOneWasEnded) {
    TestDatabase db("daemon_readyz");
    Receiver us;
    auto cfg = daemon_config(db.url(), {{"us", us.url()}});
    Daemon d(cfg.toml, "readyz");
    ASSERT_TRUE(d.start()) << d.log();
    for (int round = 0; round < 3; ++round) {
        ASSERT_EQ(http_request("GET", "127.0.0.1", cfg.metrics, "/readyz").status, 200);
        db.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'outboxd-ingress'");
        auto res = http_request("GET", "127.0.0.1", cfg.metrics, "/readyz");
        EXPECT_EQ(res.status, 200) << "round " << round << ": " << res.body;
    }
}

// Listen addresses may name the host (localhost) as well as give an address.
TEST(Daemon, ListenAddressesMayBeNames) {
    TestDatabase db("daemon_listen_names");
    Receiver us;
    auto cfg = daemon_config(db.url(), {{"us", us.url()}});
    auto toml = cfg.toml;
    for (auto port : {cfg.ingress, cfg.metrics}) {
        auto at = toml.find("127.0.0.1:" + std::to_string(port));
        ASSERT_NE(at, std::string::npos);
        toml.replace(at, 9, "localhost");
    }
    Daemon d(toml, "listen_names");
    ASSERT_TRUE(d.start()) << d.log();
    EXPECT_EQ(http_request("GET", "127.0.0.1", cfg.ingress, "/healthz").status, 200);
    EXPECT_EQ(http_request("GET", "127.0.0.1", cfg.metrics, "/healthz").status, 200);
}
