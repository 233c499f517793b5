// Routing of /extensions/{provider}/… to a parser, then region resolution and the store. The
// rule that makes webhooks transactional lives here: the answer is sent only after COMMIT.
#include "outboxd/ingress/router.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

namespace outboxd::ingress {
namespace {
constexpr std::string_view kPrefix = "/extensions/";

}  // namespace

void Router::finish(std::string_view path, const Routed& out, std::chrono::steady_clock::time_point t0) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    metrics_.ingress_requests.with({out.provider, std::to_string(out.response.status)}).inc();
    metrics_.ingress_duration.with({out.provider}).observe(secs);
    if (out.reason != "stored" && out.reason != "control")
        metrics_.ingress_rejected.with({out.provider, out.reason}).inc();
    if (out.response.status >= 400 || out.reason == "no_active_organization") {
        if (auto held = refusal_log_.admit(out.provider + '/' + out.reason))
            spdlog::info("ingress: refused provider={} status={} reason={} path=\"{}\" suppressed={}", out.provider,
                         out.response.status, out.reason, std::string(path), *held);
    }
}

Routed Router::handle(const Request& req) {
    auto t0 = std::chrono::steady_clock::now();
    Routed out = route(req);
    finish(req.path(), out, t0);
    return out;
}

bool Router::handle_cached(const Request& req, std::function<void(Routed)> done) {
    if (!cache_ || !cache_->enabled()) return false;
    auto t0 = std::chrono::steady_clock::now();
    Target t;
    if (auto early = precheck(req, t)) {
        finish(req.path(), *early, t0);
        done(std::move(*early));
        return true;
    }
    Prepared p;
    CachedOnlyDirectory dir(*cache_);
    try {
        p = prepare(req, t, dir, [this](std::int64_t id) {
            if (auto hit = cache_->active_regions(id)) return *hit;
            throw CacheMiss{};
        });
    } catch (const CacheMiss&) {
        metrics_.directory_lookups.with({"miss"}).inc();
        return false;
    }
    if (p.rows.empty() && dir.consulted()) {
        // A refusal (unknown or disabled integration, no active organization) is never answered
        // from memory: the change that lifts it may have committed a moment ago, before its
        // NOTIFY arrived, and the provider may not send the webhook again.
        metrics_.directory_lookups.with({"recheck"}).inc();
        return false;
    }
    metrics_.directory_lookups.with({"hit"}).inc();
    if (p.rows.empty()) {
        finish(req.path(), p.routed, t0);
        done(std::move(p.routed));
        return true;
    }
    // The answer waits for COMMIT, but no thread does: the writer calls back after its flush.
    auto routed = std::make_shared<Routed>(std::move(p.routed));
    writer_.write_async(std::move(p.rows), [this, routed, path = std::string(req.path()), t0,
                                             done = std::move(done)](outbox::WriteStatus s) {
        stored(*routed, s);
        finish(path, *routed, t0);
        done(std::move(*routed));
    });
    return true;
}

void Router::stored(Routed& out, outbox::WriteStatus status) {
    switch (status) {
        case outbox::WriteStatus::committed:
            out.reason = "stored";
            return;
        case outbox::WriteStatus::shutting_down:
            out.response = {503, "shutting down, retry later\n", "text/plain"};
            out.reason = "shutting_down";
            return;
        case outbox::WriteStatus::failed:
            break;
    }
    out.response = {503, "could not persist the webhook, retry later\n", "text/plain"};
    out.reason = "db_error";
}

namespace {
// /extensions/{provider}/{sub}: the provider it names (`-` read as `_`; null when unknown) and the
// rest of the path. False when the path is not under /extensions/ at all.
bool split_extension_path(std::string_view path, const Provider*& provider, std::string_view& sub) {
    if (path.substr(0, kPrefix.size()) != kPrefix) return false;
    auto rest = path.substr(kPrefix.size());
    auto slash = rest.find('/');
    std::string name(rest.substr(0, slash));
    for (auto& c : name)
        if (c == '-') c = '_';
    provider = find_provider(name);
    sub = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    return true;
}
}  // namespace

std::string provider_label(std::string_view target) {
    const Provider* p = nullptr;
    std::string_view sub;
    split_extension_path(target.substr(0, target.find('?')), p, sub);
    return p ? std::string(p->name) : "unknown";
}

std::optional<Routed> Router::precheck(const Request& req, Target& t) {
    Routed out;
    out.provider = "unknown";
    if (!split_extension_path(req.path(), t.provider, t.sub)) {
        out.response = not_found().response;
        out.reason = "not_found";
        return out;
    }
    if (!t.provider) {
        out.response = not_found().response;
        out.reason = "unknown_provider";
        return out;
    }
    out.provider = t.provider->name;

    // Stored headers and paths are JSON text in the database: refuse what is not UTF-8 up front.
    bool headers_ok = valid_utf8(req.target);
    for (const auto& [k, v] : req.headers) headers_ok = headers_ok && valid_utf8(k) && valid_utf8(v);
    if (!headers_ok) {
        out.response = {400, "headers or path are not valid UTF-8\n", "text/plain"};
        out.reason = "bad_encoding";
        return out;
    }
    return std::nullopt;
}

Router::Prepared Router::prepare(const Request& req, const Target& t, Directory& dir,
                                 const std::function<std::vector<std::string>(std::int64_t)>& regions_of) {
    Prepared p;
    Routed& out = p.routed;
    out.provider = t.provider->name;
    const Provider* provider = t.provider;
    const std::string_view sub = t.sub;
    auto cfg = live_.get();  // provider secrets may change on SIGHUP
    Context ctx{dir, *cfg};
    Decision d = provider->parse(req, sub, ctx);
    std::vector<std::string> regions;
    if (d.store) {
        if (d.region) regions.push_back(*d.region);
        else if (d.integration_id) regions = regions_of(*d.integration_id);
        if (d.fanout == Fanout::first_region && regions.size() > 1) regions.resize(1);
    }
    out.response = d.response;
    out.reason = d.reason;
    if (!d.store) return p;
    if (regions.empty()) {
        // The provider must not retry forever for an integration nobody uses: 2xx, counted.
        out.reason = "no_active_organization";
        return p;
    }
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
        p.rows.push_back(std::move(r));
    }
    out.rows = p.rows.size();
    return p;
}

Routed Router::route(const Request& req) {
    Target t;
    if (auto early = precheck(req, t)) return *early;
    std::string dial_error;
    auto lease = [&]() -> std::optional<db::Pool::Lease> {
        try {
            return pool_.acquire(std::chrono::seconds(2));  // may dial a new connection, and fail
        } catch (const db::Error& e) {
            dial_error = e.what();
            return std::nullopt;
        }
    }();
    if (!dial_error.empty()) {
        metrics_.db_errors.with({"ingress"}).inc();
        Routed out;
        out.provider = t.provider->name;
        spdlog::error("ingress: no database connection provider={} error=\"{}\"", out.provider, dial_error);
        out.response = {503, "database unavailable, retry later\n", "text/plain"};
        out.reason = "db_error";
        return out;
    }
    if (!lease) {
        metrics_.db_pool_timeouts.get().inc();
        Routed out;
        out.provider = t.provider->name;
        out.response = {503, "database busy, retry later\n", "text/plain"};
        out.reason = "db_busy";
        return out;
    }
    Prepared p;
    try {
        if (!(*lease)->alive()) (*lease)->reset();
        PgDirectory pg(**lease);
        std::optional<CachingDirectory> caching;
        Directory* dir = &pg;
        if (cache_) dir = &caching.emplace(pg, *cache_);
        db::Connection& conn = **lease;
        p = prepare(req, t, *dir, [this, &conn](std::int64_t id) {
            if (cache_) {
                auto gen = cache_->generation();
                auto regions = active_regions(conn, id);
                cache_->store_active_regions(gen, id, regions);
                return regions;
            }
            return active_regions(conn, id);
        });
    } catch (const db::Error& e) {
        metrics_.db_errors.with({"ingress"}).inc();
        Routed out;
        out.provider = t.provider->name;
        spdlog::error("ingress: lookup failed provider={} sqlstate={} error=\"{}\"", out.provider, e.sqlstate(), e.what());
        out.response = {503, "database unavailable, retry later\n", "text/plain"};
        out.reason = "db_error";
        return out;
    }
    lease.reset();
    if (p.rows.empty()) return std::move(p.routed);
    stored(p.routed, writer_.write_and_wait(std::move(p.rows)));
    return std::move(p.routed);
}

}  // namespace outboxd::ingress
