// Jira Cloud (Atlassian Connect): the webhook carries a JWT whose `iss` names the integration and
// whose HS256 signature and query-string hash (qsh) bind it to this very request, so a token
// lifted from one call cannot be replayed against another URL. Mailbox jira:{integration_id}.
#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <vector>

#include "jwt.hpp"
#include "outboxd/ingress/parser.hpp"
#include "parsers.hpp"

namespace outboxd::ingress {
namespace {

// RFC 3986: everything but the unreserved set is %XX, upper-case hex, as Atlassian hashes it.
std::string rfc3986(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        bool unreserved = (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' ||
                          u == '.' || u == '_' || u == '~';
        if (unreserved) {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 15]);
        }
    }
    return out;
}

std::optional<std::string> token_of(const Request& req) {
    if (auto auth = req.header("Authorization")) {
        constexpr std::string_view scheme = "JWT ";
        if (auth->substr(0, scheme.size()) == scheme) {
            auto t = auth->substr(scheme.size());
            while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
            if (!t.empty()) return std::string(t);
        }
    }
    for (auto& [k, v] : parse_query(req.query()))
        if (k == "jwt" && !v.empty()) return v;
    return std::nullopt;
}

Decision unauthorized(std::string reason, std::string_view why) {
    return Decision::reply(401, std::move(reason), std::string(why) + "\n", "text/plain");
}

}  // namespace

std::string jira_query_hash(std::string_view method, std::string_view path, std::string_view query) {
    // '+' is a space, as every Atlassian Connect library decodes a query before hashing it.
    std::map<std::string, std::vector<std::string>> params;  // sorted by name
    for (auto& [k, v] : parse_query(query, true))
        if (k != "jwt") params[k].push_back(v);
    std::string canonical_query;
    for (auto& [name, values] : params) {
        std::sort(values.begin(), values.end());
        if (!canonical_query.empty()) canonical_query += '&';
        canonical_query += rfc3986(name);
        canonical_query += '=';
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (i) canonical_query += ',';
            canonical_query += rfc3986(values[i]);
        }
    }
    std::string_view canonical_path = path;
    while (canonical_path.size() > 1 && canonical_path.back() == '/') canonical_path.remove_suffix(1);
    std::string request(method);
    request.append("&").append(canonical_path).append("&").append(canonical_query);
    return sha256_hex(request);
}

Decision parse_jira(const Request& req, std::string_view subpath, Context& ctx) {
    std::string_view route = subpath;
    if (!route.empty() && route.back() == '/') route.remove_suffix(1);
    if (route != "issue-updated" && route != "installed" && route != "uninstalled") return not_found();
    if (auto d = require_post(req)) return *d;
    // Lifecycle callbacks are signed with Atlassian's RS256 key, verified online by Sentry: out of
    // scope here, and nothing the regions need.
    if (route != "issue-updated") return Decision::reply(200, "control");

    auto compact = token_of(req);
    if (!compact) return Decision::reply(400, "missing_token", "no JWT in Authorization or ?jwt=\n", "text/plain");
    auto token = jwt::decode(*compact);
    if (!token) return Decision::reply(400, "bad_token", "the JWT cannot be decoded\n", "text/plain");
    auto iss = jwt::string_claim(*token, "iss");
    if (!iss || iss->empty()) return Decision::reply(400, "bad_token", "the JWT has no iss\n", "text/plain");

    auto integ = ctx.directory.integration_by_external_id("jira", *iss);
    if (!integ || integ->status != "active") return no_integration("jira client " + *iss);
    const auto* secret = integ->metadata.if_contains("shared_secret");
    if (!secret || !secret->is_string() || secret->as_string().empty())
        return Decision::reply(400, "no_secret", "the jira integration has no shared_secret\n", "text/plain");

    if (!jwt::verify_hs256(*token, std::string_view(secret->as_string())))
        return unauthorized("bad_signature", "the JWT signature does not verify");
    switch (jwt::check_expiry(*token, ctx.now())) {
        case jwt::Expiry::fresh: break;
        case jwt::Expiry::expired: return unauthorized("expired", "the JWT has expired");
        case jwt::Expiry::malformed: return unauthorized("bad_exp", "the JWT exp is not a number of seconds");
    }
    auto qsh = jwt::string_claim(*token, "qsh");
    if (!qsh || !constant_time_equal(*qsh, jira_query_hash("POST", req.path(), req.query())))
        return unauthorized("bad_qsh", "the JWT qsh does not match this request");

    return Decision::store_for(*integ, "jira");
}

}  // namespace outboxd::ingress
