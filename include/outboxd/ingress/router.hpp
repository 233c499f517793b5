// The ingress as a plain function of a request: route to the provider's parser, resolve the
// destination regions, store one row per region (group commit) and answer. No sockets here.
#pragma once
#include <memory>

#include "outboxd/common/log_throttle.hpp"
#include "outboxd/config/config.hpp"
#include "outboxd/db/connection.hpp"
#include "outboxd/ingress/directory_cache.hpp"
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

// The metrics label of the provider a request target names ("github" for
// /extensions/github/webhook/?x), or "unknown": for requests refused before they are routed.
std::string provider_label(std::string_view target);

class Router {
public:
    // `cache` (optional) serves integration and region lookups from memory; see directory_cache.hpp.
    Router(config::LiveConfig& live, db::Pool& pool, outbox::OutboxWriter& writer, metrics::Metrics& m,
           DirectoryCache* cache = nullptr)
        : live_(live), pool_(pool), writer_(writer), metrics_(m), cache_(cache) {}

    // Blocking (database lookups and the commit): run it off the I/O threads.
    Routed handle(const Request& req);
    // The fast path, for the I/O threads: when every lookup the webhook needs is cached, routes it
    // without blocking and calls `done` once answered (after COMMIT, from the writer's thread, for
    // stored webhooks). Returns false, having done nothing, when something is not cached: then
    // call handle() off the I/O threads.
    bool handle_cached(const Request& req, std::function<void(Routed)> done);

private:
    struct Target {
        const Provider* provider = nullptr;
        std::string_view sub;  // the path below /extensions/{provider}/
    };
    struct Prepared {
        Routed routed;
        std::vector<outbox::NewRow> rows;  // empty: answer routed.response, store nothing
    };
    // Answers what needs no parser (unknown paths and providers, bad encodings), else names the
    // provider in `t`.
    std::optional<Routed> precheck(const Request& req, Target& t);
    Prepared prepare(const Request& req, const Target& t, Directory& dir,
                     const std::function<std::vector<std::string>(std::int64_t)>& regions_of);
    void stored(Routed& out, outbox::WriteStatus status);
    void finish(std::string_view path, const Routed& out, std::chrono::steady_clock::time_point t0);
    Routed route(const Request& req);
    config::LiveConfig& live_;
    db::Pool& pool_;
    outbox::OutboxWriter& writer_;
    metrics::Metrics& metrics_;
    DirectoryCache* cache_;
    // Refusals are logged at most once a second per provider and reason (a stream of bad
    // requests wrote 270,000 lines a minute); the metric counts every one.
    LogThrottle refusal_log_;
};

}  // namespace outboxd::ingress
