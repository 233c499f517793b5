// GitLab: the integration is named by the X-Gitlab-Token header Sentry asks users to configure,
// "instance:group:secret", so the body never needs parsing. Mailbox gitlab:{integration_id}.
#include <boost/json.hpp>

#include "outboxd/ingress/parser.hpp"
#include "parsers.hpp"

namespace outboxd::ingress {

Decision parse_gitlab(const Request& req, std::string_view subpath, Context& ctx) {
    if (subpath != "webhook/" && subpath != "webhook") return not_found();
    if (auto d = require_post(req)) return *d;

    auto token = req.header("X-Gitlab-Token");
    if (!token) return Decision::reply(400, "missing_token", "X-Gitlab-Token missing\n", "text/plain");
    auto first = token->find(':');
    auto second = first == std::string_view::npos ? first : token->find(':', first + 1);
    // Exactly three parts: a secret containing ':' would make the split ambiguous.
    if (second == std::string_view::npos || token->find(':', second + 1) != std::string_view::npos)
        return Decision::reply(400, "bad_token", "X-Gitlab-Token is not instance:group:secret\n", "text/plain");
    std::string external_id(token->substr(0, second));
    auto secret = token->substr(second + 1);

    auto integ = ctx.directory.integration_by_external_id("gitlab", external_id);
    if (!integ || integ->status != "active") return no_integration("gitlab " + external_id);

    // Integrations installed before Sentry stored a secret have none; then the token's secret
    // part is not evidence of anything and the region decides.
    // Set means anything but null or "": a secret the product stored as a number or an object
    // cannot be compared, and skipping the check would let any token in.
    const auto* want = integ->metadata.if_contains("webhook_secret");
    bool set = want && !want->is_null() && !(want->is_string() && want->as_string().empty());
    if (set && !(want->is_string() && constant_time_equal(secret, std::string_view(want->as_string()))))
        return Decision::reply(401, "bad_signature", "X-Gitlab-Token secret does not match\n", "text/plain");

    return Decision::store_for(*integ, "gitlab");
}

}  // namespace outboxd::ingress
