// Routing of /extensions/{provider}/… to a parser, then region resolution and the store. The
// rule that makes webhooks transactional lives here: the answer is sent only after COMMIT.
#include "outboxd/ingress/router.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

namespace outboxd::ingress {
namespace {
constexpr std::string_view kPrefix = "/extensions/";

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
        i += n;
    }
    return true;
}
}  // namespace

Routed Router::handle(const Request& req) {
    auto t0 = std::chrono::steady_clock::now();
    Routed out = route(req);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    metrics_.ingress_requests.with({out.provider, std::to_string(out.response.status)}).inc();
    metrics_.ingress_duration.with({out.provider}).observe(secs);
    if (out.reason != "stored" && out.reason != "control")
        metrics_.ingress_rejected.with({out.provider, out.reason}).inc();
    if (out.response.status >= 400 || out.reason == "no_active_organization")
        spdlog::info("ingress: refused provider={} status={} reason={} path=\"{}\"", out.provider,
                     out.response.status, out.reason, std::string(req.path()));
    return out;
}

Routed Router::route(const Request& req) {
    Routed out;
    out.provider = "unknown";
    auto path = req.path();
    if (path.substr(0, kPrefix.size()) != kPrefix) {
        out.response = not_found().response;
        out.reason = "not_found";
        return out;
    }
    auto rest = path.substr(kPrefix.size());
    auto slash = rest.find('/');
    std::string name(rest.substr(0, slash));
    std::string_view sub = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    for (auto& c : name)
        if (c == '-') c = '_';
    const Provider* provider = find_provider(name);
    if (!provider) {
        out.response = not_found().response;
        out.reason = "unknown_provider";
        return out;
    }
    out.provider = provider->name;

    // Stored headers and paths are JSON text in the database: refuse what is not UTF-8 up front.
    bool headers_ok = valid_utf8(req.target);
    for (const auto& [k, v] : req.headers) headers_ok = headers_ok && valid_utf8(k) && valid_utf8(v);
    if (!headers_ok) {
        out.response = {400, "headers or path are not valid UTF-8\n", "text/plain"};
        out.reason = "bad_encoding";
        return out;
    }

    auto lease = pool_.acquire(std::chrono::seconds(2));
    if (!lease) {
        metrics_.db_pool_timeouts.get().inc();
        out.response = {503, "database busy, retry later\n", "text/plain"};
        out.reason = "db_busy";
        return out;
    }
    Decision d;
    std::vector<std::string> regions;
    try {
        if (!(*lease)->ok()) (*lease)->reset();
        PgDirectory dir(**lease);
        auto cfg = live_.get();  // provider secrets may change on SIGHUP
        Context ctx{dir, *cfg};
        d = provider->parse(req, sub, ctx);
        if (d.store) {
            if (d.region) regions.push_back(*d.region);
            else if (d.integration_id) regions = active_regions(**lease, *d.integration_id);
            if (d.fanout == Fanout::first_region && regions.size() > 1) regions.resize(1);
        }
    } catch (const db::Error& e) {
        metrics_.db_errors.with({"ingress"}).inc();
        spdlog::error("ingress: lookup failed provider={} sqlstate={} error=\"{}\"", out.provider, e.sqlstate(), e.what());
        out.response = {503, "database unavailable, retry later\n", "text/plain"};
        out.reason = "db_error";
        return out;
    }
    lease.reset();

    out.response = d.response;
    out.reason = d.reason;
    if (!d.store) return out;
    if (regions.empty()) {
        // The provider must not retry forever for an integration nobody uses: 2xx, counted.
        out.reason = "no_active_organization";
        return out;
    }
    std::vector<outbox::NewRow> rows;
    auto headers = forwardable_headers(req.headers);
    for (const auto& region : regions) {
        outbox::NewRow r;
        r.region = region;
        r.mailbox = d.mailbox;
        r.provider = provider->name;
        r.integration_id = d.integration_id;
        r.method = req.method;
        r.path = req.target;
        r.headers = headers;
        r.body = req.body;
        rows.push_back(std::move(r));
    }
    out.rows = rows.size();
    switch (writer_.write_and_wait(std::move(rows))) {
        case outbox::WriteStatus::committed:
            out.reason = "stored";
            return out;
        case outbox::WriteStatus::shutting_down:
            out.response = {503, "shutting down, retry later\n", "text/plain"};
            out.reason = "shutting_down";
            return out;
        case outbox::WriteStatus::failed:
            break;
    }
    out.response = {503, "could not persist the webhook, retry later\n", "text/plain"};
    out.reason = "db_error";
    return out;
}

}  // namespace outboxd::ingress
