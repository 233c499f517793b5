// The daemon as systemd and a load balancer see it: signals that come while it starts, /readyz
// after the server ended an idle session, listen addresses written as names.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

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

namespace {
double cpu_seconds_of(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(f, line);
    std::istringstream fields(line.substr(line.rfind(')') + 2));
    std::string field;
    long ticks = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i)
        if (i == 14 || i == 15) ticks += std::atol(field.c_str());
    return double(ticks) / double(sysconf(_SC_CLK_TCK));
}
}  // namespace

// Out of descriptors, accept() fails at once, every time, while connections wait in the backlog:
// the listener must pause between tries (it spun a core and wrote 330,000 lines a second) and
// serve again once descriptors are free.
TEST(Daemon, RunningOutOfDescriptorsNeitherSpinsNorFloodsTheLog) {
    TestDatabase db("daemon_emfile");
    auto cfg = daemon_config(db.url(), {{"us", "http://127.0.0.1:1"}});
    Daemon d(cfg.toml, "emfile");
    d.set_open_file_limit(128);
    ASSERT_TRUE(d.start()) << d.log();
    std::vector<int> held;
    for (int i = 0; i < 200; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(cfg.ingress);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        held.push_back(fd);
    }
    ASSERT_TRUE(wait_until([&] { return d.log().find("accept failed") != std::string::npos; }, 10s))
        << "the limit was not reached; the test needs a lower one\n" << d.log();
    double before = cpu_seconds_of(d.pid());
    auto lines_before = count_of(d.log(), "accept failed");
    std::this_thread::sleep_for(2s);  // the window measured
    EXPECT_LT(cpu_seconds_of(d.pid()) - before, 0.5) << "CPU seconds in 2 s out of descriptors";
    EXPECT_LE(count_of(d.log(), "accept failed") - lines_before, 4u) << "about one line a second";
    for (int fd : held) ::close(fd);
    EXPECT_TRUE(wait_until([&] { return http_request("GET", "127.0.0.1", cfg.ingress, "/healthz").status == 200; }, 10s))
        << d.log();
    EXPECT_EQ(d.terminate(), 0);
}

// SIGTERM while the claimer waits on a lock (a DBA's LOCK TABLE outbox_lease): the stop is
// bounded by drain.shutdown_timeout and a second or two, not by the lock (it took 37 s with a
// 5 s shutdown_timeout, past systemd's TimeoutStopSec).
TEST(Daemon, StopIsBoundedWhileTheClaimerWaitsOnALock) {
    TestDatabase db("daemon_stop_locked");
    auto cfg = daemon_config(db.url(), {{"us", "http://127.0.0.1:1"}},
                             "[drain]\nshutdown_timeout = \"2s\"\npoll_interval = \"100ms\"\n");
    Daemon d(cfg.toml, "stop-locked");
    ASSERT_TRUE(d.start()) << d.log();
    outboxd::db::Connection dba(db.url(), "dba");
    dba.exec("BEGIN");
    dba.exec("LOCK TABLE outbox_lease IN ACCESS EXCLUSIVE MODE");
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, request_body) VALUES ('us', 'm', '\\x00')");
    ASSERT_TRUE(wait_until([&] {
        return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'outboxd-claimer' "
                         "AND wait_event_type = 'Lock'") == "1";
    }, 10s)) << "the claimer should be waiting on the lock\n" << d.log();
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(d.terminate(30s), 0) << d.log();
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, 6s) << "stop took " << std::chrono::duration<double>(took).count() << " s\n" << d.log();
    EXPECT_NE(d.log().find("cancelling its statement"), std::string::npos) << d.log();
    dba.exec("ROLLBACK");
}
