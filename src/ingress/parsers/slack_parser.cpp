// Slack: events, slash commands, interactive actions and options loads each carry the workspace
// (team) id in a different place; the signing secret, when configured, is checked before anything
// is read, the URL-verification handshake included. Mailbox slack:{integration_id}.
#include <boost/json.hpp>
#include <charconv>

#include "outboxd/ingress/parser.hpp"
#include "parsers.hpp"

namespace outboxd::ingress {
namespace {

// Slack's documented replay window.
constexpr std::int64_t kMaxSkewSeconds = 5 * 60;

std::optional<Decision> check_signature(const Request& req, Context& ctx) {
    const auto& secret = ctx.config.provider.slack_signing_secret;
    if (secret.empty()) return std::nullopt;
    auto ts = req.header("X-Slack-Request-Timestamp");
    auto sig = req.header("X-Slack-Signature");
    if (!ts || !sig)
        return Decision::reply(401, "bad_signature", "X-Slack-Signature or timestamp missing\n", "text/plain");
    std::string base = "v0:";
    base.append(*ts).append(":").append(req.body);
    if (!constant_time_equal(*sig, "v0=" + hmac_sha256_hex(secret, base)))
        return Decision::reply(401, "bad_signature", "X-Slack-Signature does not match\n", "text/plain");
    // Checked after the MAC so that the timestamp is known to be Slack's; a replayed request is
    // refused even though it is correctly signed.
    std::int64_t when = 0;
    auto [end, ec] = std::from_chars(ts->data(), ts->data() + ts->size(), when);
    auto now = std::chrono::duration_cast<std::chrono::seconds>(ctx.now().time_since_epoch()).count();
    if (ec != std::errc{} || end != ts->data() + ts->size() || when < now - kMaxSkewSeconds ||
        when > now + kMaxSkewSeconds)
        return Decision::reply(401, "expired", "X-Slack-Request-Timestamp outside the 5 minute window\n",
                               "text/plain");
    return std::nullopt;
}

std::optional<std::string> form_field(std::string_view body, std::string_view name) {
    for (auto& [k, v] : parse_query(body, true))
        if (k == name) return v;
    return std::nullopt;
}

const boost::json::value* member(const boost::json::value* v, std::string_view key) {
    if (!v || !v->is_object()) return nullptr;
    return v->as_object().if_contains(key);
}

Decision bad_json() { return Decision::reply(400, "bad_json", "body is not valid JSON\n", "text/plain"); }
Decision bad_shape(std::string what) { return Decision::reply(400, "bad_shape", what + " missing\n", "text/plain"); }

}  // namespace

Decision parse_slack(const Request& req, std::string_view subpath, Context& ctx) {
    std::string_view route = subpath;
    if (!route.empty() && route.back() == '/') route.remove_suffix(1);
    if (route != "event" && route != "commands" && route != "action" && route != "options-load") return not_found();
    if (auto d = require_post(req)) return *d;
    if (auto d = check_signature(req, ctx)) return *d;

    std::string team_id;
    if (route == "event") {
        ScratchJson json;
        boost::system::error_code ec;
        auto doc = json.parse(req.body, ec);
        if (ec) return bad_json();
        if (!doc.is_object()) return Decision::reply(400, "bad_shape", "body is not a JSON object\n", "text/plain");
        const auto* type = member(&doc, "type");
        if (type && type->is_string() && type->as_string() == "url_verification") {
            const auto* challenge = member(&doc, "challenge");
            // Echoed as given, whatever its JSON type, as Sentry's handler does (Slack sends a string).
            if (!challenge) return bad_shape("challenge");
            boost::json::object answer;
            answer["challenge"] = *challenge;
            return Decision::json_reply(200, "control", boost::json::serialize(answer));
        }
        const auto* team = member(&doc, "team_id");
        if (!team || !team->is_string()) return bad_shape("team_id");
        team_id = std::string(team->as_string());
    } else if (route == "commands") {
        auto team = form_field(req.body, "team_id");
        if (!team) return bad_shape("team_id");
        team_id = std::move(*team);
    } else {
        auto payload = form_field(req.body, "payload");
        if (!payload) return bad_shape("payload");
        ScratchJson json;
        boost::system::error_code ec;
        auto doc = json.parse(*payload, ec);
        if (ec) return bad_json();
        const auto* team = member(member(&doc, "team"), "id");
        if (!team || !team->is_string()) return bad_shape("payload team.id");
        team_id = std::string(team->as_string());
    }
    if (team_id.empty()) return bad_shape("team id");

    auto integ = ctx.directory.integration_by_external_id("slack", team_id);
    if (!integ || integ->status != "active") return no_integration("slack team " + team_id);
    // An interaction may concern any organization sharing the workspace; the others are answered
    // by one region.
    return Decision::store_for(*integ, "slack", route == "action" ? Fanout::every_region : Fanout::first_region);
}

}  // namespace outboxd::ingress
