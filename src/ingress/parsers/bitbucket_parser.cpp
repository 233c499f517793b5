// Bitbucket: Sentry's webhook URL names the organization, not an integration, so the region comes
// straight from organization_mapping and the body is forwarded unread. Mailbox bitbucket:{organization_id}.
#include <charconv>

#include "outboxd/ingress/parser.hpp"
#include "parsers.hpp"

namespace outboxd::ingress {

Decision parse_bitbucket(const Request& req, std::string_view subpath, Context& ctx) {
    constexpr std::string_view prefix = "organizations/";
    constexpr std::string_view suffix = "/webhook";
    std::string_view rest = subpath;
    if (rest.substr(0, prefix.size()) != prefix) return not_found();
    rest.remove_prefix(prefix.size());
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    if (rest.size() < suffix.size() || rest.substr(rest.size() - suffix.size()) != suffix) return not_found();
    auto org_text = rest.substr(0, rest.size() - suffix.size());
    if (org_text.find('/') != std::string_view::npos) return not_found();
    if (auto d = require_post(req)) return *d;

    std::int64_t org = 0;
    auto [end, ec] = std::from_chars(org_text.data(), org_text.data() + org_text.size(), org);
    if (ec != std::errc{} || end != org_text.data() + org_text.size())
        return Decision::reply(400, "bad_organization", "organization id is not an integer\n", "text/plain");

    auto region = ctx.directory.organization_region(org);
    if (!region)
        return Decision::reply(400, "no_organization", "no organization " + std::to_string(org) + "\n",
                               "text/plain");

    Decision d;
    d.store = true;
    d.mailbox = "bitbucket:" + std::to_string(org);
    d.region = std::move(*region);
    d.fanout = Fanout::first_region;
    return d;
}

}  // namespace outboxd::ingress
