// Azure DevOps (VSTS): service hooks name the organization's collection in the body; the
// Shared-Secret header is forwarded untouched and checked by the region. Mailbox vsts:{integration_id}.
#include <boost/json.hpp>

#include "outboxd/ingress/parser.hpp"
#include "parsers.hpp"

namespace outboxd::ingress {

Decision parse_vsts(const Request& req, std::string_view subpath, Context& ctx) {
    if (subpath != "issue-updated/" && subpath != "issue-updated") return not_found();
    if (auto d = require_post(req)) return *d;
    boost::system::error_code ec;
    ScratchJson json;
    auto doc = json.parse(req.body, ec);
    if (ec) return Decision::reply(400, "bad_json", "body is not valid JSON\n", "text/plain");
    const boost::json::value* id = nullptr;
    if (const auto* root = doc.if_object())
        if (const auto* rc = root->if_contains("resourceContainers"); rc && rc->is_object())
            if (const auto* col = rc->as_object().if_contains("collection"); col && col->is_object())
                id = col->as_object().if_contains("id");
    if (!id || !id->is_string() || id->as_string().empty())
        return Decision::reply(400, "bad_shape", "resourceContainers.collection.id missing\n", "text/plain");
    std::string external_id(id->as_string());

    auto integ = ctx.directory.integration_by_external_id("vsts", external_id);
    if (!integ || integ->status != "active") return no_integration("vsts collection " + external_id);
    return Decision::store_for(*integ, "vsts");
}

}  // namespace outboxd::ingress
