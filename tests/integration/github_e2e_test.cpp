// End to end through a real Postgres and real receivers: a signed GitHub webhook reaches each
// region exactly once, byte for byte; a failed insert answers 5xx and forwards nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>

#include "outboxd/ingress/parser.hpp"
#include "support/harness.hpp"

using namespace testsupport;

namespace {

std::string config_for(const TestDatabase& db, unsigned short ingress, unsigned short metrics,
                       const std::vector<std::pair<std::string, std::string>>& regions, const std::string& extra = "") {
    std::string c = "[database]\nurl = \"" + db.url() + "\"\n\n[ingress]\nlisten = \"127.0.0.1:" + std::to_string(ingress) +
                    "\"\n\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics) +
                    "\"\n\n[drain]\nrequest_timeout = \"2s\"\n\n[retry]\nbase_delay = \"50ms\"\nmax_delay = \"200ms\"\n\n";
    for (const auto& [name, url] : regions)
        c += "[[region]]\nname = \"" + name + "\"\nurl = \"" + url + "\"\nsecret = \"" + name + "-secret\"\n\n";
    c += "[provider.github]\nwebhook_secret = \"gh-secret\"\n" + extra;
    return c;
}

const std::string kBody = R"({"action":"opened","issue":{"id":1,"title":"naïve 🚀"},"installation":{"id":4242}})";

std::vector<std::pair<std::string, std::string>> github_headers(const std::string& body) {
    return {{"X-GitHub-Event", "issues"},
            {"X-GitHub-Delivery", "d-1"},
            {"Content-Type", "application/json"},
            {"X-Hub-Signature-256", "sha256=" + outboxd::ingress::hmac_sha256_hex("gh-secret", body)}};
}

// Posts the signed issues webhook of kBody to `target` on the ingress.
HttpResult post_webhook(unsigned short ingress, const std::string& target = "/extensions/github/webhook/") {
    return http_request("POST", "127.0.0.1", ingress, target, kBody, github_headers(kBody));
}

// Integration 7 (installation 4242) in region "us", its receiver, and a daemon not yet started.
struct OneRegion {
    explicit OneRegion(const std::string& name)
        : db("github_" + name), d(config_for(db, ingress, metrics, {{"us", us.url()}}), name) {
        db.seed_integration(7, "github", "4242", {"us"});
    }
    TestDatabase db;
    Receiver us;
    unsigned short ingress = free_port(), metrics = free_port();
    Daemon d;
};

}  // namespace

TEST(GithubEndToEnd, EachRegionGetsOneByteExactCopy) {
    TestDatabase db("github_e2e");
    // Three organizations: two in us, one in eu.
    db.seed_integration(7, "github", "4242", {"us", "us", "eu"});
    Receiver us, eu;
    auto ingress = free_port(), metrics = free_port();
    Daemon d(config_for(db, ingress, metrics, {{"us", us.url()}, {"eu", eu.url()}}), "e2e");
    ASSERT_TRUE(d.start()) << d.log();

    auto res = http_request("POST", "127.0.0.1", ingress, "/extensions/github/webhook/?x=1", kBody, github_headers(kBody));
    ASSERT_EQ(res.status, 202) << res.body;

    ASSERT_TRUE(wait_until([&] { return us.ok().size() >= 1 && eu.ok().size() >= 1; }, 10s)) << d.log();
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 5s));
    EXPECT_EQ(us.requests().size(), 1u) << "two us organizations still make one copy";
    EXPECT_EQ(eu.requests().size(), 1u);
    for (auto* r : {&us, &eu}) {
        auto req = r->requests().at(0);
        EXPECT_EQ(req.body, kBody) << "body forwarded byte for byte";
        EXPECT_EQ(req.target, "/extensions/github/webhook/?x=1") << "path and query kept";
        EXPECT_EQ(req.headers["x-hub-signature-256"], "sha256=" + outboxd::ingress::hmac_sha256_hex("gh-secret", req.body));
        EXPECT_EQ(req.headers["x-github-event"], "issues");
        EXPECT_FALSE(req.headers["x-outbox-id"].empty());
        EXPECT_EQ(req.headers["x-outbox-attempt"], "1");
    }
    auto us_req = us.requests().at(0);
    EXPECT_EQ(us_req.headers["x-outbox-signature"], "sha256=" + outboxd::ingress::hmac_sha256_hex("us-secret", kBody));
    EXPECT_EQ(us_req.headers["host"], "127.0.0.1:" + std::to_string(us.port()));
    EXPECT_EQ(d.terminate(), 0);
}

TEST(GithubEndToEnd, FailedInsertAnswers5xxAndForwardsNothing) {
    TestDatabase db("github_commit_rule");
    db.seed_integration(7, "github", "4242", {"us"});
    // Every insert into the outbox fails, as it would with a full disk or a broken constraint.
    db.sql("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$");
    db.sql("CREATE TRIGGER refuse BEFORE INSERT ON control_outbox FOR EACH ROW EXECUTE FUNCTION refuse()");
    Receiver us;
    auto ingress = free_port(), metrics = free_port();
    Daemon d(config_for(db, ingress, metrics, {{"us", us.url()}}), "commit");
    ASSERT_TRUE(d.start()) << d.log();
    auto res = post_webhook(ingress);
    EXPECT_GE(res.status, 500);
    EXPECT_LT(res.status, 600);
    std::this_thread::sleep_for(500ms);  // give a (wrong) drainer time to forward something
    EXPECT_TRUE(us.requests().empty());
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "0");
    // Once the fault is gone the same webhook is accepted: the daemon kept serving.
    db.sql("DROP TRIGGER refuse ON control_outbox");
    EXPECT_EQ(post_webhook(ingress).status, 202);
    EXPECT_TRUE(wait_until([&] { return us.ok().size() == 1; }, 10s));
}

TEST(GithubEndToEnd, DatabaseDownAnswers503) {
    OneRegion setup("db_down");
    auto& [db, us, ingress, metrics, d] = setup;
    ASSERT_TRUE(d.start()) << d.log();
    // Cut every session of this database: the writer's and lookups' connections are gone.
    outboxd::db::Connection admin(conninfo("postgres"));
    admin.exec("ALTER DATABASE " + db.name() + " ALLOW_CONNECTIONS false");
    admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db.name() + "'");
    // Every request gets its 503, those that find a pooled connection dead and those that must dial one.
    for (int i = 0; i < 12; ++i) {
        auto res = post_webhook(ingress);
        EXPECT_EQ(res.status, 503) << "request " << i << ": " << res.body;
    }
    EXPECT_TRUE(d.running()) << "a database outage never stops the daemon";
    admin.exec("ALTER DATABASE " + db.name() + " ALLOW_CONNECTIONS true");
    db.conn().reset();
    EXPECT_TRUE(wait_until([&] {
        return post_webhook(ingress).status == 202;
    }, 15s)) << d.log();
    EXPECT_TRUE(wait_until([&] { return us.ok().size() == 1; }, 15s)) << d.log();
    EXPECT_TRUE(us.requests().size() == 1u);
}

// Sessions the server ended while idle (a restart, pg_terminate_backend) are noticed before they
// are used: the next webhook is stored, not refused on a dead connection.
TEST(GithubEndToEnd, SessionsEndedWhileIdleCostNoWebhook) {
    OneRegion setup("sessions_ended");
    auto& [db, us, ingress, metrics, d] = setup;
    ASSERT_TRUE(d.start()) << d.log();
    for (int i = 0; i < 4; ++i)
        ASSERT_EQ(post_webhook(ingress).status, 202);
    outboxd::db::Connection admin(conninfo("postgres"));
    admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db.name() +
               "' AND application_name LIKE 'outboxd-%'");
    std::this_thread::sleep_for(200ms);  // the terminations reach the sessions
    for (int i = 0; i < 4; ++i) {
        auto res = post_webhook(ingress);
        EXPECT_EQ(res.status, 202) << "webhook " << i << ": " << res.body;
    }
    EXPECT_TRUE(wait_until([&] { return us.ok().size() == 8; }, 15s)) << d.log();
}

// The query is forwarded as the provider sent it, including characters a strict URI parser
// refuses; they were answered 202 and then dead-lettered as an unusable URL, never delivered.
TEST(GithubEndToEnd, AQueryTheIngressAcceptsIsForwardedByteForByte) {
    OneRegion setup("query");
    auto& [db, us, ingress, metrics, d] = setup;
    ASSERT_TRUE(d.start()) << d.log();
    const std::vector<std::string> targets = {
        "/extensions/github/webhook/?a=x|y&b={z}&c=^",
        "/extensions/github/webhook/?ids[]=1&q=%zz",
        "/extensions/github/webhook/?name=\xc3\xa9t\xc3\xa9",
    };
    for (const auto& t : targets)
        EXPECT_EQ(post_webhook(ingress, t).status, 202) << t;
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == targets.size(); }, 10s)) << d.log();
    for (std::size_t i = 0; i < targets.size(); ++i) EXPECT_EQ(us.ok()[i].target, targets[i]);
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox_dead"), "0");
}

// A commit stuck behind a lock (a migration, a DBA's LOCK TABLE) is answered 503 before a provider
// gives up on the request (GitHub: 10 s), not left hanging until the lock goes.
TEST(GithubEndToEnd, ACommitStuckBehindALockIsAnswered503InTime) {
    OneRegion setup("locked");
    auto& [db, us, ingress, metrics, d] = setup;
    ASSERT_TRUE(d.start()) << d.log();
    ASSERT_EQ(post_webhook(ingress).status, 202);
    outboxd::db::Connection locker(db.url());
    locker.exec("BEGIN");
    locker.exec("LOCK TABLE control_outbox IN EXCLUSIVE MODE");
    auto t0 = std::chrono::steady_clock::now();
    auto res = post_webhook(ingress);
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(res.status, 503) << res.body;
    EXPECT_LT(took, std::chrono::seconds(8));
    locker.exec("ROLLBACK");
    EXPECT_EQ(post_webhook(ingress).status, 202);
    EXPECT_TRUE(wait_until([&] { return us.ok().size() == 2; }, 10s)) << "the two accepted webhooks, not the refused one";
    EXPECT_EQ(us.ok().size(), 2u);
}

// Provider payloads are often tens of kilobytes: PostgreSQL compresses such bodies on insert, with
// lz4 since migration 009 (pglz costs the insert path several times more CPU). Whatever the
// storage, the region must get the provider's bytes back unchanged.
TEST(GithubEndToEnd, ALargeBodyIsStoredLz4CompressedAndForwardedByteForByte) {
    TestDatabase db("github_large_body");
    db.seed_integration(7, "github", "4242", {"us"});
    std::string body = R"({"ref":"refs/heads/main","installation":{"id":4242},"commits":[)";
    for (int i = 0; i < 200; ++i)
        body += (i ? "," : "") + std::string(R"({"id":")") + outboxd::ingress::hmac_sha256_hex("c", std::to_string(i)) +
                R"(","message":"Fix issue #)" + std::to_string(i * 7919 % 10007) + R"(","author":{"name":"dev )" +
                std::to_string(i % 13) + R"("},"added":[],"removed":[],"modified":["src/file_)" + std::to_string(i) + R"(.cpp"]})";
    body += "]}";
    ASSERT_GT(body.size(), 30000u);
    std::atomic<bool> hold{true};
    Receiver us([&](const ReceivedRequest&) { return hold.load() ? 503 : 200; });
    auto ingress = free_port(), metrics = free_port();
    Daemon d(config_for(db, ingress, metrics, {{"us", us.url()}}), "large");
    ASSERT_TRUE(d.start()) << d.log();
    ASSERT_EQ(http_request("POST", "127.0.0.1", ingress, "/extensions/github/webhook/", body, github_headers(body)).status, 202);

    ASSERT_TRUE(wait_until([&] { return !us.requests().empty(); }, 10s)) << d.log();
    EXPECT_EQ(db.scalar("SELECT pg_column_compression(request_body) FROM control_outbox"), "lz4");
    EXPECT_LT(std::stoi(db.scalar("SELECT pg_column_size(request_body) FROM control_outbox")), int(body.size() / 2));
    hold = false;
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 1; }, 10s)) << d.log();
    EXPECT_EQ(us.ok().at(0).body, body);
    EXPECT_EQ(d.terminate(), 0);
}

// The server at its connection limit and one writer session killed: that writer cannot open
// another. It used to take its share of the requests anyway and answer them 503 (half of all
// webhooks) while the other writer's session worked, with /readyz at 200.
TEST(GithubEndToEnd, AWriterThatCannotReconnectLeavesItsRequestsToTheOther) {
    TestDatabase db("github_writer_slot");
    db.seed_integration(7, "github", "4242", {"us"});
    db.sql("DROP ROLE IF EXISTS outboxd_limited");
    db.sql("CREATE ROLE outboxd_limited LOGIN PASSWORD 'pw'");  // not a superuser: limits apply
    db.sql("GRANT ALL ON ALL TABLES IN SCHEMA public TO outboxd_limited");
    db.sql("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO outboxd_limited");
    const char* host = std::getenv("PGHOST");
    const char* port = std::getenv("PGPORT");
    std::string url = "postgresql://outboxd_limited:pw@" + std::string(host ? host : "localhost") + ":" +
                      std::string(port ? port : "5432") + "/" + db.name();
    Receiver us;
    auto ingress = free_port(), metrics = free_port();
    std::string cfg = config_for(db, ingress, metrics, {{"us", us.url()}});
    cfg.replace(cfg.find(db.url()), db.url().size(), url);
    Daemon d(cfg, "writer_slot");
    ASSERT_TRUE(d.start()) << d.log();
    for (int i = 0; i < 3; ++i) ASSERT_EQ(post_webhook(ingress).status, 202);

    auto sessions = [&](const std::string& app) {
        return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = 'outboxd_limited' AND application_name = '" +
                         app + "'");
    };
    ASSERT_EQ(sessions("outboxd-writer"), "2");
    // Ends writer sessions, then caps the role at the sessions it has left: whatever else of the
    // daemon connects in between keeps its slot, and the writers cannot open another.
    auto cut_writers = [&](const std::string& limit, const std::string& left) {
        db.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'outboxd_limited' "
               "AND application_name = 'outboxd-writer' LIMIT " + limit);
        ASSERT_TRUE(wait_until([&] { return sessions("outboxd-writer") == left; }, 5s));
        db.sql("ALTER ROLE outboxd_limited CONNECTION LIMIT " +
               db.scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = 'outboxd_limited'"));
    };
    cut_writers("1", "1");

    int accepted = 0;
    for (int i = 0; i < 10; ++i) accepted += post_webhook(ingress).status == 202;
    EXPECT_EQ(accepted, 10) << d.log();
    EXPECT_EQ(http_request("GET", "127.0.0.1", metrics, "/readyz").status, 200) << "one writer session is enough";

    // The last writer session too: nothing can be stored now, and /readyz says why.
    cut_writers("1", "0");
    EXPECT_EQ(post_webhook(ingress).status, 503);
    auto ready = http_request("GET", "127.0.0.1", metrics, "/readyz");
    EXPECT_EQ(ready.status, 503);
    EXPECT_EQ(ready.body, "outbox writer not connected\n");
    EXPECT_NE(d.log().find("outbox_writer: cannot open a session"), std::string::npos) << d.log();
    EXPECT_EQ(count_of(d.log(), "outbox_writer: cannot open a session"), 2u) << "once per writer, not per retry";

    db.sql("ALTER ROLE outboxd_limited CONNECTION LIMIT -1");
    EXPECT_TRUE(wait_until([&] { return post_webhook(ingress).status == 202; }, 10s)) << d.log();
    EXPECT_TRUE(wait_until([&] { return us.ok().size() == 14; }, 10s)) << d.log();
    EXPECT_EQ(d.terminate(), 0);
}
