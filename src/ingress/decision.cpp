// Constructors of parser decisions and the shared refusals, so every parser answers alike.
#include "outboxd/ingress/parser.hpp"

namespace outboxd::ingress {

Decision Decision::reply(int status, std::string reason, std::string body, std::string content_type) {
    Decision d;
    d.response = Response{status, std::move(body), std::move(content_type)};
    d.reason = std::move(reason);
    return d;
}

Decision Decision::json_reply(int status, std::string reason, std::string json_body) {
    return reply(status, std::move(reason), std::move(json_body), "application/json");
}

Decision Decision::store_for(const Integration& integ, std::string provider, Fanout fanout, Response response) {
    Decision d;
    d.response = std::move(response);
    d.store = true;
    d.mailbox = provider + ":" + std::to_string(integ.id);
    d.integration_id = integ.id;
    d.fanout = fanout;
    return d;
}

Decision not_found() { return Decision::reply(404, "not_found", "not found\n", "text/plain"); }

Decision method_not_allowed() {
    return Decision::reply(405, "method_not_allowed", "only POST is accepted here\n", "text/plain");
}

std::optional<Decision> require_post(const Request& req) {
    if (req.method == "POST") return std::nullopt;
    return method_not_allowed();
}

Decision no_integration(const std::string& what) {
    return Decision::reply(400, "no_integration", "no active integration for " + what + "\n", "text/plain");
}

}  // namespace outboxd::ingress
