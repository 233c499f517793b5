// The ingress as a plain function of a request: route to the provider's parser, resolve the
// destination regions, store one row per region (group commit) and answer. No sockets here.
#pragma once
#include <memory>

#include "outboxd/config/config.hpp"
#include "outboxd/db/connection.hpp"
#include "outboxd/ingress/parser.hpp"
#include "outboxd/metrics/metrics.hpp"
#include "outboxd/outbox/outbox_writer.hpp"

namespace outboxd::ingress {

// Regions of an integration's active organizations, sorted and distinct.
std::vector<std::string> active_regions(db::Connection& conn, std::int64_t integration_id);

// Directory over Postgres (one connection, borrowed for one request).
class PgDirectory : public Directory {
public:
    explicit PgDirectory(db::Connection& c) : conn_(c) {}
    std::optional<Integration> integration_by_external_id(const std::string& provider,
                                                          const std::string& external_id) override;
    std::optional<Integration> integration_by_id(std::int64_t id) override;
    std::optional<std::string> organization_region(std::int64_t organization_id) override;
    db::Connection& connection() { return conn_; }

private:
    db::Connection& conn_;
};

struct Routed {
    Response response;
    std::string provider;  // metrics label ("unknown" when none matched)
    std::string reason;
    std::size_t rows = 0;
};

class Router {
public:
    Router(config::LiveConfig& live, db::Pool& pool, outbox::OutboxWriter& writer, metrics::Metrics& m)
        : live_(live), pool_(pool), writer_(writer), metrics_(m) {}

    // Blocking (database lookups and the commit): run it off the I/O threads.
    Routed handle(const Request& req);

private:
    Routed route(const Request& req);
    config::LiveConfig& live_;
    db::Pool& pool_;
    outbox::OutboxWriter& writer_;
    metrics::Metrics& metrics_;
};

}  // namespace outboxd::ingress
