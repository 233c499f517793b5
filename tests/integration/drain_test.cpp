// The drainer against a real Postgres and real receivers: dead letters, max_attempts, Retry-After,
// NOTIFY wake-up, pauses, the region circuit, and strict per-shard order under many daemons.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "support/harness.hpp"

using namespace testsupport;
using outboxd::db::Params;

namespace {

const std::string kFastRetry = "[retry]\nbase_delay = \"50ms\"\nmax_delay = \"200ms\"\nmax_attempts = 3\nmax_age = \"1h\"\n";

// Rows straight into the outbox (ingress is tested elsewhere): body = "<mailbox>#<seq>".
void seed_rows(TestDatabase& db, const std::string& region, int mailboxes, int rows) {
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, request_path, request_body) "
           "SELECT $1, 'test:' || (g % $2), '/hook', convert_to('test:' || (g % $2) || '#' || g, 'UTF8') "
           "FROM generate_series(1, $3) g",
           Params(region, mailboxes, rows));
}

std::string mailbox_of(const std::string& body) { return body.substr(0, body.find('#')); }

// For each mailbox, the first successful delivery of each row must come in id order.
int out_of_order_mailboxes(Receiver& r) {
    std::map<std::string, std::vector<long>> firsts;
    std::set<long> seen;
    auto reqs = r.ok();
    std::sort(reqs.begin(), reqs.end(), [](const auto& a, const auto& b) { return a.at < b.at; });
    for (const auto& q : reqs) {
        long id = std::stol(q.headers.at("x-outbox-id"));
        if (!seen.insert(id).second) continue;
        firsts[mailbox_of(q.body)].push_back(id);
    }
    int bad = 0;
    for (const auto& [m, ids] : firsts)
        if (!std::is_sorted(ids.begin(), ids.end())) ++bad;
    return bad;
}

std::set<std::string> delivered_bodies(Receiver& r) {
    std::set<std::string> out;
    for (const auto& q : r.ok()) out.insert(q.body);
    return out;
}

}  // namespace

TEST(Drain, PermanentFailureIsDeadAtOnceAndServerErrorsAfterMaxAttempts) {
    TestDatabase db("drain_dead");
    Receiver us([](const ReceivedRequest& r) {
        if (r.body.find("test:1#") == 0) return 404;
        if (r.body.find("test:2#") == 0) return 500;
        return 200;
    });
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, kFastRetry);
    Daemon d(cfg.toml, "dead");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, "us", 3, 3);  // mailboxes test:0 (ok), test:1 (404), test:2 (500): one row each
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox_dead") == "2"; }, 15s)) << d.log();
    EXPECT_EQ(db.scalar("SELECT reason || ':' || last_status || ':' || attempts FROM control_outbox_dead WHERE mailbox_name = 'test:1'"),
              "permanent_status:404:1");
    EXPECT_EQ(db.scalar("SELECT reason || ':' || last_status || ':' || attempts FROM control_outbox_dead WHERE mailbox_name = 'test:2'"),
              "max_attempts:500:3");
    int tries_500 = 0;
    for (const auto& r : us.requests())
        if (r.body.find("test:2#") == 0) ++tries_500;
    EXPECT_EQ(tries_500, 3) << "exactly max_attempts sends";
    EXPECT_EQ(delivered_bodies(us).count("test:0#3"), 1u);
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "0");
    EXPECT_EQ(metric_value(cfg.metrics, "outboxd_dead_letters_total", "reason=\"max_attempts\""), 1);
    EXPECT_EQ(metric_value(cfg.metrics, "outboxd_dead_letters_total", "reason=\"permanent_status\""), 1);
}

TEST(Drain, FailingHeadBlocksOnlyItsOwnShard) {
    TestDatabase db("drain_blocking");
    std::atomic<bool> heal{false};
    Receiver us([&](const ReceivedRequest& r) { return (!heal && r.body.find("test:0#") == 0) ? 503 : 200; });
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, "[retry]\nbase_delay = \"50ms\"\nmax_delay = \"100ms\"\nmax_attempts = 1000\n");
    Daemon d(cfg.toml, "blocking");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, "us", 4, 40);  // 10 rows in each of 4 mailboxes
    // The other three mailboxes drain completely while test:0's head keeps failing.
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "10"; }, 15s)) << d.log();
    for (const auto& r : us.ok()) EXPECT_NE(r.body.find("test:0#"), 0u) << "nothing behind the failing head went out";
    heal = true;
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 15s));
    EXPECT_EQ(out_of_order_mailboxes(us), 0);
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox_dead"), "0");
}

TEST(Drain, RetryAfterIsHonoured) {
    TestDatabase db("drain_retry_after");
    std::atomic<int> calls{0};
    Receiver us([&](const ReceivedRequest&) { return calls++ == 0 ? 429 : 200; });
    us.set_header("Retry-After", "2");
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, kFastRetry);
    Daemon d(cfg.toml, "retry_after");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, "us", 1, 1);
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 1; }, 10s)) << d.log();
    auto reqs = us.requests();
    ASSERT_EQ(reqs.size(), 2u);
    auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(reqs[1].at - reqs[0].at);
    EXPECT_GE(gap.count(), 1900) << "Retry-After: 2 must push the retry back ~2 s (base_delay is 50 ms)";
    EXPECT_EQ(reqs[1].headers["x-outbox-attempt"], "2");
    EXPECT_EQ(reqs[0].headers["x-outbox-id"], reqs[1].headers["x-outbox-id"]) << "stable idempotency key";
}

// A receiver restart closes every kept-alive connection of the pool at once. The request that
// finds one of them dead goes out again on a fresh connection, not on the next dead one: a
// restart costs no attempt and no retry delay.
TEST(Drain, ReceiverRestartCostsNoAttemptWhenSeveralIdleConnectionsAreDead) {
    TestDatabase db("drain_stale_pool");
    // Slow answers while the first rows are in flight, so the daemon opens several connections.
    std::atomic<bool> slow{true};
    Receiver us([&](const ReceivedRequest&) {
        if (slow) std::this_thread::sleep_for(300ms);
        return 200;
    });
    auto cfg = daemon_config(db.url(), {{"us", us.url()}});
    Daemon d(cfg.toml, "stale_pool");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, "us", 6, 6);
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 6; }, 10s)) << d.log();
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 5s));
    ASSERT_GE(us.connections(), 3u) << "precondition: several idle connections in the pool";
    slow = false;
    us.drop_connections();
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, request_path, request_body) "
           "VALUES ('us', 'test:after', '/hook', 'after')");
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 7; }, 10s)) << d.log();
    EXPECT_EQ(us.ok()[6].headers["x-outbox-attempt"], "1") << "dead pooled connections cost no attempt";
    EXPECT_LE(metric_value(cfg.metrics, "outboxd_deliveries_total", "outcome=\"retry\""), 0);
}

// One busy mailbox (a large GitHub organisation) drains run after run without waiting for the
// poll interval between its runs: each finished run's lease release wakes the next claim.
TEST(Drain, OneBusyMailboxIsNotHeldToOneRunPerPollInterval) {
    TestDatabase db("drain_one_mailbox");
    Receiver us;
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, "[drain]\npoll_interval = \"2s\"\nrows_per_mailbox = 20\n");
    Daemon d(cfg.toml, "one_mailbox");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, "us", 1, 400);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 400; }, 60s)) << us.ok().size() << "\n" << d.log();
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, 10s) << "20 runs of 20 rows; one per poll interval would take 40 s";
    EXPECT_EQ(out_of_order_mailboxes(us), 0);
}

TEST(Drain, NotifyWakesIdleDrainerWithoutPolling) {
    TestDatabase db("drain_notify");
    Receiver us;
    // A 30 s poll interval: only NOTIFY can make delivery fast.
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, "[drain]\npoll_interval = \"30s\"\n");
    Daemon d(cfg.toml, "notify");
    ASSERT_TRUE(d.start()) << d.log();
    std::this_thread::sleep_for(700ms);  // let the claimer go idle
    auto t0 = std::chrono::steady_clock::now();
    seed_rows(db, "us", 1, 1);
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 1; }, 5s));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
}

TEST(Drain, IngressCommitWakesIdleDrainer) {
    // The ingress writer skips the trigger's NOTIFY and sends its own after COMMIT.
    TestDatabase db("drain_notify_ingress");
    db.seed_integration(7, "github", "4242", {"us"});
    Receiver us;
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, "[drain]\npoll_interval = \"30s\"\n");
    Daemon d(cfg.toml, "notify_ingress");
    ASSERT_TRUE(d.start()) << d.log();
    std::this_thread::sleep_for(700ms);  // let the claimer go idle
    auto t0 = std::chrono::steady_clock::now();
    auto res = http_request("POST", "127.0.0.1", cfg.ingress, "/extensions/github/webhook/", R"({"installation":{"id":4242}})",
                            {{"X-GitHub-Event", "issues"}});
    ASSERT_EQ(res.status, 202);
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 1; }, 5s));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
}

// Series the alert rules read exist at 0 from the start: increase() cannot see the first step of
// a series that appears at 1, so the first dead letters after a start would not alert.
TEST(Drain, SeriesTheAlertsReadExistFromTheStart) {
    TestDatabase db("drain_series");
    Receiver us;
    auto cfg = daemon_config(db.url(), {{"us", us.url()}});
    Daemon d(cfg.toml, "series");
    ASSERT_TRUE(d.start()) << d.log();
    auto text = http_request("GET", "127.0.0.1", cfg.metrics, "/metrics").body;
    for (const std::string series :
         {"outboxd_dead_letters_total{region=\"us\",reason=\"max_attempts\"} 0",
          "outboxd_dead_letters_total{region=\"us\",reason=\"permanent_status\"} 0",
          "outboxd_dead_letters_total{region=\"none\",reason=\"app_disabled\"} 0",
          "outboxd_deliveries_total{region=\"us\",outcome=\"dead\"} 0",
          "outboxd_region_circuit_open{region=\"us\"} 0"})
        EXPECT_NE(text.find("\n" + series + "\n"), std::string::npos) << series;
}

TEST(Drain, PausedRegionAndMailboxHoldTheirRowsOnly) {
    TestDatabase db("drain_pause");
    Receiver us;
    // A long poll: a resume must not wait for it (nothing NOTIFYs a resume).
    auto cfg = daemon_config(db.url(), {{"us", us.url()}, {"eu", us.url()}}, "[drain]\npoll_interval = \"5s\"\n");
    Daemon d(cfg.toml, "pause");
    ASSERT_TRUE(d.start()) << d.log();
    db.sql("INSERT INTO outbox_pause(kind, name) VALUES ('region', 'eu'), ('mailbox', 'test:1')");
    std::this_thread::sleep_for(1100ms);  // "honoured within a second"
    seed_rows(db, "us", 3, 6);
    seed_rows(db, "eu", 3, 3);
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "5"; }, 10s));
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox WHERE region_name = 'eu'"), "3");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox WHERE region_name = 'us'"), "2") << "us test:1 rows held";
    EXPECT_EQ(db.scalar("SELECT bool_and(paused)::text FROM outbox_backlog"), "true");
    db.sql("DELETE FROM outbox_pause");
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 2s))
        << "resumed rows wait for the next poll, 5 s away";
}

TEST(Drain, DeadRegionOpensTheCircuitAndRecovers) {
    TestDatabase db("drain_circuit");
    std::atomic<bool> down{true};
    Receiver us([&](const ReceivedRequest&) { return down ? 503 : 200; });
    auto cfg = daemon_config(db.url(), {{"us", us.url()}},
                             "[drain]\ncircuit_failures = 5\ncircuit_open = \"1s\"\ncircuit_max_open = \"4s\"\n"
                             "[retry]\nbase_delay = \"10ms\"\nmax_delay = \"20ms\"\nmax_attempts = 100000\n");
    Daemon d(cfg.toml, "circuit");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, "us", 100, 100);
    // The first wave (one request per claimed mailbox) goes out before the circuit can open.
    std::this_thread::sleep_for(1500ms);
    auto after_open = us.requests().size();
    std::this_thread::sleep_for(3s);
    auto probes = us.requests().size() - after_open;
    // Without the circuit, 100 mailboxes retrying every ~20 ms would send thousands in 3 s.
    EXPECT_LE(probes, 6u) << "requests to a dead region while its circuit is open (half-open probes only)";
    EXPECT_EQ(metric_value(cfg.metrics, "outboxd_region_circuit_open", "region=\"us\""), 1);
    down = false;
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 20s)) << d.log();
    EXPECT_EQ(metric_value(cfg.metrics, "outboxd_region_circuit_open", "region=\"us\""), 0);
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox_dead"), "0");
    // The runbook's `grep region=us` finds why, at the default level, without a line per retry.
    auto log = d.log();
    EXPECT_NE(log.find("level=warning drain: region=us circuit opened after 5 failures"), std::string::npos) << log;
    EXPECT_NE(log.find("level=info drain: region=us circuit closed"), std::string::npos) << log;
    auto retry_lines = count_of(log, "region=us retry");
    EXPECT_GE(retry_lines, 1u) << log;
    EXPECT_LE(retry_lines, 12u) << "at most one retry line a second per region";
    EXPECT_NE(log.find("status=503"), std::string::npos) << log;
}

TEST(Drain, OrderHoldsWithFourDaemonsAndThirtyPercentFailures) {
    TestDatabase db("drain_order");
    std::mutex mu;
    std::mt19937 rng(7);
    Receiver us([&](const ReceivedRequest&) {
        std::lock_guard lk(mu);
        return std::uniform_real_distribution<>(0, 1)(rng) < 0.3 ? 500 : 200;
    });
    const std::string extra = "[drain]\nconcurrency = 16\nbatch_size = 16\nrows_per_mailbox = 10\n"
                              "[retry]\nbase_delay = \"5ms\"\nmax_delay = \"20ms\"\nmax_attempts = 1000\n";
    std::vector<std::unique_ptr<Daemon>> daemons;
    for (int i = 0; i < 4; ++i) {
        auto cfg = daemon_config(db.url(), {{"us", us.url()}}, extra);
        daemons.push_back(std::make_unique<Daemon>(cfg.toml, "order" + std::to_string(i)));
        ASSERT_TRUE(daemons.back()->start()) << daemons.back()->log();
    }
    seed_rows(db, "us", 50, 5000);
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 120s))
        << db.scalar("SELECT count(*) FROM control_outbox") << " left";
    EXPECT_EQ(delivered_bodies(us).size(), 5000u) << "every row arrived";
    EXPECT_EQ(out_of_order_mailboxes(us), 0);
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox_dead"), "0");
    for (auto& d : daemons) EXPECT_EQ(d->terminate(), 0);
}

TEST(Drain, ClaimsStayFastWhenTheBacklogGrowsFromEmpty) {
    // The soak's failure: claims planned while the outbox was empty (its normal state) turned into
    // sequential scans per shard once a backlog built up, and deliveries stopped.
    TestDatabase db("drain_plan");
    Receiver us;
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, "[drain]\npoll_interval = \"50ms\"\n");
    Daemon d(cfg.toml, "plan");
    ASSERT_TRUE(d.start()) << d.log();
    db.sql("VACUUM ANALYZE control_outbox");
    // Let the claimer run well over the five executions after which a generic plan is cached.
    ASSERT_TRUE(wait_until([&] { return metric_value(cfg.metrics, "outboxd_claims_total") >= 12; }, 10s));
    seed_rows(db, "us", 1000, 30000);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 45s))
        << db.scalar("SELECT count(*) FROM control_outbox") << " rows left";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
    EXPECT_EQ(out_of_order_mailboxes(us), 0);
}

// A DBA's lock (CREATE INDEX takes SHARE) lets claims and deliveries go on but holds the
// completer's DELETE. The runs' leases must outlive that wait, or the next claim sends the
// delivered rows again, with no crash anywhere.
TEST(Drain, LeasesAreRenewedWhileOutcomesWaitBehindALock) {
    TestDatabase db("drain_lease_renewal");
    Receiver us;
    seed_rows(db, "us", 3, 30);
    outboxd::db::Connection dba(db.url(), "dba");
    dba.exec("BEGIN");
    dba.exec("LOCK TABLE control_outbox IN SHARE MODE");
    auto cfg = daemon_config(db.url(), {{"us", us.url()}},
                             "[drain]\nlease = \"2s\"\nrequest_timeout = \"500ms\"\npoll_interval = \"100ms\"\n"
                             "[apps]\nrequest_timeout = \"500ms\"\n");
    Daemon d(cfg.toml, "lease-renewal");
    ASSERT_TRUE(d.start()) << d.log();
    ASSERT_TRUE(wait_until([&] { return us.ok().size() >= 30; }, 10s)) << d.log();
    // Three leases long: without renewal each lapse would send the 30 rows again.
    std::this_thread::sleep_for(6s);
    EXPECT_EQ(us.requests().size(), 30u) << "rows sent again while their outcomes waited\n" << d.log();
    dba.exec("COMMIT");
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 10s)) << d.log();
    EXPECT_EQ(us.requests().size(), 30u);
    EXPECT_EQ(delivered_bodies(us).size(), 30u);
    EXPECT_EQ(out_of_order_mailboxes(us), 0);
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox_lease WHERE owner IS NOT NULL"), "0") << "all released";
    EXPECT_EQ(d.terminate(), 0);
}

// SIGTERM while the completer's write waits on a DBA's lock: the write is cancelled after its
// few seconds and the daemon exits; the rows stay and are delivered again (at least once).
TEST(Drain, StopIsBoundedWhileOutcomesWaitBehindALock) {
    TestDatabase db("drain_stop_locked");
    Receiver us;
    seed_rows(db, "us", 2, 4);
    outboxd::db::Connection dba(db.url(), "dba");
    dba.exec("BEGIN");
    dba.exec("LOCK TABLE control_outbox IN SHARE MODE");
    auto cfg = daemon_config(db.url(), {{"us", us.url()}},
                             "[drain]\nshutdown_timeout = \"1s\"\npoll_interval = \"100ms\"\n");
    Daemon d(cfg.toml, "stop-locked-completer");
    ASSERT_TRUE(d.start()) << d.log();
    ASSERT_TRUE(wait_until([&] { return us.ok().size() >= 4; }, 10s)) << d.log();
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(d.terminate(30s), 0) << d.log();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s) << d.log();
    EXPECT_NE(d.log().find("cancelling the pending write"), std::string::npos) << d.log();
    dba.exec("ROLLBACK");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "4") << "nothing was completed, nothing lost";
}
