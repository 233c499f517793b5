// Discord interactions: every request is Ed25519-signed by Discord (when the public key is
// configured it is checked before anything else, PINGs included); the guild names the integration
// and Discord gets the deferred "thinking" answer while a region does the work. Mailbox discord:{integration_id}.
#include <boost/json.hpp>

#include "outboxd/ingress/parser.hpp"
#include "parsers.hpp"

namespace outboxd::ingress {
namespace {

// Interaction types and the deferred, ephemeral answer, from Discord's interactions reference.
constexpr std::int64_t kPing = 1;
constexpr std::int64_t kApplicationCommand = 2;
constexpr std::int64_t kMessageComponent = 3;
constexpr std::string_view kDeferredEphemeral = R"({"type":5,"data":{"flags":64}})";

std::optional<Decision> check_signature(const Request& req, Context& ctx) {
    const auto& key_hex = ctx.config.provider.discord_public_key;
    if (key_hex.empty()) return std::nullopt;
    auto refuse = [] {
        return Decision::reply(401, "bad_signature", "X-Signature-Ed25519 does not verify\n", "text/plain");
    };
    auto key = hex_decode(key_hex);
    auto sig_hex = req.header("X-Signature-Ed25519");
    auto ts = req.header("X-Signature-Timestamp");
    if (!key || !sig_hex || !ts) return refuse();
    auto sig = hex_decode(*sig_hex);
    if (!sig) return refuse();
    std::string message(*ts);
    message += req.body;
    if (!ed25519_verify(*key, message, *sig)) return refuse();
    return std::nullopt;
}

}  // namespace

Decision parse_discord(const Request& req, std::string_view subpath, Context& ctx) {
    if (subpath != "interactions/" && subpath != "interactions") return not_found();
    if (auto d = require_post(req)) return *d;
    if (auto d = check_signature(req, ctx)) return *d;
    boost::system::error_code ec;
    ScratchJson json;
    auto doc = json.parse(req.body, ec);
    if (ec) return Decision::reply(400, "bad_json", "body is not valid JSON\n", "text/plain");
    const auto* root = doc.if_object();
    if (!root) return Decision::reply(400, "bad_shape", "body is not a JSON object\n", "text/plain");
    const auto* type = root->if_contains("type");
    std::int64_t t = type && type->is_int64() ? type->as_int64() : -1;
    if (t == kPing) return Decision::json_reply(200, "control", R"({"type":1})");
    if (t != kApplicationCommand && t != kMessageComponent)
        return Decision::reply(400, "bad_type", "unsupported interaction type\n", "text/plain");

    const auto* guild = root->if_contains("guild_id");
    if (!guild || !guild->is_string() || guild->as_string().empty())
        return Decision::reply(400, "bad_shape", "guild_id missing\n", "text/plain");
    std::string guild_id(guild->as_string());
    auto integ = ctx.directory.integration_by_external_id("discord", guild_id);
    if (!integ || integ->status != "active") return no_integration("discord guild " + guild_id);

    // A command is answered once; a button press may concern every organization on the guild.
    auto fanout = t == kApplicationCommand ? Fanout::first_region : Fanout::every_region;
    return Decision::store_for(*integ, "discord", fanout,
                               Response{200, std::string(kDeferredEphemeral), "application/json"});
}

}  // namespace outboxd::ingress
