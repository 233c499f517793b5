// Fault tests with real processes: kill -9 mid-delivery, a PostgreSQL restart mid-drain, and
// SIGTERM with deliveries in flight. Nothing may be lost; duplicates share X-Outbox-Id.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>

#include "support/harness.hpp"

using namespace testsupport;
using outboxd::db::Params;

namespace {

void seed_rows(TestDatabase& db, int mailboxes, int rows) {
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, request_path, request_body) "
           "SELECT 'us', 'test:' || (g % $1), '/hook', convert_to('row-' || g, 'UTF8') FROM generate_series(1, $2) g",
           Params(mailboxes, rows));
}

std::set<std::string> delivered(Receiver& r) {
    std::set<std::string> out;
    for (const auto& q : r.ok()) out.insert(q.body);
    return out;
}

bool same_id_for_duplicates(Receiver& r) {
    std::map<std::string, std::set<std::string>> ids;
    for (const auto& q : r.requests()) ids[q.body].insert(q.headers.at("x-outbox-id"));
    for (const auto& [b, s] : ids)
        if (s.size() != 1) return false;
    return true;
}

std::string cluster_ctl(const std::string& action) {
    const char* v = std::getenv("PGVERSION");
    auto [rc, out] = run_command("pg_ctlcluster " + std::string(v ? v : "15") + " regress " + action);
    return rc == 0 ? "" : out;
}

}  // namespace

TEST(Fault, KillDashNineMidDeliveryLosesNothing) {
    TestDatabase db("fault_kill9");
    std::atomic<bool> hang{true};
    Receiver us([&](const ReceivedRequest&) {
        if (hang) std::this_thread::sleep_for(3s);  // the daemon dies while these are in flight
        return 200;
    });
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, "[drain]\nrequest_timeout = \"10s\"\n");
    Daemon a(cfg.toml, "kill9-a");
    ASSERT_TRUE(a.start()) << a.log();
    seed_rows(db, 20, 200);
    ASSERT_TRUE(wait_until([&] { return us.requests().size() > 0 || db.scalar("SELECT count(*) FROM outbox_lease WHERE owner IS NOT NULL") != "0"; }, 10s));
    std::this_thread::sleep_for(300ms);
    a.kill9();
    hang = false;
    auto t0 = std::chrono::steady_clock::now();
    Daemon b(cfg.toml, "kill9-b");
    ASSERT_TRUE(b.start()) << b.log();
    ASSERT_TRUE(wait_until([&] { return delivered(us).size() == 200; }, 40s)) << delivered(us).size() << " of 200\n" << b.log();
    // The dead daemon's session vanished with it, so its claims were void at once, not after the lease.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
    EXPECT_TRUE(same_id_for_duplicates(us));
    EXPECT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 10s));
    EXPECT_EQ(b.terminate(), 0);
}

TEST(Fault, PostgresRestartMidDrainLosesNothing) {
    TestDatabase db("fault_pg_restart");
    Receiver us([](const ReceivedRequest&) {
        std::this_thread::sleep_for(5ms);
        return 200;
    });
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, "[drain]\nconcurrency = 8\n");
    Daemon d(cfg.toml, "pgrestart");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, 10, 2000);
    ASSERT_TRUE(wait_until([&] { return delivered(us).size() > 100; }, 20s)) << d.log();
    ASSERT_EQ(cluster_ctl("restart -m fast"), "");
    db.conn().reset();
    EXPECT_TRUE(d.running()) << "a database outage never stops the daemon";
    ASSERT_TRUE(wait_until([&] { return delivered(us).size() == 2000; }, 60s)) << delivered(us).size() << "\n" << d.log();
    EXPECT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 20s));
    EXPECT_TRUE(same_id_for_duplicates(us));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox_dead"), "0");
    EXPECT_NE(d.log().find("database reachable again"), std::string::npos) << "one log line per state change";
    EXPECT_EQ(d.terminate(), 0);
}

// The claimer's session is what its leases live on. When it is lost (here: terminated; a
// PostgreSQL restart does the same), the shards become claimable again while runs of the old
// session may still be sending: those must stop before their next row, and this daemon must not
// claim again until they ended, or one mailbox gets two requests at once and its order breaks.
TEST(Fault, LostClaimSessionNeverSendsOneMailboxTwoRequestsAtOnce) {
    TestDatabase db("fault_lost_session");
    std::mutex mu;
    std::map<std::string, int> open_per_mailbox;
    int worst = 0;
    Receiver us([&](const ReceivedRequest& r) {
        auto n = std::stol(r.body.substr(4));  // "row-<g>", mailbox g % 8
        auto mailbox = std::to_string(n % 8);
        {
            std::lock_guard lk(mu);
            worst = std::max(worst, ++open_per_mailbox[mailbox]);
        }
        std::this_thread::sleep_for(200ms);
        std::lock_guard lk(mu);
        --open_per_mailbox[mailbox];
        return 200;
    });
    auto cfg = daemon_config(db.url(), {{"us", us.url()}});
    Daemon d(cfg.toml, "lost-session");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, 8, 64);
    ASSERT_TRUE(wait_until([&] { return delivered(us).size() >= 8; }, 20s)) << d.log();
    db.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'outboxd-claimer'");
    ASSERT_TRUE(wait_until([&] { return delivered(us).size() == 64; }, 60s)) << delivered(us).size() << "\n" << d.log();
    {
        std::lock_guard lk(mu);
        EXPECT_EQ(worst, 1) << "two requests of one mailbox were open at once\n" << d.log();
    }
    EXPECT_TRUE(same_id_for_duplicates(us));
    EXPECT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 10s));
    EXPECT_NE(d.log().find("claim session lost"), std::string::npos) << d.log();
    EXPECT_EQ(d.terminate(), 0);
}

TEST(Fault, SigtermFinishesOrReleasesInFlightWork) {
    TestDatabase db("fault_sigterm");
    Receiver us([](const ReceivedRequest&) {
        std::this_thread::sleep_for(300ms);
        return 200;
    });
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, "[drain]\nshutdown_timeout = \"5s\"\n");
    Daemon a(cfg.toml, "sigterm-a");
    ASSERT_TRUE(a.start()) << a.log();
    seed_rows(db, 5, 100);
    ASSERT_TRUE(wait_until([&] { return us.requests().size() >= 5; }, 10s));
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(a.terminate(), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(8)) << "bounded shutdown";
    // Nothing is left claimed: a second daemon picks the rest up at once.
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox_lease WHERE owner IS NOT NULL"), "0");
    Daemon b(cfg.toml, "sigterm-b");
    ASSERT_TRUE(b.start()) << b.log();
    ASSERT_TRUE(wait_until([&] { return delivered(us).size() == 100; }, 60s)) << delivered(us).size();
    EXPECT_EQ(b.terminate(), 0);
}
