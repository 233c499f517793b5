// Sentry-App webhooks through a real Postgres (and, for the App*Daemon tests, a real outboxd, app
// receiver and SMTP listener): the producers' SQL API and its filters, the signed envelope, the
// request log and its trimming, the health counters, the broken-app rule with an injected clock,
// the disable transaction, an email received over SMTP, and the SSRF guard.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <cstdlib>
#include <ctime>

#include "outboxd/ingress/parser.hpp"
#include "outboxd/db/migrations.hpp"
#include "support/harness.hpp"

using namespace testsupport;
using outboxd::db::Params;

namespace {

constexpr const char* kSecret = "app-secret";

// App 1 (internal, client_secret app-secret) installed as installation 10 on organization 501,
// whose service hook 100 lists EVENTS.
void seed_app(TestDatabase& db, const std::string& webhook_url,
              const std::string& events = "{issue.created,issue.assigned,issue.resolved,issue.ignored,error.created}") {
    db.sql("INSERT INTO sentry_app(id, slug, name, webhook_url, client_secret, status) "
           "VALUES (1, 'kanban', 'Kanban', $1, $2, 'internal')",
           Params(webhook_url, std::string(kSecret)));
    db.sql("INSERT INTO sentry_app_installation(id, uuid, sentry_app_id, organization_id, status) "
           "VALUES (10, 'inst-uuid-1', 1, 501, 'installed')");
    db.sql("INSERT INTO organization_mapping(organization_id, slug, region_name) VALUES (501, 'acme', 'us')");
    db.sql("INSERT INTO service_hook(id, installation_id, organization_id, url, events) VALUES (100, 10, 501, $1, $2::text[])",
           Params(webhook_url, events));
}

// NULL → nullopt; else the new control_outbox id.
std::optional<std::int64_t> send(TestDatabase& db, const std::string& event, const std::string& data,
                                 std::int64_t installation = 10) {
    auto r = db.sql("SELECT send_resource_change_webhook($1, $2, $3::jsonb)", Params(installation, event, data));
    if (r.is_null(0, 0)) return std::nullopt;
    return r.int64(0, 0);
}

struct Row {
    std::string mailbox, category, target_url, body;
    std::optional<std::string> region;
    std::map<std::string, std::string> headers;
};

Row outbox_row(TestDatabase& db, std::int64_t id) {
    auto r = db.sql("SELECT mailbox_name, category, target_url, request_body, region_name, request_headers::text "
                    "FROM control_outbox WHERE id = $1",
                    Params(id));
    EXPECT_EQ(r.rows(), 1);
    Row row;
    if (r.rows() != 1) return row;
    row.mailbox = r.text(0, 0);
    row.category = r.text(0, 1);
    row.target_url = r.text(0, 2);
    row.body = r.bytea(0, 3);
    row.region = r.optional_text(0, 4);
    auto headers = boost::json::parse(r.text(0, 5));
    for (const auto& pair : headers.as_array()) {
        const auto& a = pair.as_array();
        row.headers[std::string(a.at(0).as_string())] = std::string(a.at(1).as_string());
    }
    return row;
}

std::string sql_error(TestDatabase& db, const std::string& q, const Params& p = {}) {
    try {
        db.sql(q, p);
    } catch (const outboxd::db::Error& e) {
        return e.what();
    }
    return "";
}

std::string config_for(const TestDatabase& db, const std::string& extra) {
    return "[database]\nurl = \"" + db.url() + "\"\n\n[ingress]\nlisten = \"127.0.0.1:" + std::to_string(free_port()) +
           "\"\n\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(free_port()) +
           "\"\n\n[retry]\nbase_delay = \"50ms\"\nmax_delay = \"200ms\"\n\n"
           "[[region]]\nname = \"us\"\nurl = \"http://127.0.0.1:9\"\nsecret = \"us-secret\"\n\n" +
           extra;
}

// Outcomes JSON for outboxd_app_record_outcomes, one per id.
std::string outcomes(const std::vector<std::int64_t>& ids, const std::string& kind, int status,
                     const std::string& request_head = "", const std::string& response_head = "") {
    boost::json::array a;
    for (auto id : ids)
        a.push_back(boost::json::object{{"id", id},
                                        {"mailbox", "app:10"},
                                        {"kind", kind},
                                        {"status", status},
                                        {"url", "http://app.example/hook"},
                                        {"error", kind == "delivered" ? "" : "HTTP " + std::to_string(status)},
                                        {"request_head", request_head},
                                        {"response_head", response_head}});
    return boost::json::serialize(a);
}

std::vector<std::int64_t> send_many(TestDatabase& db, const std::string& event, int n) {
    auto r = db.sql("SELECT send_resource_change_webhook(10, $1, jsonb_build_object('n', g)) FROM generate_series(1, $2) g",
                    Params(event, n));
    std::vector<std::int64_t> ids;
    for (int i = 0; i < r.rows(); ++i) ids.push_back(r.int64(i, 0));
    return ids;
}

// A tiny SMTP server on 127.0.0.1 that accepts every message (one connection at a time).
class SmtpListener {
public:
    struct Mail {
        std::string from;
        std::vector<std::string> rcpt;
        std::string data;
    };

    SmtpListener() {
        namespace asio = boost::asio;
        asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
        acceptor_.open(ep.protocol());
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        thread_ = std::thread([this] { run(); });
    }
    ~SmtpListener() {
        stopping_ = true;
        boost::system::error_code ec;
        {
            // Wake the blocking accept(); close the acceptor only after its thread returned.
            boost::asio::io_context c;
            boost::asio::ip::tcp::socket s(c);
            s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
        }
        thread_.join();
        acceptor_.close(ec);
    }
    unsigned short port() const { return port_; }
    std::vector<Mail> mails() {
        std::lock_guard lk(mu_);
        return mails_;
    }

private:
    static std::string between(const std::string& s, char open, char close) {
        auto a = s.find(open), b = s.rfind(close);
        return a == std::string::npos || b == std::string::npos || b < a ? s : s.substr(a + 1, b - a - 1);
    }

    void run() {
        while (!stopping_) {
            boost::asio::ip::tcp::socket sock(ioc_);
            boost::system::error_code ec;
            acceptor_.accept(sock, ec);
            if (ec || stopping_) return;
            serve(sock);
        }
    }

    void serve(boost::asio::ip::tcp::socket& sock) {
        namespace asio = boost::asio;
        boost::system::error_code ec;
        auto say = [&](const std::string& line) { asio::write(sock, asio::buffer(line + "\r\n"), ec); };
        say("220 test-smtp ESMTP ready");
        asio::streambuf buf;
        Mail m;
        bool in_data = false;
        while (!ec) {
            asio::read_until(sock, buf, "\r\n", ec);
            if (ec) return;
            std::istream is(&buf);
            std::string line;
            std::getline(is, line);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (in_data) {
                if (line == ".") {
                    in_data = false;
                    {
                        std::lock_guard lk(mu_);
                        mails_.push_back(m);
                    }
                    m = Mail{};
                    say("250 OK queued");
                } else {
                    if (!line.empty() && line[0] == '.') line.erase(0, 1);
                    m.data += line + "\r\n";
                }
                continue;
            }
            std::string verb = line.substr(0, 4);
            for (auto& c : verb) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            if (verb == "EHLO" || verb == "HELO") {
                say("250 test-smtp");
            } else if (verb == "MAIL") {
                m.from = between(line, '<', '>');
                say("250 OK");
            } else if (verb == "RCPT") {
                m.rcpt.push_back(between(line, '<', '>'));
                say("250 OK");
            } else if (verb == "DATA") {
                in_data = true;
                say("354 End data with <CR><LF>.<CR><LF>");
            } else if (verb == "QUIT") {
                say("221 bye");
                return;
            } else if (verb == "RSET" || verb == "NOOP") {
                say("250 OK");
            } else {
                say("502 not implemented");
            }
        }
    }

    boost::asio::io_context ioc_;
    boost::asio::ip::tcp::acceptor acceptor_{ioc_};
    unsigned short port_ = 0;
    std::atomic<bool> stopping_{false};
    std::mutex mu_;
    std::vector<Mail> mails_;
    std::thread thread_;
};

}  // namespace

// ------------------------------------------------------------------------------ SQL API

TEST(AppSql, RollbackLeavesNothingCommitIsVisible) {
    TestDatabase db("apps_commit");
    seed_app(db, "http://app.example/hook");
    db.sql("BEGIN");
    ASSERT_TRUE(send(db, "issue.created", R"({"issue":{"id":"1"}})"));
    db.sql("ROLLBACK");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "0");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_outbox_meta"), "0");

    outboxd::db::Connection other(db.url(), "other");
    db.sql("BEGIN");
    auto id = send(db, "issue.created", R"({"issue":{"id":"2"}})");
    ASSERT_TRUE(id);
    EXPECT_EQ(other.exec("SELECT count(*) FROM control_outbox").text(0, 0), "0") << "invisible before commit";
    db.sql("COMMIT");
    EXPECT_EQ(other.exec("SELECT count(*) FROM control_outbox WHERE id = $1", Params(*id)).text(0, 0), "1");
    EXPECT_EQ(other.exec("SELECT event FROM sentry_app_outbox_meta WHERE outbox_id = $1", Params(*id)).text(0, 0),
              "issue.created");
}

TEST(AppSql, RowCarriesTheSignedEnvelope) {
    TestDatabase db("apps_envelope");
    seed_app(db, "https://app.example/hook?x=1");
    const std::string data = R"({"issue": {"id": "7", "title": "naïve 🚀 \"quoted\""}})";
    auto id = send(db, "issue.created", data);
    ASSERT_TRUE(id);
    auto row = outbox_row(db, *id);
    EXPECT_EQ(row.category, "app_webhook");
    EXPECT_EQ(row.mailbox, "app:10");
    EXPECT_FALSE(row.region) << "app rows have no region";
    EXPECT_EQ(row.target_url, "https://app.example/hook?x=1");
    EXPECT_EQ(row.headers["Content-Type"], "application/json");
    EXPECT_EQ(row.headers["Sentry-Hook-Resource"], "issue");
    EXPECT_EQ(row.headers["Request-ID"].size(), 36u) << row.headers["Request-ID"];
    // Independent check: the C++ HMAC over the exact stored bytes.
    EXPECT_EQ(row.headers["Sentry-Hook-Signature"], outboxd::ingress::hmac_sha256_hex(kSecret, row.body));
    EXPECT_EQ(row.headers.count("Sentry-Hook-Timestamp"), 0u) << "added at send time by the drainer";

    auto env = boost::json::parse(row.body).as_object();
    EXPECT_EQ(env.at("action").as_string(), "created");
    EXPECT_EQ(env.at("installation").at("uuid").as_string(), "inst-uuid-1");
    EXPECT_EQ(env.at("data").at("issue").at("title").as_string(), "naïve 🚀 \"quoted\"");
    EXPECT_EQ(env.at("actor").at("type").as_string(), "application");
    EXPECT_EQ(env.at("actor").at("id").as_string(), "sentry");
    EXPECT_EQ(env.at("actor").at("name").as_string(), "Sentry");
    EXPECT_EQ(row.body.rfind(R"({"action":"created","installation":)", 0), 0u) << "Sentry's key order: " << row.body;

    // Request-ID is fixed per row: two rows, two ids.
    auto id2 = send(db, "issue.created", data);
    ASSERT_TRUE(id2);
    EXPECT_NE(outbox_row(db, *id2).headers["Request-ID"], row.headers["Request-ID"]);
}

TEST(AppSql, FiltersDropSilently) {
    TestDatabase db("apps_filters");
    seed_app(db, "http://app.example/hook", "{issue.created,error.created}");
    const std::string issue = R"({"issue":{"id":"1"}})";
    ASSERT_TRUE(send(db, "issue.created", issue)) << "baseline passes";
    db.sql("DELETE FROM control_outbox");

    EXPECT_FALSE(send(db, "comment.created", "{}")) << "event not in the hook";

    db.sql("UPDATE sentry_app_installation SET status = 'pending'");
    EXPECT_FALSE(send(db, "issue.created", issue)) << "installation not installed";
    db.sql("UPDATE sentry_app_installation SET status = 'installed'");

    db.sql("UPDATE sentry_app SET status = 'disabled'");
    EXPECT_FALSE(send(db, "issue.created", issue)) << "app disabled";
    db.sql("UPDATE sentry_app SET status = 'published'");
    EXPECT_TRUE(send(db, "issue.created", issue)) << "published apps get webhooks too";
    db.sql("DELETE FROM control_outbox");

    db.sql("UPDATE sentry_app SET webhook_url = NULL");
    EXPECT_FALSE(send(db, "issue.created", issue)) << "no webhook_url";
    db.sql("UPDATE sentry_app SET webhook_url = 'http://app.example/hook'");

    db.sql("UPDATE service_hook SET installation_id = 11");
    EXPECT_FALSE(send(db, "issue.created", issue)) << "no service hook for the installation";
    db.sql("UPDATE service_hook SET installation_id = 10");

    // Project restriction: only events of projects 42 and 43.
    db.sql("INSERT INTO service_hook_project(service_hook_id, project_id) VALUES (100, 42), (100, 43)");
    EXPECT_TRUE(send(db, "issue.created", R"({"issue":{"id":"1","project":{"id":"42","slug":"web"}}})"));
    EXPECT_TRUE(send(db, "issue.created", R"({"issue":{"id":"1","project":{"id":43}}})"));
    EXPECT_FALSE(send(db, "issue.created", R"({"issue":{"id":"1","project":{"id":"44"}}})")) << "other project";
    EXPECT_FALSE(send(db, "issue.created", issue)) << "no project in the data";
    EXPECT_TRUE(send(db, "error.created", R"({"error":{"event_id":"e","project":42}})"));
    EXPECT_FALSE(send(db, "error.created", R"({"error":{"event_id":"e","project":7}})"));
    EXPECT_TRUE(send(db, "issue.created", R"({"project_id":"43"})"));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "4");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_outbox_meta m JOIN control_outbox c ON c.id = m.outbox_id"), "4");
}

TEST(AppSql, UnknownEventOrTypeIsAnErrorAnUnknownInstallationIsDroppedWithAWarning) {
    TestDatabase db("apps_errors");
    seed_app(db, "http://app.example/hook");
    auto e = sql_error(db, "SELECT send_resource_change_webhook(10, 'issue.exploded', '{}')");
    EXPECT_NE(e.find("unknown Sentry-App webhook event 'issue.exploded'"), std::string::npos) << e;
    e = sql_error(db, "SELECT workflow_notification(10, 1, 'exploded', NULL, '{}')");
    EXPECT_NE(e.find("unknown workflow notification type 'exploded'"), std::string::npos) << e;
    e = sql_error(db, "SELECT send_resource_change_webhook(NULL, 'issue.created', '{}')");
    EXPECT_NE(e.find("installation id is NULL"), std::string::npos) << e;

    // An installation deleted while the producer's transaction ran must not abort it (Sentry's
    // task drops such a webhook too), but the drop is said, in case the id was simply wrong.
    std::vector<std::string> notices;
    PQsetNoticeReceiver(
        db.conn().native(),
        [](void* out, const PGresult* r) {
            static_cast<std::vector<std::string>*>(out)->push_back(PQresultErrorMessage(r));
        },
        &notices);
    db.sql("BEGIN");
    db.sql("CREATE TABLE product_write(n int)");
    EXPECT_FALSE(send(db, "issue.created", "{}", 99));
    EXPECT_EQ(db.sql("SELECT workflow_notification(99, 1, 'resolved', NULL, '{}')").is_null(0, 0), true);
    db.sql("INSERT INTO product_write VALUES (1)");
    db.sql("COMMIT");
    PQsetNoticeReceiver(db.conn().native(), [](void*, const PGresult*) {}, nullptr);
    EXPECT_EQ(db.scalar("SELECT count(*) FROM product_write"), "1") << "the producer's transaction committed";
    ASSERT_EQ(notices.size(), 2u);
    EXPECT_NE(notices[0].find("WARNING:  no Sentry-App installation 99: webhook issue.created not enqueued"),
              std::string::npos)
        << notices[0];
    EXPECT_NE(notices[1].find("webhook issue.resolved not enqueued"), std::string::npos) << notices[1];
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "0");
}

// A producer that enqueues for several installations takes their mailbox locks up front, in
// one order, instead of one by one in its own order (which can deadlock against another).
TEST(AppSql, LockInstallationsTakesEveryMailboxLockAtOnce) {
    TestDatabase db("apps_lock_installations");
    seed_app(db, "http://app.example/hook");
    outboxd::db::Connection other(db.url(), "other-producer");
    db.sql("BEGIN");
    db.sql("SELECT outboxd_app_lock_installations(ARRAY[10, 7, NULL, 10])");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7401 AND pid = pg_backend_pid() "
                        "AND objid IN ((hashtext('app:10'))::oid, (hashtext('app:7'))::oid)"),
              "2");
    other.exec("SET lock_timeout = '200ms'");
    try {
        other.exec("SELECT send_resource_change_webhook(10, 'issue.created', '{}')");
        ADD_FAILURE() << "another producer enqueued for installation 10 while its mailbox was locked";
    } catch (const outboxd::db::Error& e) {
        EXPECT_EQ(e.sqlstate(), "55P03") << e.what();
    }
    ASSERT_TRUE(send(db, "issue.created", "{}")) << "the holder enqueues as usual";
    db.sql("COMMIT");
    EXPECT_EQ(other.exec("SELECT send_resource_change_webhook(10, 'issue.created', '{}') IS NOT NULL").boolean(0, 0), true);
}

// The functions carry their own search_path: a caller whose path lacks their schema, or a
// pgcrypto installed in another schema, does not break them.
TEST(AppSql, ProducersDoNotDependOnTheCallersSearchPath) {
    TestDatabase db("apps_search_path");
    seed_app(db, "http://app.example/hook");
    db.sql("SET search_path = pg_catalog");
    auto r = db.sql("SELECT public.send_resource_change_webhook(10, 'issue.created', '{}')");
    EXPECT_FALSE(r.is_null(0, 0));
    db.sql("RESET search_path");

    TestDatabase elsewhere("apps_pgcrypto_elsewhere", TestDatabase::Schema::empty);
    elsewhere.sql("CREATE SCHEMA extensions");
    elsewhere.sql("CREATE EXTENSION pgcrypto SCHEMA extensions");
    outboxd::db::migrate(elsewhere.conn());
    seed_app(elsewhere, "http://app.example/hook");
    EXPECT_TRUE(send(elsewhere, "issue.created", R"({"n":1})"));
    EXPECT_EQ(elsewhere.scalar("SELECT request_headers::text LIKE '%Sentry-Hook-Signature%' FROM control_outbox"), "t");
}

TEST(AppSql, WorkflowNotificationActor) {
    TestDatabase db("apps_workflow");
    seed_app(db, "http://app.example/hook");
    db.sql("INSERT INTO auth_user(id, name, email) VALUES (7, 'Ada Lovelace', 'ada@example.com')");
    auto wf = [&](const char* type, std::optional<std::int64_t> user, const std::string& data) {
        Params p;
        p.add(std::int64_t{10}).add(std::int64_t{2}).add(type).add(user).add(data);
        auto r = db.sql("SELECT workflow_notification($1, $2, $3, $4, $5::jsonb)", p);
        EXPECT_FALSE(r.is_null(0, 0));
        auto row = outbox_row(db, r.int64(0, 0));
        EXPECT_EQ(row.headers["Sentry-Hook-Resource"], "issue");
        EXPECT_EQ(row.headers["Sentry-Hook-Signature"], outboxd::ingress::hmac_sha256_hex(kSecret, row.body));
        return boost::json::parse(row.body).as_object();
    };
    auto env = wf("resolved", 7, R"({"issue":{"id":"2","title":"t"}})");
    EXPECT_EQ(env.at("action").as_string(), "resolved");
    EXPECT_EQ(env.at("actor").at("type").as_string(), "user");
    EXPECT_EQ(env.at("actor").at("id").as_int64(), 7);
    EXPECT_EQ(env.at("actor").at("name").as_string(), "Ada Lovelace");
    EXPECT_EQ(env.at("data").at("issue").at("title").as_string(), "t") << "data as given";

    env = wf("assigned", 8, "{}");
    EXPECT_EQ(env.at("actor").at("type").as_string(), "user");
    EXPECT_EQ(env.at("actor").at("id").as_int64(), 8);
    EXPECT_EQ(env.at("actor").at("name").as_string(), "") << "no such user";
    EXPECT_EQ(env.at("data").at("issue").at("id").as_string(), "2") << "issue added from issue_id";

    env = wf("ignored", std::nullopt, R"({"issue":{"id":"2"}})");
    EXPECT_EQ(env.at("actor").at("type").as_string(), "application");
    EXPECT_EQ(env.at("actor").at("id").as_string(), "sentry");
    EXPECT_EQ(env.at("actor").at("name").as_string(), "Sentry");

    // issue.unresolved is not in the hook: filtered like any other event.
    auto r = db.sql("SELECT workflow_notification(10, 2, 'unresolved', 7, '{}')");
    EXPECT_TRUE(r.is_null(0, 0));
}

// ------------------------------------------------------------------------------ request log, counters

TEST(AppLog, RequestAndErrorLogsKeepTheNewest100PerEvent) {
    TestDatabase db("apps_log_trim");
    seed_app(db, "http://app.example/hook", "{issue.created,issue.assigned}");
    auto created = send_many(db, "issue.created", 250);
    auto assigned = send_many(db, "issue.assigned", 5);
    ASSERT_EQ(created.size(), 250u);
    std::vector<std::int64_t> ok(created.begin(), created.begin() + 130), bad(created.begin() + 130, created.end());
    const std::string day = "2030-01-15";
    auto record = [&](const std::string& json) {
        db.sql("SELECT count(*) FROM outboxd_app_record_outcomes($1::jsonb, 1000, 'outboxd@localhost', $2::date)",
               Params(json, day));
    };
    record(outcomes(ok, "delivered", 200, "", "thanks"));
    record(outcomes(assigned, "delivered", 204));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_request WHERE event = 'issue.created'"), "100");
    EXPECT_EQ(db.scalar("SELECT min(outbox_id) FROM sentry_app_webhook_request WHERE event = 'issue.created'"),
              std::to_string(ok[30])) << "the newest 100 are kept";
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_error"), "0");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_outbox_meta WHERE outbox_id = ANY('{" +
                        std::to_string(ok[0]) + "," + std::to_string(ok[129]) + "}')"),
              "0") << "delivered rows' metadata is removed";

    std::string big(2000, 'x');
    record(outcomes(bad, "retry", 500, "{\"action\":\"created\"" + big, "server error " + big));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_request WHERE event = 'issue.created'"), "100");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_request WHERE event = 'issue.created' AND status = 500"),
              "100");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_request WHERE event = 'issue.assigned'"), "5")
        << "trimming is per event";
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_error"), "100");
    EXPECT_EQ(db.scalar("SELECT min(outbox_id) FROM sentry_app_webhook_error"), std::to_string(bad[20]));
    auto r = db.sql("SELECT url, status, organization_id, event, outcome, error, request_body, response_body, "
                    "date > now() - interval '1 minute' FROM sentry_app_webhook_error ORDER BY id DESC LIMIT 1");
    EXPECT_EQ(r.text(0, 0), "http://app.example/hook");
    EXPECT_EQ(r.text(0, 1), "500");
    EXPECT_EQ(r.text(0, 2), "501");
    EXPECT_EQ(r.text(0, 3), "issue.created");
    EXPECT_EQ(r.text(0, 4), "retry");
    EXPECT_EQ(r.text(0, 5), "HTTP 500");
    EXPECT_EQ(r.text(0, 6).substr(0, 19), "{\"action\":\"created\"");
    EXPECT_EQ(r.text(0, 7).substr(0, 12), "server error");
    EXPECT_TRUE(r.boolean(0, 8));

    r = db.sql("SELECT success_count, error_count, timeout_count FROM sentry_app_health_day "
               "WHERE sentry_app_id = 1 AND organization_id = 501 AND day = '2030-01-15'");
    ASSERT_EQ(r.rows(), 1);
    EXPECT_EQ(r.text(0, 0), "135");
    EXPECT_EQ(r.text(0, 1), "120");
    EXPECT_EQ(r.text(0, 2), "0");

    // Errors are kept per event too: a rare event's failures are not pushed out by a noisy one's,
    // nor do they push the noisy one's out.
    auto rare = send_many(db, "issue.assigned", 3);
    record(outcomes(rare, "dead", 404));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_error WHERE event = 'issue.assigned'"), "3");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_error WHERE event = 'issue.created'"), "100");
    record(outcomes(std::vector<std::int64_t>(bad.begin(), bad.begin() + 50), "retry", 503));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_error WHERE event = 'issue.assigned'"), "3")
        << "a noisy event's new errors leave the rare event's alone";
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_error WHERE event = 'issue.created' AND status = 503"),
              "50");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_error WHERE event = 'issue.created'"), "100");
}

TEST(AppLog, HealthCountersClassifyOutcomes) {
    TestDatabase db("apps_counters");
    seed_app(db, "http://app.example/hook");
    auto ids = send_many(db, "issue.created", 9);
    boost::json::array a;
    auto add = [&](std::int64_t id, const char* kind, int status) {
        a.push_back(boost::json::object{{"id", id}, {"mailbox", "app:10"}, {"kind", kind}, {"status", status},
                                        {"url", "http://app.example/hook"}, {"error", "x"},
                                        {"request_head", ""}, {"response_head", ""}});
    };
    add(ids[0], "delivered", 200);
    add(ids[1], "delivered", 202);
    add(ids[2], "dead", 404);     // error
    add(ids[3], "retry", 500);    // error
    add(ids[4], "retry", 429);    // neither
    add(ids[5], "retry", 302);    // neither
    add(ids[6], "retry", 0);      // timeout
    add(ids[7], "dead", 0);       // refused destination: counted with timeouts
    add(ids[8], "retry", 408);    // error (a 4xx other than 429)
    db.sql("SELECT count(*) FROM outboxd_app_record_outcomes($1::jsonb, 1000, 'x@y', '2030-01-15')",
           Params(boost::json::serialize(a)));
    auto r = db.sql("SELECT success_count, error_count, timeout_count FROM sentry_app_health_day WHERE day = '2030-01-15'");
    ASSERT_EQ(r.rows(), 1);
    EXPECT_EQ(r.text(0, 0), "2");
    EXPECT_EQ(r.text(0, 1), "3");
    EXPECT_EQ(r.text(0, 2), "2");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_request"), "9");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_webhook_error"), "7") << "every non-2xx attempt";
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_outbox_meta"), "7") << "kept for retries and replays";
    // Counters older than 30 days are pruned when the app is next written.
    db.sql("INSERT INTO sentry_app_health_day VALUES (1, 501, '2029-12-01', 1, 0, 0)");
    db.sql("SELECT count(*) FROM outboxd_app_record_outcomes($1::jsonb, 1000, 'x@y', '2030-01-15')",
           Params(outcomes({ids[2]}, "dead", 404)));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_health_day WHERE day < '2030-01-01'"), "0");
    // The discarded dead rows' metadata is pruned.
    db.sql("DELETE FROM control_outbox");
    db.sql("UPDATE sentry_app_outbox_meta SET created_at = now() - interval '2 hours'");
    EXPECT_EQ(db.scalar("SELECT outboxd_app_prune_meta()"), "7");
}

// ------------------------------------------------------------------------------ broken rule

TEST(AppHealth, BrokenRuleWithInjectedDate) {
    TestDatabase db("apps_broken_rule");
    seed_app(db, "http://app.example/hook");
    // Each case runs in a transaction that is rolled back, so the seed stays.
    auto broken = [&](const std::string& seed, int threshold = 1000, const std::string& today = "2030-01-15") {
        db.sql("BEGIN");
        db.sql(seed);
        bool b = db.sql("SELECT outboxd_app_check_broken(1, $1::date, $2)", Params(today, threshold)).boolean(0, 0);
        db.sql("ROLLBACK");
        return b;
    };
    const std::string days = "INSERT INTO sentry_app_health_day(sentry_app_id, organization_id, day, success_count, "
                             "error_count, timeout_count) ";
    EXPECT_FALSE(broken(days + "SELECT 1, 501, '2030-01-15'::date - g, 0, 3, 0 FROM generate_series(0, 5) g"))
        << "six bad days are not enough";
    EXPECT_TRUE(broken(days + "SELECT 1, 501, '2030-01-15'::date - g, 0, 3, 0 FROM generate_series(0, 6) g"))
        << "errors and no success on each of the last 7 days";
    EXPECT_FALSE(broken(days + "SELECT 1, 501, '2030-01-15'::date - g, (g = 3)::int, 3, 0 FROM generate_series(0, 6) g"))
        << "one success in the window";
    EXPECT_FALSE(broken(days + "SELECT 1, 501, '2030-01-15'::date - g, 0, 3, 0 FROM generate_series(1, 7) g"))
        << "the window ends today: seven days up to yesterday miss today";
    EXPECT_TRUE(broken(days + "SELECT 1, 501, '2030-01-15'::date - g, 0, 3, 0 FROM generate_series(1, 7) g", 1000,
                       "2030-01-14"))
        << "the same counters seen a day earlier";
    EXPECT_FALSE(broken(days + "SELECT 1, 501 + (g % 2), '2030-01-15'::date - g, 0, 3, 0 FROM generate_series(0, 6) g"))
        << "days of two organizations do not add up";
    EXPECT_FALSE(broken(days + "SELECT 1, 501, '2030-01-15'::date - g, 0, 0, 5 FROM generate_series(0, 6) g"))
        << "timeouts are not errors for the 7-day rule";
    EXPECT_TRUE(broken(days + "VALUES (1, 501, '2030-01-12'::date, 4, 0, 10)", 10)) << "one day at the timeout threshold";
    EXPECT_FALSE(broken(days + "VALUES (1, 501, '2030-01-12'::date, 4, 0, 9)", 10)) << "one below";
    EXPECT_FALSE(broken(days + "VALUES (1, 501, '2030-01-08'::date, 4, 0, 10)", 10)) << "outside the window";
    EXPECT_FALSE(broken("UPDATE sentry_app SET status = 'published'; " + days +
                        "SELECT 1, 501, '2030-01-15'::date - g, 0, 3, 0 FROM generate_series(0, 6) g"))
        << "only internal apps are disabled";
    EXPECT_EQ(db.scalar("SELECT status FROM sentry_app WHERE id = 1"), "internal");
}

TEST(AppHealth, DisableIsOneTransaction) {
    TestDatabase db("apps_disable");
    seed_app(db, "http://app.example/hook");
    db.sql("INSERT INTO sentry_app_installation(id, uuid, sentry_app_id, organization_id, status) VALUES "
           "(11, 'inst-uuid-2', 1, 502, 'installed'), (12, 'inst-uuid-3', 1, 503, 'pending')");
    db.sql("INSERT INTO organization_mapping(organization_id, slug, region_name) VALUES (502, 'globex', 'us')");
    db.sql("INSERT INTO organization_member(organization_id, email, role) VALUES "
           "(501, 'alice@acme.example', 'owner'), (501, 'ALICE@acme.example', 'owner'), (501, 'bob@acme.example', 'member'), "
           "(502, 'carol@globex.example', 'owner'), (503, 'dave@initech.example', 'owner')");
    db.sql("INSERT INTO sentry_app_health_day SELECT 1, 501, '2030-01-15'::date - g, 0, 2, 1 FROM generate_series(0, 6) g");
    db.sql("INSERT INTO sentry_app_health_day VALUES (1, 502, '2030-01-15', 5, 0, 0)");

    // Rolled back, everything is undone together.
    db.sql("BEGIN");
    EXPECT_TRUE(db.sql("SELECT outboxd_app_check_broken(1, '2030-01-15', 1000)").boolean(0, 0));
    EXPECT_EQ(db.scalar("SELECT status FROM sentry_app"), "disabled");
    db.sql("ROLLBACK");
    EXPECT_EQ(db.scalar("SELECT status FROM sentry_app"), "internal");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM audit_log_entry"), "0");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_health_day"), "8");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "0");

    ASSERT_TRUE(send(db, "issue.created", "{}")) << "a webhook queued before the app is disabled";
    EXPECT_TRUE(db.sql("SELECT outboxd_app_check_broken(1, '2030-01-15', 1000, 'Ops <ops@example.com>')").boolean(0, 0));
    EXPECT_EQ(db.scalar("SELECT status FROM sentry_app"), "disabled");
    EXPECT_EQ(db.scalar("SELECT category || ':' || reason FROM control_outbox_dead"), "app_webhook:app_disabled")
        << "queued webhooks of the disabled app are kept as dead letters, not sent";
    EXPECT_EQ(db.scalar("SELECT string_agg(organization_id || ':' || event || ':' || target_object || ':' || (data->>'name'), "
                        "',' ORDER BY organization_id) FROM audit_log_entry"),
              "501:INTERNAL_INTEGRATION_DISABLED:1:Kanban,502:INTERNAL_INTEGRATION_DISABLED:1:Kanban")
        << "one audit row per organization the app is installed in";
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_health_day"), "0") << "counters cleared";
    EXPECT_EQ(db.scalar("SELECT string_agg(target_url, ',' ORDER BY target_url) FROM control_outbox"),
              "alice@acme.example,carol@globex.example")
        << "one email per owner (case-insensitively), members and pending installations left out";
    auto r = db.sql("SELECT category, mailbox_name, region_name IS NULL, convert_from(request_body, 'UTF8') "
                    "FROM control_outbox WHERE target_url = 'alice@acme.example'");
    ASSERT_EQ(r.rows(), 1);
    EXPECT_EQ(r.text(0, 0), "email");
    EXPECT_EQ(r.text(0, 1), "email:app:1");
    EXPECT_TRUE(r.boolean(0, 2));
    std::string msg = r.text(0, 3);
    for (const char* want : {"From: Ops <ops@example.com>\r\n", "To: alice@acme.example\r\n",
                             "Subject: Integration disabled: Kanban\r\n", "Date: ", "Content-Type: text/plain; charset=utf-8\r\n",
                             "\r\n\r\n", "Kanban", "http://app.example/hook", "/settings/acme/developer-settings/kanban/"})
        EXPECT_NE(msg.find(want), std::string::npos) << want << " in\n" << msg;
    EXPECT_EQ(msg.find("\n", 0) - 1, msg.find("\r\n", 0)) << "CRLF line ends";

    EXPECT_FALSE(db.sql("SELECT outboxd_app_check_broken(1, '2030-01-15', 1000)").boolean(0, 0)) << "already disabled";
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "2");
    EXPECT_FALSE(send(db, "issue.created", "{}")) << "a disabled app gets no webhooks";
}

TEST(AppHealth, RecordingAFailureDisablesABrokenApp) {
    TestDatabase db("apps_record_disables");
    seed_app(db, "http://app.example/hook");
    db.sql("INSERT INTO organization_member(organization_id, email, role) VALUES (501, 'alice@acme.example', 'owner')");
    db.sql("INSERT INTO sentry_app_health_day SELECT 1, 501, '2030-01-15'::date - g, 0, 2, 0 FROM generate_series(1, 6) g");
    auto ids = send_many(db, "issue.created", 2);
    db.sql("DELETE FROM control_outbox");
    auto r = db.sql("SELECT * FROM outboxd_app_record_outcomes($1::jsonb, 1000, 'x@y', '2030-01-15')",
                    Params(outcomes({ids[0]}, "delivered", 200)));
    EXPECT_EQ(r.rows(), 0) << "today had a success";
    db.sql("UPDATE sentry_app_health_day SET success_count = 0");
    r = db.sql("SELECT * FROM outboxd_app_record_outcomes($1::jsonb, 1000, 'x@y', '2030-01-15')",
               Params(outcomes({ids[1]}, "dead", 410)));
    ASSERT_EQ(r.rows(), 1);
    EXPECT_EQ(r.text(0, 0), "1");
    EXPECT_EQ(db.scalar("SELECT status FROM sentry_app"), "disabled");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox WHERE category = 'email'"), "1");
}

// A product transaction holding the app's row (editing the app) must not stall the completer,
// whose transaction runs the check: the check skips the locked row and disables the app on a
// later outcome.
TEST(AppHealth, ALockedAppIsCheckedAgainNotWaitedFor) {
    TestDatabase db("apps_locked_app");
    seed_app(db, "http://app.example/hook");
    db.sql("INSERT INTO sentry_app_health_day SELECT 1, 501, '2030-01-15'::date - g, 0, 2, 0 FROM generate_series(0, 6) g");
    outboxd::db::Connection product(db.url(), "product");
    product.exec("BEGIN");
    product.exec("SELECT * FROM sentry_app WHERE id = 1 FOR UPDATE");
    db.sql("SET statement_timeout = '2s'");
    EXPECT_FALSE(db.sql("SELECT outboxd_app_check_broken(1, '2030-01-15', 1000)").boolean(0, 0))
        << "skipped while the product holds the row";
    product.exec("COMMIT");
    EXPECT_TRUE(db.sql("SELECT outboxd_app_check_broken(1, '2030-01-15', 1000)").boolean(0, 0)) << "the next check";
    EXPECT_EQ(db.scalar("SELECT status FROM sentry_app"), "disabled");
}

// ------------------------------------------------------------------------------ with the daemon

TEST(AppDaemon, DeliversSignedWebhooksAndLogsThem) {
    TestDatabase db("apps_daemon_deliver");
    std::atomic<int> calls{0};
    Receiver app([&](const ReceivedRequest&) { return calls++ == 0 ? 500 : 200; });
    seed_app(db, app.url() + "/webhook");
    Daemon d(config_for(db, "[apps]\nallow_private_urls = true\nrequest_timeout = \"2s\"\n"), "apps");
    ASSERT_TRUE(d.start()) << d.log();

    db.sql("BEGIN");
    send(db, "issue.created", R"({"issue":{"id":"1","title":"rolled back"}})");
    db.sql("ROLLBACK");
    auto id = send(db, "issue.created", R"({"issue":{"id":"2","title":"committed ü"}})");
    ASSERT_TRUE(id);
    ASSERT_TRUE(wait_until([&] { return app.ok().size() >= 1; }, 10s)) << d.log();
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM sentry_app_webhook_request") == "2"; }, 5s))
        << d.log();
    std::this_thread::sleep_for(300ms);
    auto reqs = app.requests();
    ASSERT_EQ(reqs.size(), 2u) << "one 500, one retry";
    auto now = std::time(nullptr);
    for (auto& req : reqs) {
        EXPECT_EQ(req.method, "POST");
        EXPECT_EQ(req.target, "/webhook");
        EXPECT_EQ(req.headers["content-type"], "application/json");
        EXPECT_EQ(req.headers["sentry-hook-resource"], "issue");
        EXPECT_EQ(req.headers["sentry-hook-signature"], outboxd::ingress::hmac_sha256_hex(kSecret, req.body));
        auto ts = std::stoll(req.headers["sentry-hook-timestamp"]);
        EXPECT_LE(std::llabs(ts - now), 60);
        auto env = boost::json::parse(req.body).as_object();
        EXPECT_EQ(env.at("data").at("issue").at("title").as_string(), "committed ü");
        EXPECT_EQ(env.at("installation").at("uuid").as_string(), "inst-uuid-1");
    }
    EXPECT_EQ(reqs[0].headers["request-id"], reqs[1].headers["request-id"]) << "Request-ID is stable across retries";

    EXPECT_EQ(db.scalar("SELECT string_agg(status || ':' || outcome || ':' || event || ':' || organization_id, ',' ORDER BY id) "
                        "FROM sentry_app_webhook_request"),
              "500:retry:issue.created:501,200:delivered:issue.created:501");
    EXPECT_EQ(db.scalar("SELECT url FROM sentry_app_webhook_request LIMIT 1"), app.url() + "/webhook");
    auto r = db.sql("SELECT status, request_body, response_body FROM sentry_app_webhook_error");
    ASSERT_EQ(r.rows(), 1);
    EXPECT_EQ(r.text(0, 0), "500");
    EXPECT_EQ(r.text(0, 1), reqs[0].body) << "the request head (body under 1 KiB)";
    EXPECT_EQ(r.text(0, 2), "ok");
    EXPECT_EQ(db.scalar("SELECT success_count || '/' || error_count || '/' || timeout_count FROM sentry_app_health_day"),
              "1/1/0");
    EXPECT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 5s));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_outbox_meta"), "0");
    EXPECT_EQ(d.terminate(), 0);
}

// Sentry reads the app when it sends, not when it enqueues: a webhook that waited (here in a
// paused mailbox) goes to the app's current URL, signed with its current secret, and is not sent
// at all once the app is disabled.
TEST(AppDaemon, QueuedWebhooksFollowTheAppAsItIsWhenSent) {
    TestDatabase db("apps_send_time");
    Receiver old_endpoint, new_endpoint;
    seed_app(db, old_endpoint.url() + "/webhook");
    Daemon d(config_for(db, "[apps]\nallow_private_urls = true\n"), "apps-send-time");
    ASSERT_TRUE(d.start()) << d.log();
    db.sql("INSERT INTO outbox_pause (kind, name) VALUES ('mailbox', 'app:10')");
    std::this_thread::sleep_for(1500ms);  // every daemon honours a pause within a second
    ASSERT_TRUE(send(db, "issue.created", R"({"issue":{"id":"1"}})"));
    db.sql("UPDATE sentry_app SET webhook_url = $1, client_secret = 'rotated' WHERE id = 1",
           Params(new_endpoint.url() + "/moved"));
    db.sql("DELETE FROM outbox_pause");
    ASSERT_TRUE(wait_until([&] { return new_endpoint.ok().size() == 1; }, 10s)) << d.log();
    auto req = new_endpoint.ok()[0];
    EXPECT_EQ(req.target, "/moved");
    EXPECT_EQ(req.headers["sentry-hook-signature"], outboxd::ingress::hmac_sha256_hex("rotated", req.body));
    EXPECT_EQ(old_endpoint.requests().size(), 0u);

    db.sql("INSERT INTO outbox_pause (kind, name) VALUES ('mailbox', 'app:10')");
    std::this_thread::sleep_for(1500ms);
    ASSERT_TRUE(send(db, "issue.created", R"({"issue":{"id":"2"}})"));
    db.sql("UPDATE sentry_app SET status = 'disabled' WHERE id = 1");
    db.sql("DELETE FROM outbox_pause");
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox_dead") == "1"; }, 10s)) << d.log();
    EXPECT_EQ(db.scalar("SELECT reason FROM control_outbox_dead"), "app_disabled");
    EXPECT_EQ(new_endpoint.requests().size(), 1u) << "nothing sent to a disabled app";
    EXPECT_EQ(d.terminate(), 0);
}

TEST(AppDaemon, BrokenAppIsDisabledAndOwnersEmailedOverSmtp) {
    TestDatabase db("apps_daemon_broken");
    SmtpListener smtp;
    Receiver app([](const ReceivedRequest&) { return 404; });
    seed_app(db, app.url() + "/webhook");
    db.sql("INSERT INTO organization_member(organization_id, email, role) VALUES "
           "(501, 'alice@acme.example', 'owner'), (501, 'bob@acme.example', 'member')");
    // Six failing days before today (UTC, the daemon's clock); today's failure makes seven.
    db.sql("INSERT INTO sentry_app_health_day SELECT 1, 501, (now() AT TIME ZONE 'UTC')::date - g, 0, 4, 0 "
           "FROM generate_series(1, 6) g");
    Daemon d(config_for(db, "[apps]\nallow_private_urls = true\n\n[smtp]\nurl = \"smtp://127.0.0.1:" +
                                std::to_string(smtp.port()) + "\"\nfrom = \"Outboxd <outboxd@example.com>\"\n"),
             "apps-broken");
    ASSERT_TRUE(d.start()) << d.log();

    ASSERT_TRUE(send(db, "issue.created", R"({"issue":{"id":"1"}})"));
    ASSERT_TRUE(wait_until([&] { return smtp.mails().size() >= 1; }, 15s)) << d.log();
    auto mail = smtp.mails().at(0);
    EXPECT_EQ(mail.from, "outboxd@example.com");
    ASSERT_EQ(mail.rcpt.size(), 1u);
    EXPECT_EQ(mail.rcpt[0], "alice@acme.example");
    for (const char* want : {"From: Outboxd <outboxd@example.com>", "To: alice@acme.example", "Subject: Integration disabled: Kanban",
                             "Kanban", "/webhook", "/settings/acme/developer-settings/kanban/"})
        EXPECT_NE(mail.data.find(want), std::string::npos) << want << " in\n" << mail.data;
    EXPECT_NE(mail.data.find(app.url() + "/webhook"), std::string::npos) << mail.data;

    EXPECT_EQ(db.scalar("SELECT status FROM sentry_app"), "disabled");
    EXPECT_EQ(db.scalar("SELECT event || ':' || organization_id || ':' || target_object FROM audit_log_entry"),
              "INTERNAL_INTEGRATION_DISABLED:501:1");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_health_day"), "0");
    EXPECT_EQ(db.scalar("SELECT reason FROM control_outbox_dead WHERE category = 'app_webhook'"), "permanent_status");
    EXPECT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 5s))
        << "the email row is delivered and removed";
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(smtp.mails().size(), 1u) << "only owners, once";
    EXPECT_FALSE(send(db, "issue.created", "{}")) << "disabled: no more webhooks";
    EXPECT_EQ(d.terminate(), 0);
}

TEST(AppDaemon, PrivateDestinationIsRefused) {
    TestDatabase db("apps_daemon_ssrf");
    Receiver app;
    seed_app(db, app.url() + "/webhook");
    Daemon d(config_for(db, "[apps]\nallow_private_urls = false\n"), "apps-ssrf");
    ASSERT_TRUE(d.start()) << d.log();
    auto id = send(db, "issue.created", R"({"issue":{"id":"1"}})");
    ASSERT_TRUE(id);
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox_dead") == "1"; }, 10s)) << d.log();
    EXPECT_EQ(db.scalar("SELECT reason || ':' || last_status || ':' || id FROM control_outbox_dead"),
              "refused_url:0:" + std::to_string(*id));
    EXPECT_TRUE(app.requests().empty()) << "nothing reached the loopback receiver";
    EXPECT_EQ(app.connections(), 0u);
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM sentry_app_webhook_error") == "1"; }, 5s));
    EXPECT_EQ(db.scalar("SELECT status || ':' || outcome FROM sentry_app_webhook_error"), "0:dead");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_outbox_meta"), "1") << "kept for a replay";
    EXPECT_EQ(d.terminate(), 0);
}

TEST(AppDaemon, TimeoutsReachingTheThresholdDisableTheApp) {
    TestDatabase db("apps_daemon_timeouts");
    Receiver app([](const ReceivedRequest&) {
        std::this_thread::sleep_for(600ms);  // beyond apps.request_timeout
        return 200;
    });
    seed_app(db, app.url() + "/webhook");
    db.sql("INSERT INTO organization_member(organization_id, email, role) VALUES (501, 'alice@acme.example', 'owner')");
    Daemon d(config_for(db, "[apps]\nallow_private_urls = true\nrequest_timeout = \"200ms\"\nbroken_timeout_threshold = 2\n"
                            "\n[smtp]\nurl = \"smtp://127.0.0.1:1\"\n"),
             "apps-timeouts");
    ASSERT_TRUE(d.start()) << d.log();
    ASSERT_TRUE(send(db, "issue.created", R"({"issue":{"id":"1"}})"));
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT status FROM sentry_app") == "disabled"; }, 15s)) << d.log();
    EXPECT_EQ(db.scalar("SELECT count(*) >= 2 FROM sentry_app_webhook_error WHERE status = 0 AND outcome = 'retry'"), "t")
        << "(rows already queued are still tried after the app is disabled)";
    EXPECT_EQ(db.scalar("SELECT data->>'reason' FROM audit_log_entry"), "at least 2 timeouts in one day");
    EXPECT_EQ(db.scalar("SELECT (SELECT count(*) FROM control_outbox WHERE category = 'email' AND target_url = 'alice@acme.example') + "
                        "(SELECT count(*) FROM control_outbox_dead WHERE category = 'email')"),
              "1") << "queued (the relay is down: retried, dead-lettered after max_attempts)";
    EXPECT_EQ(d.terminate(), 0);
}

TEST(AppDaemon, ALogFailureDoesNotHoldBackDeliveries) {
    TestDatabase db("apps_daemon_log_failure");
    Receiver app;
    seed_app(db, app.url() + "/webhook");
    // Every request-log write fails from now on.
    db.sql("ALTER TABLE sentry_app_webhook_request ADD CONSTRAINT refuse CHECK (false) NOT VALID");
    Daemon d(config_for(db, "[apps]\nallow_private_urls = true\n"), "apps-log-failure");
    ASSERT_TRUE(d.start()) << d.log();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(send(db, "issue.created", "{\"n\":" + std::to_string(i) + "}"));
    ASSERT_TRUE(wait_until([&] { return app.ok().size() == 3; }, 10s)) << d.log();
    EXPECT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 5s))
        << "delivered rows are removed although the log could not be written\n" << d.log();
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(app.requests().size(), 3u) << "no redelivery";
    EXPECT_EQ(db.scalar("SELECT count(*) FROM sentry_app_health_day"), "0") << "the whole app part was rolled back";
    EXPECT_NE(d.log().find("request log and health counters not written"), std::string::npos) << d.log();
    EXPECT_EQ(d.terminate(), 0);
}
