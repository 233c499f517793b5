// End to end, one test per provider: a realistic webhook (tests/fixtures/) goes through a real
// outboxd and a real Postgres to real region receivers (us, eu). Each test checks the answer the
// provider expects, the rows stored (mailbox, region, fan-out: every region or the first one,
// "eu"), and what each region receives: the exact body bytes, path and query, the provider's
// headers, and X-Outbox-Id/-Attempt/-Signature. Rows are observed through a trigger that copies
// every insert into `seen_rows`, so rows delivered (and deleted) at once are still visible, and
// "nothing stored" is checked without waiting: answers are sent only after the commit.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "outboxd/ingress/parser.hpp"
#include "support/harness.hpp"

using namespace testsupport;
using outboxd::db::Params;
using outboxd::ingress::hmac_sha256_hex;
using outboxd::ingress::hmac_sha256_raw;
using outboxd::ingress::sha256_hex;

namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string fixture(const std::string& rel) {
    std::string path = std::string(OUTBOXD_SQL_DIR) + "/../tests/fixtures/" + rel;
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().empty()) throw std::runtime_error("missing fixture " + path);
    return ss.str();
}

std::string hex(std::string_view bytes) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out.push_back(d[c >> 4]);
        out.push_back(d[c & 15]);
    }
    return out;
}

// An independent base64url (no padding), so the test does not trust the daemon's own.
std::string b64url(std::string_view bytes) {
    static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                     static_cast<unsigned char>(bytes[i + 2]);
        out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63]};
    }
    if (bytes.size() - i == 1) {
        unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
        out += {a[v >> 18], a[(v >> 12) & 63]};
    } else if (bytes.size() - i == 2) {
        unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
        out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63]};
    }
    return out;
}

std::string hs256_jwt(const boost::json::object& claims, const std::string& key) {
    std::string input = b64url(R"({"alg":"HS256","typ":"JWT"})") + "." + b64url(boost::json::serialize(claims));
    return input + "." + b64url(hmac_sha256_raw(key, input));
}

std::string form_encode(std::string_view s) {
    static const char* d = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(d[c >> 4]);
            out.push_back(d[c & 15]);
        }
    }
    return out;
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// An Ed25519 key pair made for the test, signing as Discord does.
class Ed25519Key {
public:
    Ed25519Key() {
        EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
        if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &key_) != 1)
            throw std::runtime_error("Ed25519 keygen failed");
        EVP_PKEY_CTX_free(ctx);
    }
    ~Ed25519Key() { EVP_PKEY_free(key_); }
    Ed25519Key(const Ed25519Key&) = delete;
    Ed25519Key& operator=(const Ed25519Key&) = delete;

    std::string public_hex() const {
        unsigned char pub[32];
        std::size_t len = sizeof pub;
        if (EVP_PKEY_get_raw_public_key(key_, pub, &len) != 1 || len != 32) throw std::runtime_error("no raw key");
        return hex(std::string_view(reinterpret_cast<const char*>(pub), len));
    }
    std::string sign_hex(std::string_view message) const {
        EVP_MD_CTX* md = EVP_MD_CTX_new();
        unsigned char sig[64];
        std::size_t len = sizeof sig;
        bool ok = md && EVP_DigestSignInit(md, nullptr, nullptr, nullptr, key_) == 1 &&
                  EVP_DigestSign(md, sig, &len, reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
        EVP_MD_CTX_free(md);
        if (!ok || len != 64) throw std::runtime_error("Ed25519 sign failed");
        return hex(std::string_view(reinterpret_cast<const char*>(sig), len));
    }

private:
    EVP_PKEY* key_ = nullptr;
};

// The value of one series on /metrics ("name{labels}"), 0 when absent.
double metric(unsigned short port, const std::string& series) { return metric_series(port, series); }

std::string rejected(const std::string& provider, const std::string& reason) {
    return "outboxd_ingress_rejected_total{provider=\"" + provider + "\",reason=\"" + reason + "\"}";
}

struct Row {
    std::int64_t id = 0;
    std::string region, mailbox, provider;
    std::string integration_id;  // "" when NULL
};

struct Expect {
    int status = 202;
    std::string body;                  // exact answer body
    std::string mailbox;               // empty: nothing must be stored
    std::vector<std::string> regions;  // sorted
    std::string integration_id;
};

class ProviderE2E : public ::testing::Test {
protected:
    // Starts a daemon on a fresh database with the two regions and the given provider settings.
    void start(const std::string& extra_config) {
        std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        std::string db_name = "prov_";
        for (char c : name) db_name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        db_ = std::make_unique<TestDatabase>(db_name);
        db_->sql("CREATE TABLE seen_rows (id bigint, region_name text, mailbox_name text, provider text, integration_id bigint)");
        db_->sql(R"(CREATE FUNCTION log_row() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        INSERT INTO seen_rows VALUES (NEW.id, NEW.region_name, NEW.mailbox_name, NEW.provider, NEW.integration_id);
                        RETURN NULL;
                    END $$)");
        db_->sql("CREATE TRIGGER log_row AFTER INSERT ON control_outbox FOR EACH ROW EXECUTE FUNCTION log_row()");
        ingress_ = free_port();
        metrics_ = free_port();
        std::string c = "[database]\nurl = \"" + db_->url() + "\"\n\n[ingress]\nlisten = \"127.0.0.1:" +
                        std::to_string(ingress_) + "\"\n\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_) +
                        "\"\n\n[drain]\nrequest_timeout = \"2s\"\npoll_interval = \"200ms\"\n\n"
                        "[retry]\nbase_delay = \"50ms\"\nmax_delay = \"200ms\"\n\n";
        for (const char* rname : {"us", "eu"})
            c += std::string("[[region]]\nname = \"") + rname + "\"\nurl = \"" + region(rname).url() +
                 "\"\nsecret = \"" + rname + "-secret\"\n\n";
        c += extra_config;
        daemon_ = std::make_unique<Daemon>(c, "providers");
        ASSERT_TRUE(daemon_->start()) << daemon_->log();
    }

    void TearDown() override {
        if (daemon_) {
            EXPECT_TRUE(daemon_->running()) << "the daemon died during the test:\n" << daemon_->log();
        }
    }

    TestDatabase& db() { return *db_; }

    std::int64_t last_row_id() {
        auto v = db_->scalar("SELECT coalesce(max(id), 0) FROM seen_rows");
        return std::stoll(v);
    }

    std::vector<Row> rows_after(std::int64_t id) {
        auto r = db_->sql("SELECT id, region_name, mailbox_name, provider, coalesce(integration_id::text, '') "
                          "FROM seen_rows WHERE id > $1 ORDER BY region_name, id",
                          Params(id));
        std::vector<Row> out;
        for (int i = 0; i < r.rows(); ++i) out.push_back({r.int64(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4)});
        return out;
    }

    Receiver& region(const std::string& name) { return name == "us" ? us_ : eu_; }

    // Every request any receiver got carrying this X-Outbox-Id.
    std::vector<std::pair<std::string, ReceivedRequest>> deliveries_of(std::int64_t id) {
        std::vector<std::pair<std::string, ReceivedRequest>> out;
        for (const char* name : {"us", "eu"})
            for (auto& r : region(name).requests())
                if (r.headers["x-outbox-id"] == std::to_string(id)) out.emplace_back(name, r);
        return out;
    }

    // Posts a webhook and checks the answer, the stored rows and their delivery, byte for byte.
    // `provider_headers` are checked at the region; all `headers` are sent.
    void post(const std::string& what, const std::string& target, const std::string& body, const Headers& headers,
              const Expect& want) {
        SCOPED_TRACE(what);
        auto before = last_row_id();
        auto res = http_request("POST", "127.0.0.1", ingress_, target, body, headers);
        EXPECT_EQ(res.status, want.status) << res.body;
        EXPECT_EQ(res.body, want.body);
        auto rows = rows_after(before);
        if (want.mailbox.empty()) {
            EXPECT_TRUE(rows.empty()) << "nothing is stored: " << rows.size() << " rows, first " << rows.at(0).mailbox;
            return;
        }
        std::vector<std::string> regions;
        for (const auto& r : rows) {
            regions.push_back(r.region);
            EXPECT_EQ(r.mailbox, want.mailbox);
            EXPECT_EQ(r.integration_id, want.integration_id);
        }
        EXPECT_EQ(regions, want.regions) << "one row per destination region";

        // Each row reaches its own region's receiver, once.
        bool delivered = wait_until(
            [&] {
                for (const auto& r : rows) {
                    auto got = deliveries_of(r.id);
                    if (got.empty() || got.back().second.status != 200) return false;
                }
                return true;
            },
            10s);
        ASSERT_TRUE(delivered) << daemon_->log();
        ASSERT_TRUE(wait_until([&] { return db_->scalar("SELECT count(*) FROM control_outbox") == "0"; }, 5s));
        for (const auto& r : rows) {
            auto got = deliveries_of(r.id);
            ASSERT_EQ(got.size(), 1u) << "row " << r.id << " delivered exactly once";
            const auto& [where, req] = got[0];
            auto h = req.headers;
            EXPECT_EQ(where, r.region) << "row " << r.id << " reached its own region";
            EXPECT_EQ(req.method, "POST");
            EXPECT_EQ(req.target, target) << "path and query forwarded as received";
            EXPECT_EQ(req.body, body) << "body forwarded byte for byte";
            for (const auto& [k, v] : headers) {
                std::string lk = k;
                for (auto& c : lk) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                EXPECT_EQ(h[lk], v) << "provider header " << k << " forwarded";
            }
            EXPECT_EQ(h["host"], "127.0.0.1:" + std::to_string(region(r.region).port())) << "Host is the region's";
            EXPECT_EQ(h["content-length"], std::to_string(body.size()));
            EXPECT_EQ(h["x-outbox-attempt"], "1");
            EXPECT_EQ(h["x-outbox-signature"], "sha256=" + hmac_sha256_hex(r.region + "-secret", body));
        }
    }

    std::unique_ptr<TestDatabase> db_;
    Receiver us_, eu_;
    std::unique_ptr<Daemon> daemon_;
    unsigned short ingress_ = 0, metrics_ = 0;
};

const std::vector<std::string> kEvery = {"eu", "us"};
const std::vector<std::string> kFirst = {"eu"};  // alphabetically first of the integration's regions

}  // namespace

TEST_F(ProviderE2E, Github) {
    start("[provider.github]\nwebhook_secret = \"gh-secret\"\n");
    // Three organizations, two of them in us: still one copy per region.
    db().seed_integration(10, "github", "2311213", {"us", "eu", "us"});
    auto push = fixture("github/push.json");
    auto signed_headers = [](const std::string& event, const std::string& body) {
        return Headers{{"X-GitHub-Event", event},
                       {"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
                       {"X-GitHub-Hook-ID", "292430182"},
                       {"X-GitHub-Hook-Installation-Target-Type", "integration"},
                       {"User-Agent", "GitHub-Hookshot/044aadd"},
                       {"Content-Type", "application/json"},
                       {"X-Hub-Signature-256", "sha256=" + hmac_sha256_hex("gh-secret", body)}};
    };
    post("push", "/extensions/github/webhook/", push, signed_headers("push", push),
         {202, "", "github:10", kEvery, "10"});

    auto installation = fixture("github/installation_created.json");
    post("installation: answered by control, no integration needed", "/extensions/github/webhook/", installation,
         signed_headers("installation", installation), {204, "", "", {}, ""});

    auto forged = signed_headers("push", push);
    forged.back().second = "sha256=" + hmac_sha256_hex("not-the-secret", push);
    auto before = metric(metrics_, rejected("github", "bad_signature"));
    post("bad signature", "/extensions/github/webhook/", push, forged,
         {401, "X-Hub-Signature-256 does not match\n", "", {}, ""});
    EXPECT_EQ(metric(metrics_, rejected("github", "bad_signature")), before + 1);
}

TEST_F(ProviderE2E, Gitlab) {
    start("");
    db().seed_integration(11, "gitlab", "gitlab.example.com:4", {"us", "eu"}, R"({"webhook_secret":"gl-secret"})");
    auto headers = [](const std::string& event, const std::string& token) {
        return Headers{{"X-Gitlab-Event", event},
                       {"X-Gitlab-Token", token},
                       {"X-Gitlab-Instance", "https://gitlab.example.com"},
                       {"X-Gitlab-Webhook-UUID", "0c5bd3d3-0d94-4d34-9dcd-8b1b0d5e6a8f"},
                       {"X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e"},
                       {"User-Agent", "GitLab/16.10.0"},
                       {"Content-Type", "application/json"}};
    };
    post("push hook", "/extensions/gitlab/webhook/", fixture("gitlab/push_hook.json"),
         headers("Push Hook", "gitlab.example.com:4:gl-secret"), {202, "", "gitlab:11", kEvery, "11"});
    post("merge request hook", "/extensions/gitlab/webhook/", fixture("gitlab/merge_request_hook.json"),
         headers("Merge Request Hook", "gitlab.example.com:4:gl-secret"), {202, "", "gitlab:11", kEvery, "11"});
    post("wrong secret", "/extensions/gitlab/webhook/", fixture("gitlab/push_hook.json"),
         headers("Push Hook", "gitlab.example.com:4:guess"),
         {401, "X-Gitlab-Token secret does not match\n", "", {}, ""});
    post("token not instance:group:secret", "/extensions/gitlab/webhook/", fixture("gitlab/push_hook.json"),
         headers("Push Hook", "gitlab.example.com:gl-secret"),
         {400, "X-Gitlab-Token is not instance:group:secret\n", "", {}, ""});
}

TEST_F(ProviderE2E, Slack) {
    start("[provider.slack]\nsigning_secret = \"slack-secret\"\n");
    db().seed_integration(12, "slack", "T024BE7LD", {"us", "eu"});
    auto signed_headers = [](const std::string& body, const std::string& content_type) {
        auto ts = std::to_string(unix_now());
        return Headers{{"X-Slack-Request-Timestamp", ts},
                       {"X-Slack-Signature", "v0=" + hmac_sha256_hex("slack-secret", "v0:" + ts + ":" + body)},
                       {"User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)"},
                       {"Content-Type", content_type}};
    };
    const std::string json = "application/json", form = "application/x-www-form-urlencoded";

    auto event = fixture("slack/event_callback.json");
    post("event: first region", "/extensions/slack/event/", event, signed_headers(event, json),
         {202, "", "slack:12", kFirst, "12"});

    std::string command =
        "token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T024BE7LD&team_domain=acme&channel_id=C123ABC456&channel_name=alerts"
        "&user_id=U123ABC456&user_name=mona&command=%2Fsentry&text=link&api_app_id=A0PNCHHK2"
        "&is_enterprise_install=false&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT024BE7LD%2F1234%2F5678"
        "&trigger_id=13345224609.738474920.8088930838d88f008e0";
    post("slash command: first region", "/extensions/slack/commands/", command, signed_headers(command, form),
         {202, "", "slack:12", kFirst, "12"});

    std::string action = "payload=" + form_encode(fixture("slack/block_actions.json"));
    post("block action: every region", "/extensions/slack/action/", action, signed_headers(action, form),
         {202, "", "slack:12", kEvery, "12"});

    std::string options = "payload=" + form_encode(fixture("slack/block_suggestion.json"));
    post("options load: first region", "/extensions/slack/options-load/", options, signed_headers(options, form),
         {202, "", "slack:12", kFirst, "12"});

    // The URL-verification handshake is answered here, with the challenge as JSON.
    auto verification = fixture("slack/url_verification.json");
    auto res = http_request("POST", "127.0.0.1", ingress_, "/extensions/slack/event/", verification,
                            signed_headers(verification, json));
    EXPECT_EQ(res.status, 200) << res.body;
    boost::system::error_code ec;
    auto answer = boost::json::parse(res.body, ec);
    ASSERT_FALSE(ec) << res.body;
    EXPECT_EQ(answer, boost::json::parse(R"({"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})"));
    EXPECT_EQ(rows_after(0).size(), 5u) << "1 + 1 + 2 + 1 rows, none for the challenge";

    // Signed by someone else, or replayed after the 5-minute window: 401, checked first.
    auto forged = signed_headers(event, json);
    forged[1].second = "v0=" + hmac_sha256_hex("other", "v0:" + forged[0].second + ":" + event);
    post("bad signature", "/extensions/slack/event/", event, forged,
         {401, "X-Slack-Signature does not match\n", "", {}, ""});
    auto old = std::to_string(unix_now() - 600);
    Headers replay{{"X-Slack-Request-Timestamp", old},
                   {"X-Slack-Signature", "v0=" + hmac_sha256_hex("slack-secret", "v0:" + old + ":" + event)},
                   {"Content-Type", json}};
    post("replayed", "/extensions/slack/event/", event, replay,
         {401, "X-Slack-Request-Timestamp outside the 5 minute window\n", "", {}, ""});
}

TEST_F(ProviderE2E, Jira) {
    start("");
    const std::string client_key = "5c4f0b32-4f6c-3b44-9c8b-d1e0c7f1b6a1";
    db().seed_integration(13, "jira", client_key, {"us", "eu"}, R"({"shared_secret":"jira-shared-secret"})");
    // Atlassian appends the user to the URL; the qsh covers the sorted, re-encoded query.
    const std::string target = "/extensions/jira/issue-updated/?user_key=mona&user_id=557058%3Aabc";
    auto qsh = sha256_hex("POST&/extensions/jira/issue-updated&user_id=557058%3Aabc&user_key=mona");
    auto now = unix_now();
    boost::json::object claims{{"iss", client_key}, {"iat", now}, {"exp", now + 180}, {"qsh", qsh}, {"sub", "557058:abc"}};
    auto token = hs256_jwt(claims, "jira-shared-secret");
    auto headers = [](const std::string& t) {
        return Headers{{"Authorization", "JWT " + t},
                       {"User-Agent", "Atlassian HttpClient 4.2.0 / Jira-1001.0.0-SNAPSHOT (100217) / Default"},
                       {"Atl-Traceid", "4bd4a2e2a3a1c1b0"},
                       {"Content-Type", "application/json; charset=utf-8"}};
    };
    auto body = fixture("jira/issue_updated.json");
    post("issue updated", target, body, headers(token), {202, "", "jira:13", kEvery, "13"});

    post("installed: lifecycle callback answered here", "/extensions/jira/installed/", fixture("jira/installed.json"),
         {{"Content-Type", "application/json"}}, {200, "", "", {}, ""});

    post("signed with another secret", target, body, headers(hs256_jwt(claims, "wrong")),
         {401, "the JWT signature does not verify\n", "", {}, ""});
    post("token of another URL (qsh mismatch)", "/extensions/jira/issue-updated/?user_key=eve&user_id=557058%3Aabc",
         body, headers(token), {401, "the JWT qsh does not match this request\n", "", {}, ""});
    auto expired = claims;
    expired["exp"] = now - 10;
    post("expired", target, body, headers(hs256_jwt(expired, "jira-shared-secret")),
         {401, "the JWT has expired\n", "", {}, ""});
}

TEST_F(ProviderE2E, JiraServer) {
    start("");
    db().seed_integration(14, "jira_server", "jira.example.com:ops", {"us", "eu"}, R"({"webhook_secret":"js-secret"})");
    auto token = hs256_jwt({{"id", "jira.example.com:ops"}}, "js-secret");
    const std::string target = "/extensions/jira-server/issue-updated/" + token + "/";
    Headers headers{{"User-Agent", "Atlassian HttpClient 3.0.4 / JIRA-9.12.2 (9120002) / Default"},
                    {"X-Atlassian-Webhook-Identifier", "1710410400123"},
                    {"Content-Type", "application/json; charset=UTF-8"}};
    post("with changelog: stored", target, fixture("jira_server/issue_updated.json"), headers,
         {202, "", "jira_server:14", kEvery, "14"});
    post("without changelog: acknowledged, not stored", target, fixture("jira_server/issue_updated_no_changelog.json"),
         headers, {200, "", "", {}, ""});
    post("token signed with another secret",
         "/extensions/jira-server/issue-updated/" + hs256_jwt({{"id", "jira.example.com:ops"}}, "guess") + "/",
         fixture("jira_server/issue_updated.json"), headers,
         {401, "the URL token signature does not verify\n", "", {}, ""});
    post("token not a JWT", "/extensions/jira-server/issue-updated/not-a-jwt/", fixture("jira_server/issue_updated.json"),
         headers, {400, "the URL token is not a JWT\n", "", {}, ""});
}

TEST_F(ProviderE2E, Msteams) {
    start("");
    // The card's payload names integration 300; messages name its team.
    db().seed_integration(300, "msteams", "19:8d60bdc5b4e34a7fa1d8e2a3f4b5c6d7@thread.skype", {"us", "eu"});
    Headers headers{{"Authorization", "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImJvdCJ9.eyJzZXJ2aWNldXJsIjoieCJ9.c2ln"},
                    {"User-Agent", "Microsoft-SkypeBotApi (Microsoft-BotFramework/3.0)"},
                    {"Content-Type", "application/json; charset=utf-8"}};
    post("message in a team", "/extensions/msteams/webhook/", fixture("msteams/message.json"), headers,
         {202, "", "msteams:300", kEvery, "300"});
    post("card action", "/extensions/msteams/webhook/", fixture("msteams/card_action.json"), headers,
         {202, "", "msteams:300", kEvery, "300"});
    post("installation update (add): control", "/extensions/msteams/webhook/", fixture("msteams/installation_add.json"),
         headers, {204, "", "", {}, ""});
    post("personal conversation update: control", "/extensions/msteams/webhook/",
         fixture("msteams/personal_conversation_update.json"), headers, {204, "", "", {}, ""});
}

TEST_F(ProviderE2E, Vsts) {
    start("");
    db().seed_integration(15, "vsts", "c12d0eb8-e382-443b-9f9c-c52cba5014c2", {"us", "eu"});
    Headers headers{{"Shared-Secret", "vsts-shared-secret-checked-by-the-region"},
                    {"User-Agent", "VSServices/16.255.34711.1"},
                    {"Content-Type", "application/json; charset=utf-8"}};
    post("work item updated", "/extensions/vsts/issue-updated/", fixture("vsts/workitem_updated.json"), headers,
         {202, "", "vsts:15", kEvery, "15"});
}

TEST_F(ProviderE2E, Bitbucket) {
    start("");
    // Organizations 1600 (us) and 1601 (eu); no integration is involved.
    db().seed_integration(16, "bitbucket", "unused", {"us", "eu"});
    Headers headers{{"X-Event-Key", "repo:push"},
                    {"X-Hook-UUID", "{ab1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e}"},
                    {"X-Request-UUID", "5a2f8d31-6a1c-4b0e-9e3c-0d8b7f6e5a4b"},
                    {"X-Attempt-Number", "1"},
                    {"User-Agent", "Bitbucket-Webhooks/2.0"},
                    {"Content-Type", "application/json"}};
    auto body = fixture("bitbucket/repo_push.json");
    post("organization in eu", "/extensions/bitbucket/organizations/1601/webhook/", body, headers,
         {202, "", "bitbucket:1601", {"eu"}, ""});
    post("organization in us", "/extensions/bitbucket/organizations/1600/webhook/", body, headers,
         {202, "", "bitbucket:1600", {"us"}, ""});
    post("unknown organization", "/extensions/bitbucket/organizations/99/webhook/", body, headers,
         {400, "no organization 99\n", "", {}, ""});
    post("organization id not an integer", "/extensions/bitbucket/organizations/acme/webhook/", body, headers,
         {400, "organization id is not an integer\n", "", {}, ""});
}

TEST_F(ProviderE2E, Discord) {
    Ed25519Key key;
    start("[provider.discord]\npublic_key = \"" + key.public_hex() + "\"\n");
    db().seed_integration(17, "discord", "900000000000000001", {"us", "eu"});
    auto signed_headers = [&](const std::string& body) {
        auto ts = std::to_string(unix_now());
        return Headers{{"X-Signature-Ed25519", key.sign_hex(ts + body)},
                       {"X-Signature-Timestamp", ts},
                       {"User-Agent", "Discord-Interactions/1.0 (+https://discord.com)"},
                       {"Content-Type", "application/json"}};
    };
    const std::string deferred = R"({"type":5,"data":{"flags":64}})";
    auto ping = fixture("discord/ping.json");
    post("ping: answered here", "/extensions/discord/interactions/", ping, signed_headers(ping),
         {200, R"({"type":1})", "", {}, ""});
    auto command = fixture("discord/application_command.json");
    post("application command: first region", "/extensions/discord/interactions/", command, signed_headers(command),
         {200, deferred, "discord:17", kFirst, "17"});
    auto component = fixture("discord/message_component.json");
    post("message component: every region", "/extensions/discord/interactions/", component, signed_headers(component),
         {200, deferred, "discord:17", kEvery, "17"});

    // Another key's signature, a signature of other bytes, none at all: 401 before anything else.
    Ed25519Key other;
    auto forged = signed_headers(ping);
    forged[0].second = other.sign_hex(forged[1].second + ping);
    post("signed by another key", "/extensions/discord/interactions/", ping, forged,
         {401, "X-Signature-Ed25519 does not verify\n", "", {}, ""});
    post("signature of another body", "/extensions/discord/interactions/", command, signed_headers(component),
         {401, "X-Signature-Ed25519 does not verify\n", "", {}, ""});
    post("unsigned", "/extensions/discord/interactions/", ping, {{"Content-Type", "application/json"}},
         {401, "X-Signature-Ed25519 does not verify\n", "", {}, ""});
}

// An integration nobody uses any more (no organization, or only inactive links): the provider
// gets its 2xx so it stops retrying, nothing is stored, and the drop is counted per provider.
TEST_F(ProviderE2E, NoActiveOrganizationIsAcknowledgedAndCounted) {
    Ed25519Key key;
    start("[provider.discord]\npublic_key = \"" + key.public_hex() + "\"\n");
    db().seed_integration(20, "github", "2311213", {});
    db().seed_integration(21, "gitlab", "gitlab.example.com:4", {"us"});  // linked, but the link is inactive
    db().sql("UPDATE organization_integration SET status = 'disabled' WHERE integration_id = 21");
    db().seed_integration(22, "slack", "T024BE7LD", {});
    db().seed_integration(23, "vsts", "c12d0eb8-e382-443b-9f9c-c52cba5014c2", {});
    db().seed_integration(24, "discord", "900000000000000001", {});
    db().seed_integration(300, "msteams", "19:8d60bdc5b4e34a7fa1d8e2a3f4b5c6d7@thread.skype", {});
    db().seed_integration(25, "jira_server", "jira.example.com:ops", {}, R"({"webhook_secret":"js-secret"})");

    struct Case {
        std::string provider, target, body;
        Headers headers;
        int status = 202;
        std::string answer;
    };
    auto command = fixture("discord/application_command.json");
    auto ts = std::to_string(unix_now());
    std::vector<Case> cases = {
        {"github", "/extensions/github/webhook/", fixture("github/push.json"), {{"X-GitHub-Event", "push"}}},
        {"gitlab", "/extensions/gitlab/webhook/", fixture("gitlab/push_hook.json"),
         {{"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Token", "gitlab.example.com:4:x"}}},
        {"slack", "/extensions/slack/event/", fixture("slack/event_callback.json"), {}},
        {"vsts", "/extensions/vsts/issue-updated/", fixture("vsts/workitem_updated.json"), {}},
        {"discord", "/extensions/discord/interactions/", command,
         {{"X-Signature-Ed25519", key.sign_hex(ts + command)}, {"X-Signature-Timestamp", ts}}, 200,
         R"({"type":5,"data":{"flags":64}})"},
        {"msteams", "/extensions/msteams/webhook/", fixture("msteams/message.json"), {}},
        {"jira_server", "/extensions/jira-server/issue-updated/" + hs256_jwt({{"id", "jira.example.com:ops"}}, "js-secret") + "/",
         fixture("jira_server/issue_updated.json"), {}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.provider);
        auto series = rejected(c.provider, "no_active_organization");
        auto before = metric(metrics_, series);
        auto res = http_request("POST", "127.0.0.1", ingress_, c.target, c.body, c.headers);
        EXPECT_EQ(res.status, c.status) << res.body;
        EXPECT_EQ(res.body, c.answer);
        EXPECT_EQ(metric(metrics_, series), before + 1);
        EXPECT_EQ(metric(metrics_, "outboxd_ingress_requests_total{provider=\"" + c.provider + "\",code=\"" +
                                       std::to_string(c.status) + "\"}"),
                  1);
    }
    EXPECT_EQ(db().scalar("SELECT count(*) FROM seen_rows"), "0");
    EXPECT_TRUE(us_.requests().empty());
    EXPECT_TRUE(eu_.requests().empty());
}
