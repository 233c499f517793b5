// What every parser fuzz target shares: turning fuzz bytes into a Request, a directory that
// knows one integration per provider (so inputs can reach the store path), and the invariants
// any Decision must satisfy whatever the input. A violated invariant traps, which libFuzzer
// reports like a crash.
//
// Input format (readable, so seeds can be written by hand):
//   METHOD SP SUBPATH[?QUERY] LF
//   Name: value LF            (zero or more headers)
//   LF
//   BODY                       (all remaining bytes)
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "outboxd/config/config.hpp"
#include "outboxd/ingress/parser.hpp"
#include "outboxd/ingress/request.hpp"

namespace outboxd::fuzz {

using ingress::Decision;
using ingress::Integration;
using ingress::Request;

// Secrets the seeds are signed with; the fuzz targets are their only users.
inline constexpr std::string_view kJiraSecret = "fuzz-jira-shared-secret";
inline constexpr std::string_view kJiraServerSecret = "fuzz-jira-server-secret";
inline constexpr std::string_view kGitlabSecret = "fuzz-gitlab-secret";
inline constexpr std::string_view kSlackSecret = "fuzz-slack-signing-secret";
inline constexpr std::string_view kGithubSecret = "fuzz-github-secret";
// RFC 8032 §7.1 test 1 public key: any valid point will do, nothing can be signed for it here.
inline constexpr std::string_view kDiscordPublicKey = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
// 2024-03-14T10:00:00Z, the clock of every run (seeds' Slack timestamps use it).
inline constexpr std::int64_t kNow = 1710410400;

class FuzzDirectory : public ingress::Directory {
public:
    FuzzDirectory() {
        add(1, "github", "2311213", {});
        add(10, "gitlab", "gitlab.example.com:acme", {{"webhook_secret", kGitlabSecret}});
        add(11, "gitlab", "gitlab.example.com:legacy", {});
        add(20, "slack", "T024BE7LD", {});
        add(30, "jira", "fuzz-client-key", {{"shared_secret", kJiraSecret}});
        add(31, "jira", "jira-no-secret", {});
        add(40, "jira_server", "js-1", {{"webhook_secret", kJiraServerSecret}});
        add(41, "jira_server", "js-no-secret", {});
        add(300, "msteams", "19:team@thread.skype", {});
        add(301, "msteams", "tenant-1", {});
        add(50, "vsts", "c12d0eb8-e382-443b-9f9c-c52cba5014c2", {});
        add(60, "discord", "900000000000000001", {});
        add(70, "discord", "900000000000000002", {}, "disabled");
    }
    std::optional<Integration> integration_by_external_id(const std::string& provider,
                                                          const std::string& external_id) override {
        for (const auto& i : integrations_)
            if (i.provider == provider && i.external_id == external_id) return i;
        return std::nullopt;
    }
    std::optional<Integration> integration_by_id(std::int64_t id) override {
        for (const auto& i : integrations_)
            if (i.id == id) return i;
        return std::nullopt;
    }
    std::optional<std::string> organization_region(std::int64_t organization_id) override {
        if (organization_id == 7) return "us";
        if (organization_id == 8) return "de";
        return std::nullopt;
    }

private:
    void add(std::int64_t id, std::string provider, std::string external_id, boost::json::object metadata,
             std::string status = "active") {
        integrations_.push_back({id, std::move(provider), std::move(external_id), std::move(status), std::move(metadata)});
    }
    std::vector<Integration> integrations_;
};

inline Request request_from(std::string_view in, std::string_view segment) {
    auto take_line = [&in]() {
        auto nl = in.find('\n');
        auto line = in.substr(0, nl);
        in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        return line;
    };
    Request r;
    auto first = take_line();
    auto sp = first.find(' ');
    r.method = std::string(first.substr(0, sp));
    r.target = "/extensions/" + std::string(segment) + "/" +
               std::string(sp == std::string_view::npos ? std::string_view{} : first.substr(sp + 1));
    while (!in.empty()) {
        auto line = take_line();
        if (line.empty()) break;
        auto colon = line.find(':');
        auto value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    }
    r.body = std::string(in);
    return r;
}

inline void check(bool ok) {
    if (!ok) __builtin_trap();
}

inline void check_decision(const Decision& d, std::string_view provider) {
    static const int allowed[] = {200, 202, 204, 400, 401, 404, 405};
    bool known = false;
    for (int s : allowed) known = known || s == d.response.status;
    check(known);
    check(!d.reason.empty());
    if (d.store) {
        check(d.reason == "stored");
        check(d.response.status >= 200 && d.response.status < 300);
        check(d.mailbox.substr(0, provider.size() + 1) == std::string(provider) + ":");
        check(d.integration_id.has_value() != d.region.has_value());
    } else {
        check(d.reason != "stored");
        if (d.response.status >= 400) check(d.reason != "control");
    }
}

// Runs the provider's parser on the input twice, without and with the optional provider secrets,
// as the router would (subpath = path below /extensions/{segment}/).
inline int run(std::string_view provider_name, std::string_view segment, const std::uint8_t* data, std::size_t size) {
    static FuzzDirectory dir;
    static const config::Config plain;
    static const config::Config secured = [] {
        config::Config c;
        c.provider.github_webhook_secret = std::string(kGithubSecret);
        c.provider.slack_signing_secret = std::string(kSlackSecret);
        c.provider.discord_public_key = std::string(kDiscordPublicKey);
        return c;
    }();
    const ingress::Provider* provider = ingress::find_provider(provider_name);
    check(provider != nullptr);

    Request req = request_from(std::string_view(reinterpret_cast<const char*>(data), size), segment);
    std::string_view path = req.path();
    std::string_view subpath = path.substr(std::string_view("/extensions/").size() + segment.size() + 1);
    for (const config::Config* cfg : {&plain, &secured}) {
        ingress::Context ctx{dir, *cfg, [] { return std::chrono::system_clock::time_point(std::chrono::seconds(kNow)); }};
        check_decision(provider->parse(req, subpath, ctx), provider_name);
    }
    return 0;
}

}  // namespace outboxd::fuzz
