// Provider parsers against the ingress table of SPEC.md: for each provider, which requests are
// stored (and in which mailbox, with which fan-out), which are answered by outboxd itself, and
// which are refused with which status. Table-driven over an in-memory directory, a fixed clock,
// JWTs and signatures built here (no key material is committed).
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <boost/json.hpp>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "outboxd/config/config.hpp"
#include "outboxd/ingress/parser.hpp"
#include "outboxd/ingress/request.hpp"

namespace outboxd::ingress {
namespace {

namespace json = boost::json;

// 2024-03-14T10:00:00Z: every timestamp and `exp` below is relative to it.
constexpr std::int64_t kNow = 1710410400;

// ---------------------------------------------------------------------------------------------
// The world the parsers see.

class MemoryDirectory : public Directory {
public:
    void add(std::int64_t id, std::string provider, std::string external_id, std::string status = "active",
             json::object metadata = {}) {
        integrations_.push_back({id, std::move(provider), std::move(external_id), std::move(status), std::move(metadata)});
    }
    void add_organization(std::int64_t id, std::string region) { organizations_[id] = std::move(region); }

    std::optional<Integration> integration_by_external_id(const std::string& provider,
                                                          const std::string& external_id) override {
        ++lookups;
        for (const auto& i : integrations_)
            if (i.provider == provider && i.external_id == external_id) return i;
        return std::nullopt;
    }
    std::optional<Integration> integration_by_id(std::int64_t id) override {
        ++lookups;
        for (const auto& i : integrations_)
            if (i.id == id) return i;
        return std::nullopt;
    }
    std::optional<std::string> organization_region(std::int64_t organization_id) override {
        ++lookups;
        auto it = organizations_.find(organization_id);
        if (it == organizations_.end()) return std::nullopt;
        return it->second;
    }

    int lookups = 0;

private:
    std::vector<Integration> integrations_;
    std::map<std::int64_t, std::string> organizations_;
};

constexpr std::string_view kGitlabExternal = "gitlab.example.com:acme";
constexpr std::string_view kSlackTeam = "T024BE7LD";
constexpr std::string_view kJiraClient = "5c4f0b32-4f6c-3b44-9c8b-d1e0c7f1b6a1";
constexpr std::string_view kJiraSecret = "jira-shared-secret";
constexpr std::string_view kJiraServerSecret = "jira-server-webhook-secret";
constexpr std::string_view kTeamsTeam = "19:8d60bdc5b4e34a7fa1d8e2a3f4b5c6d7@thread.skype";
constexpr std::string_view kTeamsTenant = "f5ef2fb6-4b93-4c7d-9d1e-2a1c4d7b8e90";
constexpr std::string_view kVstsCollection = "c12d0eb8-e382-443b-9f9c-c52cba5014c2";
constexpr std::string_view kGuild = "900000000000000001";
constexpr std::string_view kSlackSecret = "8f742231b10e8888abcd99yyyzzz85a5";
constexpr std::string_view kGithubSecret = "github-webhook-secret";

void populate(MemoryDirectory& d) {
    d.add(1, "github", "2311213");
    d.add(2, "github", "999", "disabled");
    d.add(10, "gitlab", std::string(kGitlabExternal), "active", {{"webhook_secret", "gl-secret"}});
    d.add(11, "gitlab", "gitlab.example.com:legacy", "active", {});
    d.add(12, "gitlab", "gitlab.example.com:off", "disabled", {{"webhook_secret", "gl-secret"}});
    d.add(13, "gitlab", "gitlab.example.com:numeric", "active", {{"webhook_secret", 12345}});
    d.add(20, "slack", std::string(kSlackTeam));
    d.add(21, "slack", "TDISABLED", "disabled");
    d.add(30, "jira", std::string(kJiraClient), "active", {{"shared_secret", kJiraSecret}});
    d.add(31, "jira", "jira-no-secret", "active", {});
    d.add(32, "jira", "jira-disabled", "disabled", {{"shared_secret", kJiraSecret}});
    d.add(40, "jira_server", "js-1", "active", {{"webhook_secret", kJiraServerSecret}});
    d.add(41, "jira_server", "js-no-secret", "active", {});
    d.add(42, "jira_server", "js-disabled", "disabled", {{"webhook_secret", kJiraServerSecret}});
    d.add(300, "msteams", std::string(kTeamsTeam));
    d.add(301, "msteams", std::string(kTeamsTenant));
    d.add(302, "msteams", "19:disabled@thread.skype", "disabled");
    d.add(50, "vsts", std::string(kVstsCollection));
    d.add(51, "vsts", "vsts-disabled", "disabled");
    d.add(60, "discord", std::string(kGuild));
    d.add(61, "discord", "900000000000000002", "disabled");
    d.add_organization(7, "us");
    d.add_organization(8, "de");
}

// ---------------------------------------------------------------------------------------------
// Building requests.

// tests/fixtures: found from this file's path, or (when a compiler cache rewrote __FILE__ to a
// relative path) from the working directory upwards; OUTBOXD_FIXTURES overrides both.
std::filesystem::path fixtures_dir() {
    if (const char* env = std::getenv("OUTBOXD_FIXTURES")) return env;
    auto beside = std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures";
    if (std::filesystem::is_directory(beside)) return beside;
    for (auto dir = std::filesystem::current_path(); !dir.empty(); dir = dir.parent_path()) {
        if (std::filesystem::is_directory(dir / "tests" / "fixtures")) return dir / "tests" / "fixtures";
        if (dir == dir.parent_path()) break;
    }
    return beside;
}

std::string fixture(const std::string& name) {
    auto path = fixtures_dir() / name;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("missing fixture " + path.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

Request post(std::string target, std::string body = "{}", Headers headers = {}) {
    return Request{"POST", std::move(target), std::move(headers), std::move(body)};
}
Request with_method(std::string method, Request r) {
    r.method = std::move(method);
    return r;
}

std::string form_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') out.push_back(c);
        else if (c == ' ') out.push_back('+');
        else {
            out.push_back('%');
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 15]);
        }
    }
    return out;
}

// An independent base64url (RFC 4648 §5, no padding), so JWTs are not built with the code under test.
std::string b64url(std::string_view in) {
    static constexpr char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        std::uint32_t n = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8) |
                          std::uint8_t(in[i + 2]);
        for (int k = 18; k >= 0; k -= 6) out.push_back(a[(n >> k) & 63]);
    }
    if (in.size() - i == 1) {
        std::uint32_t n = std::uint32_t(std::uint8_t(in[i])) << 16;
        out.push_back(a[(n >> 18) & 63]);
        out.push_back(a[(n >> 12) & 63]);
    } else if (in.size() - i == 2) {
        std::uint32_t n = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8);
        out.push_back(a[(n >> 18) & 63]);
        out.push_back(a[(n >> 12) & 63]);
        out.push_back(a[(n >> 6) & 63]);
    }
    return out;
}

std::string make_jwt(const json::object& claims, std::string_view key, std::string_view alg = "HS256") {
    std::string input = b64url(json::serialize(json::object{{"alg", alg}, {"typ", "JWT"}})) + "." +
                        b64url(json::serialize(claims));
    return input + "." + b64url(hmac_sha256_raw(key, input));
}

// qsh of POST /extensions/jira/issue-updated with the canonical query given by hand.
std::string qsh(std::string_view canonical_query) {
    return sha256_hex("POST&/extensions/jira/issue-updated&" + std::string(canonical_query));
}

std::string jira_token(json::object extra = {}, std::string_view key = kJiraSecret) {
    json::object claims{{"iss", kJiraClient}, {"iat", kNow - 10}, {"exp", kNow + 170}, {"qsh", qsh("")}};
    for (auto& [k, v] : extra) claims[k] = v;
    return make_jwt(claims, key);
}

Request slack_signed(std::string target, std::string body, std::int64_t ts = kNow,
                     std::string_view secret = kSlackSecret, std::string content_type = "application/json") {
    auto t = std::to_string(ts);
    auto sig = "v0=" + hmac_sha256_hex(secret, "v0:" + t + ":" + body);
    return post(std::move(target), std::move(body),
                {{"Content-Type", content_type}, {"X-Slack-Request-Timestamp", t}, {"X-Slack-Signature", sig}});
}

std::string slack_form_payload(const std::string& json_payload) { return "payload=" + form_encode(json_payload); }

// A fresh Ed25519 key pair per test run.
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
        unsigned char raw[32];
        std::size_t len = sizeof raw;
        EVP_PKEY_get_raw_public_key(key_, raw, &len);
        return hex(std::string(reinterpret_cast<char*>(raw), len));
    }
    std::string sign_hex(std::string_view message) const {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        unsigned char sig[64];
        std::size_t len = sizeof sig;
        if (EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_) != 1 ||
            EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1)
            throw std::runtime_error("Ed25519 sign failed");
        EVP_MD_CTX_free(ctx);
        return hex(std::string(reinterpret_cast<char*>(sig), len));
    }

private:
    static std::string hex(std::string_view s) {
        static constexpr char d[] = "0123456789abcdef";
        std::string out;
        for (char c : s) {
            out.push_back(d[std::uint8_t(c) >> 4]);
            out.push_back(d[std::uint8_t(c) & 15]);
        }
        return out;
    }
    EVP_PKEY* key_ = nullptr;
};

const Ed25519Key& discord_key() {
    static const Ed25519Key key;
    return key;
}
const Ed25519Key& other_key() {
    static const Ed25519Key key;
    return key;
}

Request discord_signed(std::string body, const Ed25519Key& key = discord_key()) {
    std::string ts = std::to_string(kNow);
    return post("/extensions/discord/interactions/", body,
                {{"Content-Type", "application/json"},
                 {"X-Signature-Timestamp", ts},
                 {"X-Signature-Ed25519", key.sign_hex(ts + body)}});
}

// ---------------------------------------------------------------------------------------------
// The table.

enum class Secrets { none, configured };

struct Case {
    std::string name;
    Request req;
    int status;
    std::string reason;
    std::string mailbox = {};  // non-empty: stored there; empty: nothing stored
    Fanout fanout = Fanout::every_region;
    std::optional<std::string> body = std::nullopt;  // exact answer body, when it matters
    Secrets secrets = Secrets::none;
    std::optional<std::string> region = std::nullopt;
    std::optional<std::string> content_type = std::nullopt;
};

// gtest prints parameters on failure: the name says it all.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

Case stored(std::string name, Request req, std::string mailbox, Fanout fanout = Fanout::every_region,
            Secrets secrets = Secrets::none) {
    return Case{std::move(name), std::move(req), 202, "stored", std::move(mailbox), fanout, std::string{}, secrets};
}
Case refused(std::string name, Request req, int status, std::string reason, Secrets secrets = Secrets::none) {
    return Case{std::move(name), std::move(req), status, std::move(reason), {}, Fanout::every_region, std::nullopt, secrets};
}
Case control(std::string name, Request req, int status, std::string body = {}, Secrets secrets = Secrets::none) {
    return Case{std::move(name), std::move(req), status, "control", {}, Fanout::every_region, std::move(body), secrets};
}

std::vector<Case> github_cases() {
    auto push = fixture("github/push.json");
    auto signed_push = post("/extensions/github/webhook/", push,
                            {{"X-GitHub-Event", "push"},
                             {"X-Hub-Signature-256", "sha256=" + hmac_sha256_hex(kGithubSecret, push)}});
    return {
        stored("github_push", post("/extensions/github/webhook/", push, {{"X-GitHub-Event", "push"}}), "github:1"),
        stored("github_numeric_string_installation",
               post("/extensions/github/webhook/", R"({"installation":{"id":"2311213"}})"), "github:1"),
        control("github_installation_event",
                post("/extensions/github/webhook/", fixture("github/installation_created.json"),
                     {{"X-GitHub-Event", "installation"}}),
                204),
        refused("github_unknown_installation",
                post("/extensions/github/webhook/", R"({"installation":{"id":42}})", {{"X-GitHub-Event", "push"}}), 400,
                "no_integration"),
        refused("github_disabled_installation",
                post("/extensions/github/webhook/", R"({"installation":{"id":999}})"), 400, "no_integration"),
        refused("github_bad_json", post("/extensions/github/webhook/", "{not json"), 400, "bad_json"),
        // Valid JSON as RFC 8259 and Python read it: deeper than Boost's default 32 levels, a lone
        // escaped surrogate.
        stored("github_deeply_nested_body",
               post("/extensions/github/webhook/",
                    R"({"installation":{"id":2311213},"deep":)" + std::string(200, '[') + std::string(200, ']') + "}"),
               "github:1"),
        stored("github_lone_surrogate_escape",
               post("/extensions/github/webhook/", R"({"installation":{"id":2311213},"title":"\ud83d"})"), "github:1"),
        stored("github_lone_low_surrogate_and_a_pair",
               post("/extensions/github/webhook/",
                    R"({"installation":{"id":2311213},"a":"\udc00x","b":"\ud83d\ude80","c":"\ud83d\u0041"})"),
               "github:1"),
        refused("github_bad_escape_still_refused",
                post("/extensions/github/webhook/", R"({"installation":{"id":2311213},"a":"\ud83d\uZZZZ"})"), 400,
                "bad_json"),
        refused("github_absurdly_nested_body",
                post("/extensions/github/webhook/",
                     R"({"installation":{"id":2311213},"deep":)" + std::string(5000, '[') + std::string(5000, ']') + "}"),
                400, "bad_json"),
        refused("github_no_installation", post("/extensions/github/webhook/", R"({"zen":"Keep it logically awesome."})"),
                400, "bad_shape"),
        refused("github_get", with_method("GET", post("/extensions/github/webhook/")), 405, "method_not_allowed"),
        refused("github_unknown_path", post("/extensions/github/hook/"), 404, "not_found"),
        stored("github_signed", signed_push, "github:1", Fanout::every_region, Secrets::configured),
        refused("github_unsigned_with_secret", post("/extensions/github/webhook/", push), 401, "bad_signature",
                Secrets::configured),
        refused("github_wrong_signature",
                post("/extensions/github/webhook/", push, {{"X-Hub-Signature-256", "sha256=" + std::string(64, '0')}}),
                401, "bad_signature", Secrets::configured),
    };
}

std::vector<Case> gitlab_cases() {
    const std::string url = "/extensions/gitlab/webhook/";
    auto push = fixture("gitlab/push_hook.json");
    auto token = std::string(kGitlabExternal) + ":gl-secret";
    return {
        stored("gitlab_push", post(url, push, {{"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Token", token}}), "gitlab:10"),
        stored("gitlab_merge_request",
               post(url, fixture("gitlab/merge_request_hook.json"),
                    {{"X-Gitlab-Event", "Merge Request Hook"}, {"X-Gitlab-Token", token}}),
               "gitlab:10"),
        // Whatever the event and body: the token alone identifies.
        stored("gitlab_any_event_unparsed_body",
               post(url, "not json at all", {{"X-Gitlab-Event", "System Hook"}, {"X-Gitlab-Token", token}}),
               "gitlab:10"),
        stored("gitlab_no_secret_in_metadata",
               post(url, push, {{"X-Gitlab-Token", "gitlab.example.com:legacy:anything"}}), "gitlab:11"),
        refused("gitlab_wrong_secret", post(url, push, {{"X-Gitlab-Token", std::string(kGitlabExternal) + ":nope"}}),
                401, "bad_signature"),
        refused("gitlab_empty_secret", post(url, push, {{"X-Gitlab-Token", std::string(kGitlabExternal) + ":"}}), 401,
                "bad_signature"),
        refused("gitlab_secret_stored_as_a_number_is_not_skipped",
                post(url, push, {{"X-Gitlab-Token", "gitlab.example.com:numeric:anything"}}), 401, "bad_signature"),
        refused("gitlab_missing_token", post(url, push, {{"X-Gitlab-Event", "Push Hook"}}), 400, "missing_token"),
        refused("gitlab_two_parts", post(url, push, {{"X-Gitlab-Token", "gitlab.example.com:acme"}}), 400, "bad_token"),
        refused("gitlab_four_parts", post(url, push, {{"X-Gitlab-Token", token + ":extra"}}), 400, "bad_token"),
        refused("gitlab_unknown_group", post(url, push, {{"X-Gitlab-Token", "gitlab.example.com:other:gl-secret"}}),
                400, "no_integration"),
        refused("gitlab_disabled", post(url, push, {{"X-Gitlab-Token", "gitlab.example.com:off:gl-secret"}}), 400,
                "no_integration"),
        refused("gitlab_get", with_method("GET", post(url, push, {{"X-Gitlab-Token", token}})), 405,
                "method_not_allowed"),
        refused("gitlab_unknown_path", post("/extensions/gitlab/webhooks/", push, {{"X-Gitlab-Token", token}}), 404,
                "not_found"),
    };
}

std::vector<Case> slack_cases() {
    auto event = fixture("slack/event_callback.json");
    auto verification = fixture("slack/url_verification.json");
    auto actions = slack_form_payload(fixture("slack/block_actions.json"));
    auto suggestion = slack_form_payload(fixture("slack/block_suggestion.json"));
    std::string command =
        "token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T024BE7LD&team_domain=acme&channel_id=C2147483705&channel_name=test"
        "&user_id=U2147483697&user_name=Steve&command=%2Fsentry&text=link&api_app_id=A123456"
        "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234%2F5678&trigger_id=13345224609.738474920.8088930838d";
    const std::string form = "application/x-www-form-urlencoded";
    const std::string challenge = R"({"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})";

    std::vector<Case> c = {
        stored("slack_event", post("/extensions/slack/event/", event), "slack:20", Fanout::first_region),
        stored("slack_command", post("/extensions/slack/commands/", command, {{"Content-Type", form}}), "slack:20",
               Fanout::first_region),
        stored("slack_action", post("/extensions/slack/action/", actions, {{"Content-Type", form}}), "slack:20",
               Fanout::every_region),
        stored("slack_options_load", post("/extensions/slack/options-load/", suggestion, {{"Content-Type", form}}),
               "slack:20", Fanout::first_region),
        control("slack_url_verification", post("/extensions/slack/event/", verification), 200, challenge),
        refused("slack_event_bad_json", post("/extensions/slack/event/", "{\"team_id\":"), 400, "bad_json"),
        refused("slack_event_array", post("/extensions/slack/event/", "[]"), 400, "bad_shape"),
        refused("slack_event_no_team", post("/extensions/slack/event/", R"({"type":"event_callback"})"), 400,
                "bad_shape"),
        refused("slack_event_unknown_team",
                post("/extensions/slack/event/", R"({"type":"event_callback","team_id":"TUNKNOWN"})"), 400,
                "no_integration"),
        refused("slack_event_disabled_team",
                post("/extensions/slack/event/", R"({"type":"event_callback","team_id":"TDISABLED"})"), 400,
                "no_integration"),
        refused("slack_command_no_team", post("/extensions/slack/commands/", "command=%2Fsentry&text=help"), 400,
                "bad_shape"),
        refused("slack_action_no_payload", post("/extensions/slack/action/", "foo=bar"), 400, "bad_shape"),
        refused("slack_action_payload_not_json", post("/extensions/slack/action/", "payload=%7Bnope"), 400, "bad_json"),
        refused("slack_action_payload_without_team",
                post("/extensions/slack/action/", slack_form_payload(R"({"type":"block_actions"})")), 400, "bad_shape"),
        refused("slack_get", with_method("GET", post("/extensions/slack/event/", event)), 405, "method_not_allowed"),
        refused("slack_unknown_path", post("/extensions/slack/events/", event), 404, "not_found"),
        refused("slack_options_underscore", post("/extensions/slack/options_load/", suggestion), 404, "not_found"),
        // With a signing secret.
        stored("slack_signed_event", slack_signed("/extensions/slack/event/", event), "slack:20", Fanout::first_region,
               Secrets::configured),
        stored("slack_signed_command", slack_signed("/extensions/slack/commands/", command, kNow - 299, kSlackSecret, form),
               "slack:20", Fanout::first_region, Secrets::configured),
        stored("slack_signed_action", slack_signed("/extensions/slack/action/", actions, kNow, kSlackSecret, form),
               "slack:20", Fanout::every_region, Secrets::configured),
        control("slack_signed_url_verification", slack_signed("/extensions/slack/event/", verification), 200, challenge,
                Secrets::configured),
        refused("slack_unsigned_url_verification", post("/extensions/slack/event/", verification), 401, "bad_signature",
                Secrets::configured),
        refused("slack_wrong_secret", slack_signed("/extensions/slack/event/", event, kNow, "another-secret"), 401,
                "bad_signature", Secrets::configured),
        refused("slack_stale_timestamp", slack_signed("/extensions/slack/event/", event, kNow - 301), 401, "expired",
                Secrets::configured),
        refused("slack_future_timestamp", slack_signed("/extensions/slack/event/", event, kNow + 301), 401, "expired",
                Secrets::configured),
    };
    auto tampered = slack_signed("/extensions/slack/event/", event);
    tampered.body += " ";
    c.push_back(refused("slack_tampered_body", tampered, 401, "bad_signature", Secrets::configured));
    auto bad_ts = slack_signed("/extensions/slack/event/", event);
    bad_ts.headers[1].second = "soon";
    bad_ts.headers[2].second = "v0=" + hmac_sha256_hex(kSlackSecret, "v0:soon:" + event);
    c.push_back(refused("slack_non_numeric_timestamp", bad_ts, 401, "expired", Secrets::configured));
    c.back().content_type = "text/plain";
    for (auto& k : c)
        if (k.name.find("url_verification") != std::string::npos && k.status == 200)
            k.content_type = "application/json";
    return c;
}

std::vector<Case> jira_cases() {
    const std::string url = "/extensions/jira/issue-updated/";
    auto body = fixture("jira/issue_updated.json");
    auto auth = [](const std::string& t) { return Headers{{"Authorization", "JWT " + t}}; };
    // The query Atlassian appends to the webhook URL it was given, with the token last.
    std::string query = "user_id=5b10a2844c20165700ede21g&user_key=admin%20user&b=2&b=10";
    std::string canonical = "b=10,2&user_id=5b10a2844c20165700ede21g&user_key=admin%20user";
    auto with_query = jira_token({{"qsh", qsh(canonical)}});
    json::object no_exp{{"iss", kJiraClient}, {"qsh", qsh("")}};
    return {
        stored("jira_header_token", post(url, body, auth(jira_token())), "jira:30"),
        stored("jira_query_token", post(url + "?jwt=" + jira_token(), body), "jira:30"),
        stored("jira_query_params_in_qsh", post(url + "?" + query + "&jwt=" + with_query, body), "jira:30"),
        stored("jira_header_token_and_query", post(url + "?" + query, body, auth(with_query)), "jira:30"),
        stored("jira_without_exp", post(url, body, auth(make_jwt(no_exp, kJiraSecret))), "jira:30"),
        stored("jira_unparsed_body", post(url, "not json", auth(jira_token())), "jira:30"),
        control("jira_installed", post("/extensions/jira/installed/", fixture("jira/installed.json")), 200),
        control("jira_uninstalled", post("/extensions/jira/uninstalled/", fixture("jira/installed.json")), 200),
        refused("jira_installed_get", with_method("GET", post("/extensions/jira/installed/")), 405,
                "method_not_allowed"),
        refused("jira_missing_token", post(url, body), 400, "missing_token"),
        refused("jira_empty_query_token", post(url + "?jwt=", body), 400, "missing_token"),
        refused("jira_bearer_is_not_jwt_scheme", post(url, body, {{"Authorization", "Bearer " + jira_token()}}), 400,
                "missing_token"),
        refused("jira_undecodable_token", post(url, body, auth("not-a.jwt")), 400, "bad_token"),
        refused("jira_garbage_segments", post(url, body, auth("a.b.c")), 400, "bad_token"),
        refused("jira_no_iss", post(url, body, auth(make_jwt({{"qsh", qsh("")}}, kJiraSecret))), 400, "bad_token"),
        refused("jira_unknown_iss", post(url, body, auth(jira_token({{"iss", "someone-else"}}))), 400, "no_integration"),
        refused("jira_disabled", post(url, body, auth(jira_token({{"iss", "jira-disabled"}}))), 400, "no_integration"),
        refused("jira_no_shared_secret", post(url, body, auth(jira_token({{"iss", "jira-no-secret"}}))), 400,
                "no_secret"),
        refused("jira_bad_signature", post(url, body, auth(jira_token({}, "wrong-secret"))), 401, "bad_signature"),
        refused("jira_alg_none",
                post(url, body,
                     auth(b64url(R"({"alg":"none","typ":"JWT"})") + "." +
                          b64url(json::serialize(json::object{{"iss", kJiraClient}, {"qsh", qsh("")}})) + ".")),
                401, "bad_signature"),
        refused("jira_hs512_label", post(url, body, auth(make_jwt(no_exp, kJiraSecret, "HS512"))), 401,
                "bad_signature"),
        refused("jira_expired", post(url, body, auth(jira_token({{"exp", kNow - 1}}))), 401, "expired"),
        refused("jira_expires_now", post(url, body, auth(jira_token({{"exp", kNow}}))), 401, "expired"),
        refused("jira_exp_not_a_number", post(url, body, auth(jira_token({{"exp", "tomorrow"}}))), 401, "bad_exp"),
        refused("jira_exp_null", post(url, body, auth(jira_token({{"exp", nullptr}}))), 401, "bad_exp"),
        refused("jira_exp_numeric_string", post(url, body, auth(jira_token({{"exp", std::to_string(kNow + 60)}}))),
                401, "bad_exp"),
        refused("jira_qsh_other_path",
                post(url, body,
                     auth(jira_token({{"qsh", sha256_hex("POST&/extensions/jira/installed&")}}))),
                401, "bad_qsh"),
        refused("jira_qsh_query_changed", post(url + "?" + query + "&extra=1", body, auth(with_query)), 401, "bad_qsh"),
        refused("jira_qsh_missing",
                post(url, body, auth(make_jwt({{"iss", kJiraClient}, {"exp", kNow + 60}}, kJiraSecret))), 401,
                "bad_qsh"),
        refused("jira_get", with_method("GET", post(url, body, auth(jira_token()))), 405, "method_not_allowed"),
        refused("jira_unknown_path", post("/extensions/jira/issue-created/", body, auth(jira_token())), 404,
                "not_found"),
    };
}

std::vector<Case> jira_server_cases() {
    auto body = fixture("jira_server/issue_updated.json");
    auto no_changelog = fixture("jira_server/issue_updated_no_changelog.json");
    auto url = [](const std::string& token) { return "/extensions/jira-server/issue-updated/" + token + "/"; };
    auto good = make_jwt({{"id", "js-1"}}, kJiraServerSecret);
    return {
        stored("jira_server_issue_updated", post(url(good), body), "jira_server:40"),
        stored("jira_server_without_trailing_slash",
               post("/extensions/jira-server/issue-updated/" + good, body), "jira_server:40"),
        control("jira_server_no_changelog", post(url(good), no_changelog), 200),
        control("jira_server_null_changelog", post(url(good), R"({"changelog":null})"), 200),
        control("jira_server_empty_changelog", post(url(good), R"({"changelog":{}})"), 200),
        control("jira_server_empty_changelog_list", post(url(good), R"({"changelog":[]})"), 200),
        stored("jira_server_changelog_without_items", post(url(good), R"({"changelog":{"id":"1"}})"), "jira_server:40"),
        refused("jira_server_not_a_jwt", post(url("js-1"), body), 400, "bad_token"),
        refused("jira_server_other_secret", post(url(make_jwt({{"id", "js-1"}}, "another-secret")), body), 401,
                "bad_signature"),
        refused("jira_server_no_id", post(url(make_jwt({{"sub", "js-1"}}, kJiraServerSecret)), body), 400, "bad_token"),
        refused("jira_server_unknown_id", post(url(make_jwt({{"id", "js-404"}}, kJiraServerSecret)), body), 400,
                "no_integration"),
        refused("jira_server_disabled", post(url(make_jwt({{"id", "js-disabled"}}, kJiraServerSecret)), body), 400,
                "no_integration"),
        refused("jira_server_no_webhook_secret",
                post(url(make_jwt({{"id", "js-no-secret"}}, kJiraServerSecret)), body), 400, "no_secret"),
        refused("jira_server_expired",
                post(url(make_jwt({{"id", "js-1"}, {"exp", kNow - 60}}, kJiraServerSecret)), body), 401, "expired"),
        refused("jira_server_exp_not_a_number",
                post(url(make_jwt({{"id", "js-1"}, {"exp", "soon"}}, kJiraServerSecret)), body), 401, "bad_exp"),
        refused("jira_server_bad_json", post(url(good), "{"), 400, "bad_json"),
        refused("jira_server_body_not_object", post(url(good), "[1]"), 400, "bad_shape"),
        refused("jira_server_get", with_method("GET", post(url(good), body)), 405, "method_not_allowed"),
        refused("jira_server_no_token", post("/extensions/jira-server/issue-updated/", body), 404, "not_found"),
        refused("jira_server_extra_segment", post(url(good) + "more/", body), 404, "not_found"),
        refused("jira_server_unknown_path", post("/extensions/jira-server/webhook/", body), 404, "not_found"),
    };
}

std::vector<Case> msteams_cases() {
    const std::string url = "/extensions/msteams/webhook/";
    auto team_only = [](std::string_view team, std::string_view type) {
        return json::serialize(json::object{{"type", type}, {"channelData", {{"team", {{"id", team}}}}}});
    };
    return {
        stored("msteams_message_by_team", post(url, fixture("msteams/message.json")), "msteams:300"),
        stored("msteams_card_action_by_integration_id", post(url, fixture("msteams/card_action.json")), "msteams:300"),
        stored("msteams_integration_id_as_string",
               post(url, R"({"type":"message","value":{"payload":{"integrationId":"301"}}})"), "msteams:301"),
        stored("msteams_unknown_integration_id_falls_back_to_team",
               post(url, json::serialize(json::object{{"type", "message"},
                                                      {"value", {{"payload", {{"integrationId", 9999}}}}},
                                                      {"channelData", {{"team", {{"id", kTeamsTeam}}}}}})),
               "msteams:300"),
        // Slack's integration 20 is not a Teams integration: the id must not cross providers.
        stored("msteams_foreign_integration_id_falls_back_to_team",
               post(url, json::serialize(json::object{{"type", "message"},
                                                      {"value", {{"payload", {{"integrationId", 20}}}}},
                                                      {"channelData", {{"team", {{"id", kTeamsTeam}}}}}})),
               "msteams:300"),
        stored("msteams_unknown_team_falls_back_to_tenant",
               post(url, json::serialize(json::object{{"type", "message"},
                                                      {"channelData", {{"team", {{"id", "19:unknown@thread.skype"}}},
                                                                       {"tenant", {{"id", kTeamsTenant}}}}}})),
               "msteams:301"),
        control("msteams_installation_add", post(url, fixture("msteams/installation_add.json")), 204),
        control("msteams_installation_add_unknown_team",
                post(url, R"({"type":"installationUpdate","action":"add","channelData":{"team":{"id":"19:new"}}})"),
                204),
        control("msteams_personal_chat_tenant_only", post(url, fixture("msteams/personal_conversation_update.json")),
                204),
        control("msteams_nothing_to_identify", post(url, R"({"type":"message","text":"hi"})"), 204),
        control("msteams_null_team_id", post(url, R"({"type":"message","channelData":{"team":{"id":null}}})"), 204),
        control("msteams_installation_remove",
                post(url, R"({"type":"installationUpdate","action":"remove","channelData":{"team":{"id":")" +
                              std::string(kTeamsTeam) + R"("}}})"),
                204),
        control("msteams_type_missing", post(url, R"({"channelData":{"team":{"id":")" + std::string(kTeamsTeam) + R"("}}})"),
                204),
        refused("msteams_unknown_team", post(url, team_only("19:unknown@thread.skype", "message")), 400,
                "no_integration"),
        refused("msteams_disabled_team", post(url, team_only("19:disabled@thread.skype", "message")), 400,
                "no_integration"),
        refused("msteams_unknown_integration_id",
                post(url, R"({"type":"message","value":{"payload":{"integrationId":12345}}})"), 400, "no_integration"),
        refused("msteams_type_missing_unknown_team", post(url, R"({"channelData":{"team":{"id":"19:x"}}})"), 400,
                "no_integration"),
        refused("msteams_bad_json", post(url, "{\"type\":"), 400, "bad_json"),
        refused("msteams_not_object", post(url, R"(["message"])"), 400, "bad_shape"),
        refused("msteams_get", with_method("GET", post(url, fixture("msteams/message.json"))), 405,
                "method_not_allowed"),
        refused("msteams_unknown_path", post("/extensions/msteams/messages/"), 404, "not_found"),
    };
}

std::vector<Case> vsts_cases() {
    const std::string url = "/extensions/vsts/issue-updated/";
    return {
        stored("vsts_workitem_updated",
               post(url, fixture("vsts/workitem_updated.json"), {{"Shared-Secret", "forwarded-not-checked"}}), "vsts:50"),
        stored("vsts_any_event_type",
               post(url, R"({"eventType":"workitem.created","resourceContainers":{"collection":{"id":")" +
                             std::string(kVstsCollection) + R"("}}})"),
               "vsts:50"),
        refused("vsts_bad_json", post(url, "<xml/>"), 400, "bad_json"),
        refused("vsts_no_collection", post(url, R"({"eventType":"workitem.updated","resourceContainers":{}})"), 400,
                "bad_shape"),
        refused("vsts_collection_id_not_string",
                post(url, R"({"resourceContainers":{"collection":{"id":5}}})"), 400, "bad_shape"),
        refused("vsts_not_object", post(url, "\"workitem\""), 400, "bad_shape"),
        refused("vsts_unknown_collection", post(url, R"({"resourceContainers":{"collection":{"id":"nope"}}})"), 400,
                "no_integration"),
        refused("vsts_disabled_collection",
                post(url, R"({"resourceContainers":{"collection":{"id":"vsts-disabled"}}})"), 400, "no_integration"),
        refused("vsts_get", with_method("GET", post(url)), 405, "method_not_allowed"),
        refused("vsts_unknown_path", post("/extensions/vsts/webhook/"), 404, "not_found"),
    };
}

std::vector<Case> bitbucket_cases() {
    auto push = fixture("bitbucket/repo_push.json");
    Headers h{{"X-Event-Key", "repo:push"}, {"Content-Type", "application/json"}};
    auto c = std::vector<Case>{
        stored("bitbucket_push", post("/extensions/bitbucket/organizations/7/webhook/", push, h), "bitbucket:7",
               Fanout::first_region),
        stored("bitbucket_body_not_parsed", post("/extensions/bitbucket/organizations/8/webhook/", "\x01\x02", h),
               "bitbucket:8", Fanout::first_region),
        refused("bitbucket_unknown_organization", post("/extensions/bitbucket/organizations/9/webhook/", push, h), 400,
                "no_organization"),
        refused("bitbucket_organization_not_integer",
                post("/extensions/bitbucket/organizations/acme/webhook/", push, h), 400, "bad_organization"),
        refused("bitbucket_organization_overflow",
                post("/extensions/bitbucket/organizations/99999999999999999999/webhook/", push, h), 400,
                "bad_organization"),
        refused("bitbucket_organization_trailing_garbage",
                post("/extensions/bitbucket/organizations/7x/webhook/", push, h), 400, "bad_organization"),
        refused("bitbucket_organization_empty", post("/extensions/bitbucket/organizations//webhook/", push, h), 400,
                "bad_organization"),
        refused("bitbucket_get", with_method("GET", post("/extensions/bitbucket/organizations/7/webhook/", push, h)),
                405, "method_not_allowed"),
        refused("bitbucket_no_organization", post("/extensions/bitbucket/webhook/", push, h), 404, "not_found"),
        refused("bitbucket_extra_segment", post("/extensions/bitbucket/organizations/7/8/webhook/", push, h), 404,
                "not_found"),
        refused("bitbucket_wrong_tail", post("/extensions/bitbucket/organizations/7/hook/", push, h), 404, "not_found"),
    };
    c[0].region = "us";
    c[1].region = "de";
    return c;
}

std::vector<Case> discord_cases() {
    auto ping = fixture("discord/ping.json");
    auto command = fixture("discord/application_command.json");
    auto component = fixture("discord/message_component.json");
    const std::string deferred = R"({"type":5,"data":{"flags":64}})";
    const std::string url = "/extensions/discord/interactions/";
    auto answered = [&](Case c) {
        c.status = 200;
        c.body = deferred;
        c.content_type = "application/json";
        return c;
    };
    std::vector<Case> c = {
        control("discord_ping", post(url, ping), 200, R"({"type":1})"),
        answered(stored("discord_command", post(url, command), "discord:60", Fanout::first_region)),
        answered(stored("discord_component", post(url, component), "discord:60", Fanout::every_region)),
        refused("discord_autocomplete_type", post(url, R"({"type":4,"guild_id":"900000000000000001"})"), 400,
                "bad_type"),
        refused("discord_type_missing", post(url, R"({"guild_id":"900000000000000001"})"), 400, "bad_type"),
        refused("discord_type_string", post(url, R"({"type":"2","guild_id":"900000000000000001"})"), 400, "bad_type"),
        refused("discord_no_guild", post(url, R"({"type":2,"channel_id":"1"})"), 400, "bad_shape"),
        refused("discord_unknown_guild", post(url, R"({"type":2,"guild_id":"123"})"), 400, "no_integration"),
        refused("discord_disabled_guild", post(url, R"({"type":3,"guild_id":"900000000000000002"})"), 400,
                "no_integration"),
        refused("discord_bad_json", post(url, "{"), 400, "bad_json"),
        refused("discord_not_object", post(url, "1"), 400, "bad_shape"),
        refused("discord_get", with_method("GET", post(url, ping)), 405, "method_not_allowed"),
        refused("discord_unknown_path", post("/extensions/discord/webhook/", ping), 404, "not_found"),
        // With the public key configured.
        control("discord_signed_ping", discord_signed(ping), 200, R"({"type":1})", Secrets::configured),
        answered(stored("discord_signed_command", discord_signed(command), "discord:60", Fanout::first_region,
                        Secrets::configured)),
        refused("discord_unsigned_ping", post(url, ping), 401, "bad_signature", Secrets::configured),
        refused("discord_other_key", discord_signed(ping, other_key()), 401, "bad_signature", Secrets::configured),
        refused("discord_signature_not_hex",
                post(url, ping, {{"X-Signature-Timestamp", "1"}, {"X-Signature-Ed25519", "zz"}}), 401, "bad_signature",
                Secrets::configured),
    };
    auto tampered = discord_signed(command);
    tampered.headers[1].second = std::to_string(kNow + 1);  // the timestamp is part of what is signed
    c.push_back(refused("discord_timestamp_changed", tampered, 401, "bad_signature", Secrets::configured));
    c[0].content_type = "application/json";
    return c;
}

std::vector<Case> routing_cases() {
    return {
        refused("unknown_provider", post("/extensions/bitbucket-server/webhook/"), 404, "not_found"),
        refused("provider_without_subpath", post("/extensions/slack"), 404, "not_found"),
        refused("unknown_path_get_is_404_not_405", with_method("GET", post("/extensions/vsts/nothing/")), 404,
                "not_found"),
    };
}

std::vector<Case> all_cases() {
    std::vector<Case> all;
    for (auto part : {github_cases(), gitlab_cases(), slack_cases(), jira_cases(), jira_server_cases(),
                      msteams_cases(), vsts_cases(), bitbucket_cases(), discord_cases(), routing_cases()})
        for (auto& c : part) all.push_back(std::move(c));
    return all;
}

// ---------------------------------------------------------------------------------------------
// Running a case the way the router does: strip /extensions/{segment}/, '-' → '_'.

Decision route(const Request& req, Context& ctx) {
    constexpr std::string_view prefix = "/extensions/";
    auto path = req.path();
    if (path.substr(0, prefix.size()) != prefix) return not_found();
    auto rest = path.substr(prefix.size());
    auto slash = rest.find('/');
    std::string name(rest.substr(0, slash));
    for (auto& ch : name)
        if (ch == '-') ch = '_';
    std::string_view sub = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    const Provider* p = find_provider(name);
    if (!p) return not_found();
    return p->parse(req, sub, ctx);
}

config::Config make_config(Secrets s) {
    config::Config cfg;
    if (s == Secrets::configured) {
        cfg.provider.github_webhook_secret = std::string(kGithubSecret);
        cfg.provider.slack_signing_secret = std::string(kSlackSecret);
        cfg.provider.discord_public_key = discord_key().public_hex();
    }
    return cfg;
}

class ParserCase : public ::testing::TestWithParam<Case> {};

TEST_P(ParserCase, Decides) {
    const Case& c = GetParam();
    MemoryDirectory dir;
    populate(dir);
    auto cfg = make_config(c.secrets);
    Context ctx{dir, cfg, [] { return std::chrono::system_clock::time_point(std::chrono::seconds(kNow)); }};

    Decision d = route(c.req, ctx);

    EXPECT_EQ(d.response.status, c.status) << "body: " << d.response.body;
    EXPECT_EQ(d.reason, c.reason);
    EXPECT_EQ(d.store, !c.mailbox.empty());
    if (!c.mailbox.empty()) {
        EXPECT_EQ(d.mailbox, c.mailbox);
        EXPECT_EQ(d.fanout, c.fanout);
        if (c.region) {
            EXPECT_EQ(d.region, c.region);
            EXPECT_FALSE(d.integration_id.has_value());
        } else {
            EXPECT_FALSE(d.region.has_value());
            ASSERT_TRUE(d.integration_id.has_value());
            EXPECT_EQ(c.mailbox.substr(c.mailbox.find(':') + 1), std::to_string(*d.integration_id));
        }
    }
    if (c.body) {
        EXPECT_EQ(d.response.body, *c.body);
    }
    if (c.content_type) {
        EXPECT_EQ(d.response.content_type, *c.content_type);
    }
    if (c.status == 202) {
        EXPECT_TRUE(d.response.body.empty());
        EXPECT_TRUE(d.response.content_type.empty());
    }
}

INSTANTIATE_TEST_SUITE_P(Parsers, ParserCase, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Properties outside the table.

TEST(ParsersRegistry, EveryProviderOfTheSpecIsRegistered) {
    for (const char* name :
         {"github", "gitlab", "slack", "jira", "jira_server", "msteams", "vsts", "bitbucket", "discord"}) {
        const Provider* p = find_provider(name);
        ASSERT_NE(p, nullptr) << name;
        EXPECT_EQ(p->name, name);
    }
    EXPECT_EQ(providers().size(), 9u);
    EXPECT_EQ(find_provider("jira-server"), nullptr);  // the router maps '-' before looking up
    EXPECT_EQ(find_provider(""), nullptr);
}

// Verification happens before any lookup: a forged request costs no database round trip, and a
// refused signature does not reveal whether the integration exists.
TEST(ParsersSignatures, CheckedBeforeTheDirectoryIsConsulted) {
    MemoryDirectory dir;
    populate(dir);
    auto cfg = make_config(Secrets::configured);
    Context ctx{dir, cfg, [] { return std::chrono::system_clock::time_point(std::chrono::seconds(kNow)); }};
    for (auto req : {post("/extensions/slack/event/", fixture("slack/event_callback.json")),
                     post("/extensions/discord/interactions/", fixture("discord/application_command.json")),
                     post("/extensions/github/webhook/", fixture("github/push.json"))}) {
        auto d = route(req, ctx);
        EXPECT_EQ(d.response.status, 401) << req.target;
    }
    EXPECT_EQ(dir.lookups, 0);
}

TEST(ParsersJira, QueryHashFollowsAtlassianCanonicalForm) {
    MemoryDirectory dir;
    populate(dir);
    config::Config cfg;
    Context ctx{dir, cfg, [] { return std::chrono::system_clock::time_point(std::chrono::seconds(kNow)); }};
    // Reserved characters, a repeated name, '+' as a space, names sorted, jwt excluded wherever it is.
    std::string query = "z=%2F%3F&jwt=PLACEHOLDER&a=b+c&a=A&m=%7E.-_*";
    std::string canonical = "a=A,b%20c&m=~.-_%2A&z=%2F%3F";
    auto token = make_jwt({{"iss", kJiraClient}, {"qsh", qsh(canonical)}}, kJiraSecret);
    auto pos = query.find("PLACEHOLDER");
    query.replace(pos, 11, token);
    auto d = route(post("/extensions/jira/issue-updated/?" + query, "{}"), ctx);
    EXPECT_EQ(d.response.status, 202) << d.response.body;
    EXPECT_EQ(d.mailbox, "jira:30");
}

TEST(ParsersJira, AuthorizationHeaderWinsOverQueryToken) {
    MemoryDirectory dir;
    populate(dir);
    config::Config cfg;
    Context ctx{dir, cfg, [] { return std::chrono::system_clock::time_point(std::chrono::seconds(kNow)); }};
    auto forged = jira_token({}, "forged");
    auto good = jira_token();
    // The query's jwt is not part of the hash, so the header token's qsh("") still holds.
    auto d = route(post("/extensions/jira/issue-updated/?jwt=" + forged, "{}", {{"Authorization", "JWT " + good}}), ctx);
    EXPECT_EQ(d.response.status, 202);
    d = route(post("/extensions/jira/issue-updated/?jwt=" + good, "{}", {{"Authorization", "JWT " + forged}}), ctx);
    EXPECT_EQ(d.response.status, 401);
}

TEST(ParsersJiraServer, TokenSignatureCoversTheClaims) {
    MemoryDirectory dir;
    populate(dir);
    config::Config cfg;
    Context ctx{dir, cfg, [] { return std::chrono::system_clock::time_point(std::chrono::seconds(kNow)); }};
    auto good = make_jwt({{"id", "js-1"}}, kJiraServerSecret);
    // Keep the signature, swap the claims for another integration's id.
    auto dot1 = good.find('.');
    auto dot2 = good.find('.', dot1 + 1);
    auto swapped = good.substr(0, dot1 + 1) + b64url(R"({"id":"js-no-secret"})") + good.substr(dot2);
    auto body = fixture("jira_server/issue_updated.json");
    auto d = route(post("/extensions/jira-server/issue-updated/" + swapped + "/", body), ctx);
    EXPECT_EQ(d.response.status, 400);  // js-no-secret has no secret to verify with
    auto swapped_same = good.substr(0, dot1 + 1) + b64url(R"({"id":"js-1","admin":true})") + good.substr(dot2);
    d = route(post("/extensions/jira-server/issue-updated/" + swapped_same + "/", body), ctx);
    EXPECT_EQ(d.response.status, 401);
    // Padding or plain-base64 spellings of the signature are other tokens, not the same one.
    d = route(post("/extensions/jira-server/issue-updated/" + good + "=/", body), ctx);
    EXPECT_EQ(d.response.status, 400);
}

TEST(ParsersSlack, ChallengeIsEscapedJson) {
    MemoryDirectory dir;
    config::Config cfg;
    Context ctx{dir, cfg, [] { return std::chrono::system_clock::time_point(std::chrono::seconds(kNow)); }};
    auto d = route(post("/extensions/slack/event/", R"({"type":"url_verification","challenge":"a\"b<\/c>"})"), ctx);
    ASSERT_EQ(d.response.status, 200);
    auto v = json::parse(d.response.body);
    EXPECT_EQ(v.at("challenge").as_string(), "a\"b</c>");
    EXPECT_EQ(d.response.content_type, "application/json");
    EXPECT_EQ(dir.lookups, 0);
    // Any JSON value is echoed as it came.
    d = route(post("/extensions/slack/event/", R"({"type":"url_verification","challenge":12345})"), ctx);
    ASSERT_EQ(d.response.status, 200);
    EXPECT_EQ(d.response.body, R"({"challenge":12345})");
    d = route(post("/extensions/slack/event/", R"({"type":"url_verification"})"), ctx);
    EXPECT_EQ(d.response.status, 400);
}

TEST(ParsersFixtures, AllAreValidJson) {
    auto root = fixtures_dir();
    int n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
        if (e.path().extension() != ".json") continue;
        std::ifstream in(e.path());
        std::ostringstream s;
        s << in.rdbuf();
        boost::system::error_code ec;
        json::parse(s.str(), ec);
        EXPECT_FALSE(ec) << e.path();
        ++n;
    }
    EXPECT_GE(n, 9);
}

}  // namespace
}  // namespace outboxd::ingress
