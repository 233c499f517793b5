// outboxctl as scripts run it: the real binary against a migrated database, checked on its exit
// codes, its JSON and the rows it leaves behind, since ops scripts depend on all three.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/json.hpp>
#include <fstream>
#include <regex>
#include <thread>

#include "outboxd/config/config.hpp"
#include "outboxd/drain/mailbox_claimer.hpp"
#include "support/harness.hpp"

using namespace testsupport;
namespace json = boost::json;
using outboxd::db::Params;

namespace {

std::string quote(const std::string& arg) {
    std::string out = "'";
    for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string temp_dir() {
    char dir[] = "/tmp/outboxctl-test-XXXXXX";
    return mkdtemp(dir);
}

// A database, a config naming it with regions us and eu, and the binary to run against them.
class Outboxctl : public ::testing::Test {
protected:
    void SetUp() override {
        std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        db_ = std::make_unique<TestDatabase>("ctl_" + name.substr(0, 40));
        config_ = write_config(db_->url());
    }

    TestDatabase& db() { return *db_; }

    static std::string write_config(const std::string& url) {
        std::string path = temp_dir() + "/outboxd.toml";
        std::ofstream(path) << "[database]\nurl = \"" << url << "\"\n\n"
                            << "[[region]]\nname = \"us\"\nurl = \"http://127.0.0.1:9\"\nsecret = \"us-secret\"\n\n"
                            << "[[region]]\nname = \"eu\"\nurl = \"http://127.0.0.1:9\"\nsecret = \"eu-secret\"\n";
        return path;
    }

    // Runs outboxctl with ARGS (no --config when `config` is empty); stdout and stderr together.
    // The caller's OUTBOXD_DATABASE_URL must not redirect the test to another database.
    static std::pair<int, std::string> run_with(const std::string& config, const std::vector<std::string>& args,
                                                const std::string& env = "") {
        std::string cmd = "env -u OUTBOXD_DATABASE_URL " + env + " " + quote(binary_dir() + "/outboxctl");
        if (!config.empty()) cmd += " --config " + quote(config);
        for (const auto& a : args) cmd += " " + quote(a);
        return run_command(cmd);
    }
    std::pair<int, std::string> ctl(const std::vector<std::string>& args) { return run_with(config_, args); }

    json::value ctl_json(const std::vector<std::string>& args) {
        auto [code, out] = ctl(args);
        EXPECT_EQ(code, 0) << out;
        boost::system::error_code ec;
        auto v = json::parse(out, ec);
        EXPECT_FALSE(ec) << "not one JSON document: " << out;
        return v;
    }

    // One undelivered row, `age` old; returns its id.
    std::int64_t add_row(const std::optional<std::string>& region, const std::string& mailbox,
                         const std::string& age = "0s", const std::string& body = "{}") {
        auto r = db().sql(
            "INSERT INTO control_outbox (region_name, mailbox_name, category, target_url, request_path, request_body, "
            "date_added) VALUES ($1, $2, CASE WHEN $1::text IS NULL THEN 'app_webhook' ELSE 'webhook_proxy' END, "
            "CASE WHEN $1::text IS NULL THEN 'http://app.invalid/hook' END, '/extensions/github/webhook/', "
            "convert_to($3, 'UTF8'), now() - $4::interval) RETURNING id",
            Params(region, mailbox, body, age));
        return r.int64(0, 0);
    }

    struct Dead {
        std::int64_t id;
        std::optional<std::string> region = "us";
        std::string mailbox = "github:1";
        std::string dead_ago = "1m";  // dead_at = now() - dead_ago
        std::optional<std::int64_t> last_status = 500;
        std::string reason = "max_attempts";
        std::string body = "{\"dead\":true}";
    };
    void add_dead(const Dead& d) {
        db().sql(
            "INSERT INTO control_outbox_dead (id, region_name, mailbox_name, category, date_added, attempts, "
            "last_status, last_error, request_method, request_path, request_headers, request_body, target_url, "
            "dead_at, reason) VALUES ($1, $2, $3, 'webhook_proxy', now() - interval '1h', 10, $4, 'HTTP 500', "
            "'POST', '/extensions/github/webhook/', '[[\"X-GitHub-Event\",\"push\"]]', convert_to($5, 'UTF8'), "
            "CASE WHEN $2::text IS NULL THEN 'http://app.invalid/hook' END, now() - $6::interval, $7)",
            Params(d.id, d.region, d.mailbox, d.last_status, d.body, d.dead_ago, d.reason));
    }

    std::string count(const std::string& table) { return db().scalar("SELECT count(*) FROM " + table); }

    std::unique_ptr<TestDatabase> db_;
    std::string config_;
};

const json::object* find_by(const json::value& list, const char* key, const std::string& value,
                            const char* key2 = nullptr, const std::string& value2 = "") {
    for (const auto& item : list.as_array()) {
        const auto& o = item.as_object();
        if (o.at(key).as_string() == value && (!key2 || o.at(key2).as_string() == value2)) return &o;
    }
    return nullptr;
}

std::vector<std::int64_t> ids_of(const json::value& list) {
    std::vector<std::int64_t> out;
    for (const auto& item : list.as_array()) out.push_back(item.as_object().at("id").to_number<std::int64_t>());
    return out;
}

double seconds(const json::object& o) { return o.at("oldest_age_seconds").to_number<double>(); }

}  // namespace

TEST_F(Outboxctl, StatusOfAnEmptyOutboxListsConfiguredRegionsWithZeroAge) {
    auto v = ctl_json({"status", "--json"});
    const auto& regions = v.at("regions");
    ASSERT_EQ(regions.as_array().size(), 2u) << v;
    for (const char* name : {"us", "eu"}) {
        const auto* r = find_by(regions, "region", name);
        ASSERT_NE(r, nullptr) << name << " missing: " << v;
        EXPECT_EQ(r->at("backlog").as_int64(), 0);
        EXPECT_EQ(seconds(*r), 0.0);
        EXPECT_EQ(r->at("dead").as_int64(), 0);
        EXPECT_EQ(r->at("paused"), json::value(false));
    }
    EXPECT_TRUE(v.at("mailboxes").as_array().empty());
    EXPECT_EQ(v.as_object().size(), 2u) << "exactly regions and mailboxes";
}

TEST_F(Outboxctl, StatusCountsBacklogAgeAndDeadAndAPausedRegionPausesItsMailboxes) {
    add_row("us", "github:1", "100s");
    add_row("us", "github:1", "10s");
    add_row("eu", "github:2", "50s");
    add_row(std::nullopt, "app:10", "20s");
    add_dead({.id = 900, .region = "us"});
    add_dead({.id = 901, .region = "us", .mailbox = "github:3"});
    db().sql("INSERT INTO outbox_pause (kind, name) VALUES ('region', 'eu')");

    auto v = ctl_json({"status", "--json"});
    const auto* us = find_by(v.at("regions"), "region", "us");
    const auto* eu = find_by(v.at("regions"), "region", "eu");
    const auto* none = find_by(v.at("regions"), "region", "none");
    ASSERT_TRUE(us && eu && none) << v;
    EXPECT_EQ(us->at("backlog").as_int64(), 2);
    EXPECT_GE(seconds(*us), 100.0) << "the oldest row of the region, not the newest";
    EXPECT_LT(seconds(*us), 160.0);
    EXPECT_EQ(us->at("dead").as_int64(), 2);
    EXPECT_EQ(us->at("paused"), json::value(false));
    EXPECT_EQ(eu->at("backlog").as_int64(), 1);
    EXPECT_EQ(eu->at("dead").as_int64(), 0);
    EXPECT_EQ(eu->at("paused"), json::value(true));
    EXPECT_EQ(none->at("backlog").as_int64(), 1);

    const auto& mailboxes = v.at("mailboxes").as_array();
    ASSERT_EQ(mailboxes.size(), 3u) << v;
    EXPECT_EQ(mailboxes[0].at("mailbox").as_string(), "github:1") << "oldest head first";
    EXPECT_EQ(mailboxes[1].at("mailbox").as_string(), "github:2");
    EXPECT_EQ(mailboxes[2].at("mailbox").as_string(), "app:10");
    EXPECT_EQ(mailboxes[0].at("backlog").as_int64(), 2);
    EXPECT_GE(seconds(mailboxes[0].as_object()), 100.0);
    EXPECT_EQ(mailboxes[0].at("region").as_string(), "us");
    EXPECT_EQ(mailboxes[2].at("region").as_string(), "none");
    EXPECT_EQ(mailboxes[0].at("paused"), json::value(false));
    EXPECT_EQ(mailboxes[1].at("paused"), json::value(true)) << "its region eu is paused";

    db().sql("INSERT INTO outbox_pause (kind, name) VALUES ('mailbox', 'github:1')");
    v = ctl_json({"status", "--json"});
    EXPECT_EQ(find_by(v.at("mailboxes"), "mailbox", "github:1")->at("paused"), json::value(true));
    EXPECT_EQ(find_by(v.at("regions"), "region", "us")->at("paused"), json::value(false))
        << "a paused mailbox does not pause its region";
}

TEST_F(Outboxctl, StatusListsOnlyTheHundredOldestMailboxes) {
    db().sql(
        "INSERT INTO control_outbox (region_name, mailbox_name, date_added) "
        "SELECT 'us', 'github:' || i, now() - i * interval '1s' FROM generate_series(1, 105) i");
    auto v = ctl_json({"status", "--json"});
    const auto& mailboxes = v.at("mailboxes").as_array();
    ASSERT_EQ(mailboxes.size(), 100u);
    EXPECT_EQ(mailboxes.front().at("mailbox").as_string(), "github:105");
    EXPECT_EQ(mailboxes.back().at("mailbox").as_string(), "github:6");
}

TEST_F(Outboxctl, StatusPrintsAlignedTables) {
    add_row("us", "github:1", "90s");
    auto [code, out] = ctl({"status"});
    ASSERT_EQ(code, 0) << out;
    EXPECT_TRUE(std::regex_search(out, std::regex(R"(REGION +BACKLOG +OLDEST +DEAD +PAUSED\n)"))) << out;
    EXPECT_TRUE(std::regex_search(out, std::regex(R"(\nus +1 +1m3\ds +0 +no\n)"))) << out;
    EXPECT_TRUE(std::regex_search(out, std::regex(R"(\ngithub:1 +us +1 +1m3\ds +no\n)"))) << out;
}

TEST_F(Outboxctl, DeadListIsNewestFirstWithEveryFieldAndFilters) {
    add_dead({.id = 10, .dead_ago = "3m"});
    add_dead({.id = 11, .region = "eu", .mailbox = "github:2", .dead_ago = "1m"});
    add_dead({.id = 12, .dead_ago = "2m", .last_status = std::nullopt});
    add_dead({.id = 13, .mailbox = "github:3", .dead_ago = "2m"});  // same dead_at as 12: id breaks the tie
    add_dead({.id = 14, .region = std::nullopt, .mailbox = "app:10", .dead_ago = "4m"});
    db().sql(
        "UPDATE control_outbox_dead SET dead_at = (SELECT dead_at FROM control_outbox_dead WHERE id = 12) "
        "WHERE id = 13");

    auto all = ctl_json({"dead", "list", "--json"});
    EXPECT_EQ(ids_of(all), (std::vector<std::int64_t>{11, 13, 12, 10, 14}));

    const auto& row = all.as_array()[0].as_object();
    EXPECT_EQ(row.size(), 10u) << row;
    EXPECT_EQ(row.at("id").as_int64(), 11);
    EXPECT_EQ(row.at("region").as_string(), "eu");
    EXPECT_EQ(row.at("mailbox").as_string(), "github:2");
    EXPECT_EQ(row.at("category").as_string(), "webhook_proxy");
    EXPECT_EQ(row.at("attempts").as_int64(), 10);
    EXPECT_EQ(row.at("last_status").as_int64(), 500);
    EXPECT_EQ(row.at("last_error").as_string(), "HTTP 500");
    EXPECT_EQ(row.at("reason").as_string(), "max_attempts");
    std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d(:?\d\d)?))");
    EXPECT_TRUE(std::regex_match(std::string(row.at("date_added").as_string()), iso)) << row;
    EXPECT_TRUE(std::regex_match(std::string(row.at("dead_at").as_string()), iso)) << row;
    EXPECT_TRUE(all.as_array()[2].at("last_status").is_null()) << "a NULL status stays null";
    EXPECT_EQ(all.as_array()[4].at("region").as_string(), "none");

    EXPECT_EQ(ids_of(ctl_json({"dead", "list", "--json", "--region", "us"})), (std::vector<std::int64_t>{13, 12, 10}));
    EXPECT_EQ(ids_of(ctl_json({"dead", "list", "--json", "--mailbox", "github:1"})),
              (std::vector<std::int64_t>{12, 10}));
    EXPECT_EQ(ids_of(ctl_json({"dead", "list", "--json", "--region", "us", "--mailbox", "github:3"})),
              (std::vector<std::int64_t>{13}));
    EXPECT_EQ(ids_of(ctl_json({"dead", "list", "--json", "--region", "none"})), (std::vector<std::int64_t>{14}));
    EXPECT_EQ(ids_of(ctl_json({"dead", "list", "--json", "--limit", "2"})), (std::vector<std::int64_t>{11, 13}));

    auto [code, out] = ctl({"dead", "list"});
    EXPECT_EQ(code, 0) << out;
    EXPECT_TRUE(std::regex_search(out, std::regex(R"(\n11 +eu +github:2 +webhook_proxy +10 +500 +max_attempts )")))
        << out;
}

TEST_F(Outboxctl, DeadListDefaultsToAHundredRows) {
    db().sql(
        "INSERT INTO control_outbox_dead (id, region_name, mailbox_name, category, date_added, attempts, "
        "request_method, request_path, request_headers, request_body, reason) "
        "SELECT i, 'us', 'github:1', 'webhook_proxy', now(), 1, 'POST', '/', '[]', '', 'max_age' "
        "FROM generate_series(1, 105) i");
    auto ids = ids_of(ctl_json({"dead", "list", "--json"}));
    ASSERT_EQ(ids.size(), 100u);
    EXPECT_EQ(ids.front(), 105);
}

TEST_F(Outboxctl, ReplayKeepsTheOriginalIdAndGoesAheadOfNewerRowsOfItsMailbox) {
    db().sql("SELECT setval('control_outbox_id_seq', 50)");
    add_dead({.id = 5, .mailbox = "github:1", .body = "replay me"});
    add_dead({.id = 6, .region = "eu", .mailbox = "github:1"});  // same mailbox, other region: stays
    auto newer = add_row("us", "github:1");
    ASSERT_GT(newer, 5);
    db().sql("LISTEN outboxd_outbox");
    db().conn().notifications();

    auto [code, out] = ctl({"dead", "replay", "--id", "5"});
    ASSERT_EQ(code, 0) << out;
    EXPECT_EQ(out, "replayed 1\n");

    auto r = db().sql(
        "SELECT id, attempts, scheduled_for <= now(), "
        "NOT EXISTS (SELECT 1 FROM outbox_lease l WHERE l.shard_key = control_outbox.shard_key AND l.owner IS NOT NULL), "
        "convert_from(request_body, 'UTF8'), request_headers::text, region_name "
        "FROM control_outbox WHERE id = 5");
    ASSERT_EQ(r.rows(), 1) << "replayed under its original id";
    EXPECT_EQ(r.int64(0, 1), 0) << "attempts reset";
    EXPECT_TRUE(r.boolean(0, 2)) << "due now";
    EXPECT_TRUE(r.boolean(0, 3)) << "not leased";
    EXPECT_EQ(r.text(0, 4), "replay me");
    EXPECT_EQ(r.text(0, 5), R"([["X-GitHub-Event", "push"]])");
    EXPECT_EQ(r.text(0, 6), "us");
    EXPECT_EQ(db().scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM control_outbox_dead"), "6");

    // The drainers' own claim hands out the replayed row first, the newer one after it.
    outboxd::drain::MailboxClaimer claimer(db().conn());
    auto runs = claimer.claim({.owner = "test"});
    ASSERT_EQ(runs.size(), 1u);
    ASSERT_EQ(runs[0].rows.size(), 2u);
    EXPECT_EQ(runs[0].rows[0].id, 5);
    EXPECT_EQ(runs[0].rows[1].id, newer);

    EXPECT_TRUE(wait_until(
        [&] {
            for (const auto& n : db().conn().notifications())
                if (n == "outboxd_outbox") return true;
            return false;
        },
        2s))
        << "idle drainers are woken";
}

TEST_F(Outboxctl, ReplayWaitsForTheMailboxOrderingLock) {
    add_dead({.id = 5, .mailbox = "github:1"});
    // A writer of github:1 between its lock and its commit.
    outboxd::db::Connection writer(db().url(), "writer");
    writer.begin();
    writer.exec("SELECT outbox_lock_mailbox('github:1')");

    std::pair<int, std::string> result;
    std::thread replay([&] { result = ctl({"dead", "replay", "--id", "5"}); });
    bool waited = wait_until(
        [&] {
            return db().scalar(
                       "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'outboxctl' "
                       "AND wait_event_type = 'Lock'") == "1";
        },
        10s);
    writer.commit();
    replay.join();
    EXPECT_TRUE(waited) << "replay did not take outbox_lock_mailbox";
    EXPECT_EQ(result.first, 0) << result.second;
    EXPECT_EQ(count("control_outbox"), "1");
}

TEST_F(Outboxctl, ReplayAndDiscardTakeSeveralIdsEitherWayOrAllOfASelection) {
    db().sql("SELECT setval('control_outbox_id_seq', 1000)");  // a fresh id could not pass for an original
    for (std::int64_t id = 1; id <= 4; ++id) add_dead({.id = id});
    for (std::int64_t id = 5; id <= 7; ++id)
        add_dead({.id = id, .region = "eu", .mailbox = "github:" + std::to_string(id)});
    add_dead({.id = 8, .region = "eu", .mailbox = "github:99"});

    auto [c1, o1] = ctl({"dead", "replay", "--id", "1", "2"});
    EXPECT_EQ(c1, 0) << o1;
    EXPECT_EQ(o1, "replayed 2\n");
    auto [c2, o2] = ctl({"dead", "replay", "--id", "3", "--id", "4"});
    EXPECT_EQ(c2, 0) << o2;
    EXPECT_EQ(o2, "replayed 2\n");
    EXPECT_EQ(db().scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM control_outbox"), "1,2,3,4");

    auto [c3, o3] = ctl({"dead", "discard", "--all", "--region", "eu", "--mailbox", "github:99"});
    EXPECT_EQ(c3, 0) << o3;
    EXPECT_EQ(o3, "discarded 1\n");
    auto [c4, o4] = ctl({"dead", "replay", "--all", "--region", "eu"});
    EXPECT_EQ(c4, 0) << o4;
    EXPECT_EQ(o4, "replayed 3\n");
    EXPECT_EQ(db().scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM control_outbox"), "1,2,3,4,5,6,7");
    EXPECT_EQ(count("control_outbox_dead"), "0");

    auto [c5, o5] = ctl({"dead", "replay", "--all"});
    EXPECT_EQ(c5, 0) << o5;
    EXPECT_EQ(o5, "replayed 0\n") << "an empty selection is not an error";
}

TEST_F(Outboxctl, DiscardDeletesOnlyTheSelectedRows) {
    add_dead({.id = 1});
    add_dead({.id = 2});
    add_dead({.id = 3, .region = "eu"});
    auto [code, out] = ctl({"dead", "discard", "--id", "1", "3"});
    ASSERT_EQ(code, 0) << out;
    EXPECT_EQ(out, "discarded 2\n");
    EXPECT_EQ(db().scalar("SELECT string_agg(id::text, ',') FROM control_outbox_dead"), "2");
    EXPECT_EQ(count("control_outbox"), "0") << "discard does not replay";
}

TEST_F(Outboxctl, AnUnknownIdExits1NamingItAndChangesNothing) {
    add_dead({.id = 1});
    add_dead({.id = 2, .region = "eu"});
    for (const char* verb : {"replay", "discard"}) {
        auto [code, out] = ctl({"dead", verb, "--id", "1", "777"});
        EXPECT_EQ(code, 1) << verb << ": " << out;
        EXPECT_NE(out.find("777"), std::string::npos) << out;
        EXPECT_EQ(out.find("outboxctl: no dead row with id 1"), std::string::npos) << "only the missing id is named";
        // An id outside the --region filter does not match either.
        auto [code2, out2] = ctl({"dead", verb, "--id", "2", "--region", "us"});
        EXPECT_EQ(code2, 1) << verb << ": " << out2;
        EXPECT_NE(out2.find("2"), std::string::npos) << out2;
    }
    EXPECT_EQ(db().scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM control_outbox_dead"), "1,2");
    EXPECT_EQ(count("control_outbox"), "0");
}

TEST_F(Outboxctl, UsageErrorsExit2AndChangeNothing) {
    add_dead({.id = 1});
    const std::vector<std::vector<std::string>> bad = {
        {},
        {"frobnicate"},
        {"dead"},
        {"dead", "frobnicate"},
        {"dead", "replay"},
        {"dead", "discard"},
        {"dead", "replay", "--id", "1", "--all"},
        {"dead", "discard", "--id", "one"},
        {"dead", "list", "--limit", "0"},
        {"dead", "list", "--limit", "many"},
        {"dead", "list", "--frobnicate"},
        {"status", "extra"},
        {"pause"},
        {"pause", "--mailbox", "github:1", "--region", "us"},
        {"resume"},
        {"resume", "--mailbox", "github:1", "--region", "us"},
        {"pause", "--region", "none"},  // "none" selects rows without a region; a pause of it matched nothing
        {"pause", "--region", ""},
        {"resume", "--mailbox", ""},
        {"config"},
    };
    for (const auto& args : bad) {
        auto [code, out] = ctl(args);
        std::string shown;
        for (const auto& a : args) shown += " " + a;
        EXPECT_EQ(code, 2) << "outboxctl" << shown << "\n" << out;
        EXPECT_FALSE(out.empty()) << "outboxctl" << shown << " says nothing";
    }
    for (const auto& args : std::vector<std::vector<std::string>>{{"status"}, {"dead", "list"}, {"config", "show"}}) {
        auto [code, out] = run_with("", args);
        EXPECT_EQ(code, 2) << args[0] << " without --config\n" << out;
        EXPECT_NE(out.find("--config"), std::string::npos) << out;
    }
    EXPECT_EQ(count("control_outbox_dead"), "1");
    EXPECT_EQ(count("control_outbox"), "0");
    EXPECT_EQ(count("outbox_pause"), "0");
}

TEST_F(Outboxctl, FailuresExit1WithAMessage) {
    auto [c1, o1] = run_with(temp_dir() + "/missing.toml", {"status"});
    EXPECT_EQ(c1, 1) << o1;
    EXPECT_NE(o1.find("missing.toml"), std::string::npos) << o1;

    auto unreachable = write_config("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
    auto [c2, o2] = run_with(unreachable, {"status"});
    EXPECT_EQ(c2, 1) << o2;
    EXPECT_FALSE(o2.empty());
}

TEST_F(Outboxctl, DatabaseUrlFromTheEnvironmentWins) {
    add_row("us", "github:1");
    auto elsewhere = write_config("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
    auto [code, out] = run_with(elsewhere, {"status", "--json"}, "OUTBOXD_DATABASE_URL=" + quote(db().url()));
    ASSERT_EQ(code, 0) << out;
    auto v = json::parse(out);
    EXPECT_EQ(find_by(v.at("regions"), "region", "us")->at("backlog").as_int64(), 1);
}

TEST_F(Outboxctl, PauseAndResumeRoundTrip) {
    auto pauses = [&] {
        return db().scalar(
            "SELECT coalesce(string_agg(kind || '=' || name, ',' ORDER BY kind, name), '') FROM outbox_pause");
    };

    auto [c1, o1] = ctl({"pause", "--mailbox", "github:1"});
    EXPECT_EQ(c1, 0) << o1;
    EXPECT_EQ(o1, "paused mailbox github:1\n");
    EXPECT_EQ(pauses(), "mailbox=github:1");
    auto [c2, o2] = ctl({"pause", "--mailbox", "github:1"});
    EXPECT_EQ(c2, 0) << "pausing twice is not an error: " << o2;
    EXPECT_EQ(o2, "mailbox github:1 was already paused\n");

    auto [c3, o3] = ctl({"pause", "--region", "eu"});
    EXPECT_EQ(c3, 0) << o3;
    EXPECT_EQ(pauses(), "mailbox=github:1,region=eu");
    add_row("eu", "github:2");
    EXPECT_EQ(find_by(ctl_json({"status", "--json"}).at("regions"), "region", "eu")->at("paused"), json::value(true));

    auto [c4, o4] = ctl({"resume", "--mailbox", "github:1"});
    EXPECT_EQ(c4, 0) << o4;
    EXPECT_EQ(o4, "resumed mailbox github:1\n");
    EXPECT_EQ(pauses(), "region=eu");
    auto [c5, o5] = ctl({"resume", "--region", "eu"});
    EXPECT_EQ(c5, 0) << o5;
    EXPECT_EQ(pauses(), "");
    EXPECT_EQ(find_by(ctl_json({"status", "--json"}).at("mailboxes"), "mailbox", "github:2")->at("paused"),
              json::value(false));
    auto [c6, o6] = ctl({"resume", "--region", "eu"});
    EXPECT_EQ(c6, 0) << o6;
    EXPECT_EQ(o6, "region eu was not paused\n");
}

TEST_F(Outboxctl, ConfigKeysNeedsNoConfigFile) {
    auto [code, out] = run_with("", {"config", "keys"});
    ASSERT_EQ(code, 0) << out;
    std::string expected;
    for (const auto& k : outboxd::config::known_keys()) expected += k.path + "\n";
    EXPECT_EQ(out, expected);
    EXPECT_NE(out.find("\ndrain.batch_size\n"), std::string::npos);
    EXPECT_NE(out.find("\nregion[].url\n"), std::string::npos);
}

TEST_F(Outboxctl, ConfigShowPrintsTheEffectiveConfigWithSecretsMasked) {
    auto [code, out] = ctl({"config", "show"});
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("drain.batch_size = 100\n"), std::string::npos) << out;
    EXPECT_NE(out.find("region[1].name = eu\n"), std::string::npos) << out;
    EXPECT_EQ(out.find("us-secret"), std::string::npos) << "secret shown: " << out;
    EXPECT_EQ(out.find("eu-secret"), std::string::npos) << "secret shown: " << out;
}
