// GitHub: the App installation id in the JSON body names the integration; `installation` events
// are lifecycle callbacks answered here. Mailbox github:{integration_id}.
#include <boost/json.hpp>

#include "outboxd/ingress/parser.hpp"
#include "parsers.hpp"

namespace outboxd::ingress {

Decision parse_github(const Request& req, std::string_view subpath, Context& ctx) {
    if (subpath != "webhook/" && subpath != "webhook") return not_found();
    if (auto d = require_post(req)) return *d;

    const auto& secret = ctx.config.provider.github_webhook_secret;
    if (!secret.empty()) {
        auto sig = req.header("X-Hub-Signature-256");
        std::string want = "sha256=" + hmac_sha256_hex(secret, req.body);
        if (!sig || !constant_time_equal(*sig, want))
            return Decision::reply(401, "bad_signature", "X-Hub-Signature-256 does not match\n", "text/plain");
    }

    auto event = req.header("X-GitHub-Event");
    if (event && *event == "installation") return Decision::reply(204, "control");
    boost::system::error_code ec;
    ScratchJson json;
    auto doc = json.parse(req.body, ec);
    if (ec) return Decision::reply(400, "bad_json", "body is not valid JSON\n", "text/plain");
    if (!doc.is_object()) return Decision::reply(400, "bad_shape", "body is not a JSON object\n", "text/plain");
    const auto* inst = doc.as_object().if_contains("installation");
    const auto* id = (inst && inst->is_object()) ? inst->as_object().if_contains("id") : nullptr;
    std::string external_id;
    if (id && id->is_int64()) external_id = std::to_string(id->as_int64());
    else if (id && id->is_uint64()) external_id = std::to_string(id->as_uint64());
    else if (id && id->is_string()) external_id = std::string(id->as_string());
    else return Decision::reply(400, "bad_shape", "installation.id missing\n", "text/plain");

    auto integ = ctx.directory.integration_by_external_id("github", external_id);
    if (!integ || integ->status != "active") return no_integration("github installation " + external_id);
    return Decision::store_for(*integ, "github");
}

}  // namespace outboxd::ingress
