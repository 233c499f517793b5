// Jira Server: the webhook URL Sentry registers ends in a JWT naming the integration (claim `id`)
// signed with that integration's webhook secret; issue updates without a changelog carry nothing
// the regions act on and are acknowledged here. Mailbox jira_server:{integration_id}.
#include <boost/json.hpp>

#include "jwt.hpp"
#include "outboxd/ingress/parser.hpp"
#include "parsers.hpp"

namespace outboxd::ingress {
namespace {

// Python truthiness, which is what Sentry's `if not data.get("changelog")` tests.
bool empty_value(const boost::json::value* v) {
    if (!v || v->is_null()) return true;
    if (const auto* o = v->if_object()) return o->empty();
    if (const auto* a = v->if_array()) return a->empty();
    if (const auto* s = v->if_string()) return s->empty();
    if (const auto* b = v->if_bool()) return !*b;
    if (v->is_int64()) return v->as_int64() == 0;
    if (v->is_uint64()) return v->as_uint64() == 0;
    return v->as_double() == 0;
}

}  // namespace

Decision parse_jira_server(const Request& req, std::string_view subpath, Context& ctx) {
    constexpr std::string_view prefix = "issue-updated/";
    if (subpath.substr(0, prefix.size()) != prefix) return not_found();
    std::string_view compact = subpath.substr(prefix.size());
    if (!compact.empty() && compact.back() == '/') compact.remove_suffix(1);
    if (compact.empty() || compact.find('/') != std::string_view::npos) return not_found();
    if (auto d = require_post(req)) return *d;

    // The claims are read before the signature is checked: only the integration they name knows
    // the key. Nothing is trusted until verify_hs256 below.
    auto token = jwt::decode(compact);
    if (!token) return Decision::reply(400, "bad_token", "the URL token is not a JWT\n", "text/plain");
    auto id = jwt::string_claim(*token, "id");
    if (!id || id->empty()) return Decision::reply(400, "bad_token", "the URL token has no id\n", "text/plain");

    auto integ = ctx.directory.integration_by_external_id("jira_server", *id);
    if (!integ || integ->status != "active") return no_integration("jira_server " + *id);
    const auto* secret = integ->metadata.if_contains("webhook_secret");
    if (!secret || !secret->is_string() || secret->as_string().empty())
        return Decision::reply(400, "no_secret", "the jira_server integration has no webhook_secret\n", "text/plain");
    if (!jwt::verify_hs256(*token, std::string_view(secret->as_string())))
        return Decision::reply(401, "bad_signature", "the URL token signature does not verify\n", "text/plain");
    switch (jwt::check_expiry(*token, ctx.now())) {
        case jwt::Expiry::fresh: break;
        case jwt::Expiry::expired: return Decision::reply(401, "expired", "the URL token has expired\n", "text/plain");
        case jwt::Expiry::malformed:
            return Decision::reply(401, "bad_exp", "the URL token's exp is not a number of seconds\n", "text/plain");
    }
    boost::system::error_code ec;
    ScratchJson json;
    auto doc = json.parse(req.body, ec);
    if (ec) return Decision::reply(400, "bad_json", "body is not valid JSON\n", "text/plain");
    if (!doc.is_object()) return Decision::reply(400, "bad_shape", "body is not a JSON object\n", "text/plain");
    if (empty_value(doc.as_object().if_contains("changelog"))) return Decision::reply(200, "control");

    return Decision::store_for(*integ, "jira_server");
}

}  // namespace outboxd::ingress
