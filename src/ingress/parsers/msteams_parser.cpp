// Microsoft Teams (Bot Framework activities): the integration is named by a card's payload, the
// team, or for personal chats the tenant; lifecycle and untyped activities are acknowledged here.
// The Bot Framework bearer token is forwarded, not checked. Mailbox msteams:{integration_id}.
#include <boost/json.hpp>
#include <charconv>

#include "outboxd/ingress/parser.hpp"
#include "parsers.hpp"

namespace outboxd::ingress {
namespace {

const boost::json::value* at(const boost::json::value* v, std::initializer_list<std::string_view> path) {
    for (auto key : path) {
        if (!v || !v->is_object()) return nullptr;
        v = v->as_object().if_contains(key);
    }
    return v;
}

// Python truthiness, which is what Sentry's "can the integration be inferred" test uses.
bool present(const boost::json::value* v) {
    if (!v || v->is_null()) return false;
    if (const auto* s = v->if_string()) return !s->empty();
    if (v->is_int64()) return v->as_int64() != 0;
    return true;
}

bool is_string(const boost::json::value* v, std::string_view want) {
    return v && v->is_string() && v->as_string() == want;
}

std::optional<std::int64_t> as_id(const boost::json::value* v) {
    if (!v) return std::nullopt;
    if (v->is_int64()) return v->as_int64();
    if (v->is_uint64()) return std::nullopt;  // beyond any bigserial
    if (!v->is_string()) return std::nullopt;
    std::string_view s = v->as_string();
    std::int64_t id = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
    if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return id;
}

bool usable(const std::optional<Integration>& integ) {
    return integ && integ->provider == "msteams" && integ->status == "active";
}

// The first candidate that names an active msteams integration wins, so a team unknown to us
// still resolves through its tenant (Sentry's personal-chat installations are per tenant).
std::optional<Integration> find_integration(const boost::json::value& doc, Directory& dir) {
    if (auto id = as_id(at(&doc, {"value", "payload", "integrationId"})))
        if (auto integ = dir.integration_by_id(*id); usable(integ)) return integ;
    for (const char* owner : {"team", "tenant"}) {
        const auto* ext = at(&doc, {"channelData", owner, "id"});
        if (!ext || !ext->is_string() || ext->as_string().empty()) continue;
        if (auto integ = dir.integration_by_external_id("msteams", std::string(ext->as_string())); usable(integ))
            return integ;
    }
    return std::nullopt;
}

}  // namespace

Decision parse_msteams(const Request& req, std::string_view subpath, Context& ctx) {
    if (subpath != "webhook/" && subpath != "webhook") return not_found();
    if (auto d = require_post(req)) return *d;
    boost::system::error_code ec;
    ScratchJson json;
    auto doc = json.parse(req.body, ec);
    if (ec) return Decision::reply(400, "bad_json", "body is not valid JSON\n", "text/plain");
    if (!doc.is_object()) return Decision::reply(400, "bad_shape", "body is not a JSON object\n", "text/plain");

    // The order of these rules is Sentry's: an activity that names no team (a bot added to a
    // personal chat, a conversation update) is the bot's business, answered here.
    if (!present(at(&doc, {"value", "payload", "integrationId"})) && !present(at(&doc, {"channelData", "team", "id"})))
        return Decision::reply(204, "control");
    const auto* type = at(&doc, {"type"});
    if (is_string(type, "installationUpdate") && is_string(at(&doc, {"action"}), "add"))
        return Decision::reply(204, "control");
    auto integ = find_integration(doc, ctx.directory);
    if (!integ) return no_integration("msteams activity");
    if (!type || is_string(type, "installationUpdate")) return Decision::reply(204, "control");

    return Decision::store_for(*integ, "msteams");
}

}  // namespace outboxd::ingress
