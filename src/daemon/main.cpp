// outboxd: `outboxd --config FILE [--role ingress|drain|all]` serves; `outboxd migrate --config
// FILE` applies the schema. Wires the components together and owns signals and systemd.
#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <csignal>
#include <iostream>
#include <optional>
#include <random>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "outboxd/common/log_throttle.hpp"
#include "outboxd/common/logging.hpp"
#include "outboxd/config/config.hpp"
#include "outboxd/db/connection.hpp"
#include "outboxd/db/migrations.hpp"
#include "outboxd/db/settings_advice.hpp"
#include "outboxd/drain/drainer.hpp"
#include "outboxd/http/client.hpp"
#include "outboxd/http/server.hpp"
#include "outboxd/ingress/router.hpp"
#include "outboxd/metrics/backlog_sampler.hpp"
#include "outboxd/metrics/metrics.hpp"
#include "outboxd/outbox/outbox_writer.hpp"
#include "outboxd/apps/app_hooks.hpp"

namespace asio = boost::asio;
using namespace outboxd;
using namespace std::chrono_literals;

namespace {

std::string instance_id() {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    std::random_device rd;
    char suffix[9];
    std::snprintf(suffix, sizeof suffix, "%08x", rd());
    return std::string(host) + ":" + std::to_string(getpid()) + ":" + suffix;
}

int run_migrate(const config::Config& cfg) {
    db::Connection conn(cfg.database.url, "outboxd-migrate");
    auto applied = db::migrate(conn);
    if (applied.empty()) std::cout << "schema up to date\n";
    for (const auto& v : applied) std::cout << "applied " << v << "\n";
    return 0;
}

bool database_ready(db::Pool& pool) {
    try {
        auto lease = pool.acquire(1s);
        if (!lease) return false;
        // A pooled session the server ended while idle (a restart, pg_terminate_backend) fails
        // its first statement although the database is fine: ask once more on a new session, or
        // a load balancer sees the daemon flap.
        for (int attempt = 0;; ++attempt) {
            try {
                if (!(*lease)->ok() || !(*lease)->alive()) (*lease)->reset();
                (*lease)->exec("SELECT 1");
                return true;
            } catch (const std::exception&) {
                if (attempt > 0) return false;
                (*lease)->reset();
            }
        }
    } catch (const std::exception&) {
        return false;
    }
}

ingress::Response text(int status, std::string body) { return {status, std::move(body), "text/plain"}; }

int serve(const std::string& config_path, config::LiveConfig& live, const std::string& role) {
    // Stop and reload signals wait until their handlers are installed, after the database probe
    // and the listeners: before, their default action killed the daemon (SIGTERM with status 143
    // and no log line, SIGHUP too). Threads started meanwhile inherit the block, so the main thread
    // takes them once it unblocks below.
    sigset_t control_signals;
    sigemptyset(&control_signals);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&control_signals, sig);
    pthread_sigmask(SIG_BLOCK, &control_signals, nullptr);

    const auto boot = live.get();
    const config::Config& cfg = *boot;  // keys that need a restart are read from here only
    bool ingress_role = role == "all" || role == "ingress";
    bool drain_role = role == "all" || role == "drain";
    metrics::Metrics m;
    m.build_info.with({OUTBOXD_VERSION}).set(1);

    unsigned io_threads = std::max(2u, std::thread::hardware_concurrency());
    asio::io_context ioc(static_cast<int>(io_threads));
    // Every in-flight shard run may hold a connection: keep that many idle per destination, or
    // connections (and TLS handshakes) churn under load. Made first so that an unusable
    // tls.ca_file stops start-up before anything else is touched.
    http::ClientOptions client_opts{cfg.tls.ca_file};
    client_opts.max_idle_per_destination = static_cast<std::size_t>(std::max(256, cfg.drain.concurrency));
    http::Client client(ioc, client_opts, &m);

    // Refuse to start against a database that was never migrated: a clear message beats a
    // stream of "relation does not exist".
    {
        std::optional<db::Connection> connected;
        try {
            connected.emplace(cfg.database.url, "outboxd-probe");
        } catch (const db::Error& e) {
            throw std::runtime_error(std::string("cannot connect to database.url: ") + e.what());
        }
        auto& probe = *connected;
        auto have = db::applied_versions(probe);
        auto want = db::embedded_migrations();
        if (have.size() < want.size())
            throw std::runtime_error("database schema is not up to date: run `outboxd migrate --config FILE`");
        try {
            for (const auto& advice : db::settings_advice(probe)) spdlog::warn("database: {}", advice);
        } catch (const std::exception& e) {
            spdlog::debug("database: settings not checked error=\"{}\"", e.what());
        }
    }

    asio::thread_pool blocking(64);
    db::Pool pool(cfg.database.url, cfg.database.pool_size, "outboxd-ingress");
    std::unique_ptr<outbox::OutboxWriter> writer;
    std::unique_ptr<ingress::Router> router;
    std::unique_ptr<ingress::DirectoryCache> directory_cache;
    std::unique_ptr<ingress::DirectoryListener> directory_listener;
    if (ingress_role) {
        writer = std::make_unique<outbox::OutboxWriter>(cfg.database.url, m);
        if (cfg.ingress.directory_cache_ttl.count() > 0) {
            directory_cache = std::make_unique<ingress::DirectoryCache>(cfg.ingress.directory_cache_ttl);
            directory_listener = std::make_unique<ingress::DirectoryListener>(cfg.database.url, *directory_cache,
                                                                               &m.directory_invalidations.get());
        }
        router = std::make_unique<ingress::Router>(live, pool, *writer, m, directory_cache.get());
    }

    std::unique_ptr<drain::Drainer> drainer;
    std::unique_ptr<apps::AppHooks> app_hooks;
    if (drain_role) {
        app_hooks = std::make_unique<apps::AppHooks>(cfg, m);
        drainer = std::make_unique<drain::Drainer>(live, ioc, blocking, client, m, instance_id(),
                                                   app_hooks->completer_extra());
        app_hooks->install(drainer->deliverer());
    }
    metrics::BacklogSampler sampler(cfg, m);

    auto ready = [&] {
        if (!database_ready(pool)) return text(503, "database unreachable\n");
        if (writer && writer->connected_sessions() == 0) return text(503, "outbox writer not connected\n");
        if (drainer && !drainer->healthy()) return text(503, "drainer not connected\n");
        return text(200, "ready\n");
    };
    auto health = [](const ingress::Request& r) -> std::optional<ingress::Response> {
        if (r.path() == "/healthz") return text(200, "ok\n");
        return std::nullopt;
    };

    std::unique_ptr<http::Server> ingress_server;
    if (ingress_role) {
        http::ServerOptions o;
        o.name = "ingress";
        o.listen = cfg.ingress.listen;
        o.max_body_bytes = static_cast<std::size_t>(cfg.ingress.max_body_bytes);
        o.read_timeout = cfg.ingress.read_timeout;
        o.tls_cert = cfg.ingress.tls_cert;
        o.tls_key = cfg.ingress.tls_key;
        http::Routes routes;
        routes.fast = health;
        routes.slow = [&](const ingress::Request& r) {
            if (r.path() == "/readyz") return ready();
            return router->handle(r).response;
        };
        // Webhooks whose lookups are all cached are routed on the I/O thread and answered after
        // their group commit without holding a blocking-pool thread.
        routes.async = [&](const ingress::Request& r, std::function<void(ingress::Response)> reply) {
            if (r.path() == "/readyz") return false;
            return router->handle_cached(r, [reply = std::move(reply)](ingress::Routed x) { reply(std::move(x.response)); });
        };
        auto refusal_log = std::make_shared<LogThrottle>();
        routes.refused = [&m, refusal_log](int status, std::string_view reason, const std::string& why,
                                           std::string_view target) {
            const std::string provider = ingress::provider_label(target);
            if (status != 0) m.ingress_requests.with({provider, std::to_string(status)}).inc();
            m.ingress_rejected.with({provider, reason}).inc();
            if (auto held = refusal_log->admit(provider + '/' + std::string(reason)))
                spdlog::info("ingress: refused provider={} status={} reason={} error=\"{}\" suppressed={}", provider,
                             status, reason, why, *held);
        };
        ingress_server = std::make_unique<http::Server>(ioc, &blocking, o, routes);
        ingress_server->start();
    }
    http::ServerOptions mo;
    mo.name = "metrics";
    mo.listen = cfg.metrics.listen;
    mo.read_timeout = 10s;
    http::Routes mroutes;
    mroutes.fast = [&](const ingress::Request& r) -> std::optional<ingress::Response> {
        if (r.path() == "/metrics") return ingress::Response{200, m.registry.expose(), "text/plain; version=0.0.4; charset=utf-8"};
        return health(r);
    };
    mroutes.slow = [&](const ingress::Request& r) {
        if (r.path() == "/readyz") return ready();
        return text(404, "not found\n");
    };
    http::Server metrics_server(ioc, &blocking, mo, mroutes);
    metrics_server.start();

    if (drainer) drainer->start();
    sampler.start();

    std::vector<std::thread> io;
    for (unsigned i = 0; i < io_threads; ++i) io.emplace_back([&] { ioc.run(); });

    // Watchdog pings come from the I/O loop, and only while the drain loop turns, so a stuck
    // daemon is restarted by systemd. A database outage is not a reason: the loop keeps turning
    // while it waits, and a restart would only fail in ExecStartPre until the database is back.
    asio::steady_timer watchdog(ioc);
    std::uint64_t wd_usec = 0;
    bool use_wd = sd_watchdog_enabled(0, &wd_usec) > 0;
    std::function<void()> arm = [&] {
        watchdog.expires_after(std::chrono::microseconds(use_wd ? wd_usec / 3 : 1000000));
        watchdog.async_wait([&](boost::system::error_code ec) {
            if (ec) return;
            if (use_wd && (!drainer || drainer->alive())) sd_notify(0, "WATCHDOG=1");
            arm();
        });
    };
    arm();

    std::atomic<int> signals{0};
    std::promise<void> stop_requested;
    asio::signal_set sigs(ioc, SIGINT, SIGTERM, SIGHUP);
    std::function<void()> wait_signal = [&] {
        sigs.async_wait([&](boost::system::error_code ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                // Logs go to stderr (the journal), so there is nothing to reopen: reload the config.
                sd_notify(0, "RELOADING=1");
                try {
                    auto kept = live.reload(config::load_file(config_path));
                    auto now = live.get();
                    apply_log_settings(now->log.level, now->log.format);
                    spdlog::info("signal: SIGHUP, configuration reloaded from {}", config_path);
                    for (const auto& k : kept)
                        spdlog::warn("reload: {} changed but needs a restart; keeping the running value", k);
                    if (drainer) drainer->wake();
                } catch (const std::exception& e) {
                    spdlog::error("reload: {}; keeping the running configuration", e.what());
                }
                sd_notify(0, "READY=1");
            } else if (signals.fetch_add(1) == 0) {
                spdlog::info("signal: {} received, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                stop_requested.set_value();
            } else {
                spdlog::warn("signal: second stop signal, exiting now");
                std::_Exit(0);
            }
            wait_signal();
        });
    };
    wait_signal();
    pthread_sigmask(SIG_UNBLOCK, &control_signals, nullptr);  // any that came during start-up are taken now

    sd_notify(0, "READY=1");
    spdlog::info("outboxd: ready version={} role={} ingress={} metrics={} regions={}", OUTBOXD_VERSION, role,
                 ingress_role ? cfg.ingress.listen : "-", cfg.metrics.listen, cfg.regions.size());
    stop_requested.get_future().wait();

    sd_notify(0, "STOPPING=1");
    if (ingress_server) ingress_server->stop();
    if (drainer) drainer->stop();
    if (writer) writer->stop();
    sampler.stop();
    metrics_server.stop();
    watchdog.cancel();
    sigs.cancel();
    ioc.stop();
    for (auto& t : io) t.join();
    blocking.join();
    spdlog::info("outboxd: stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"outboxd: transactional outbox for webhooks"};
    std::string config_path, role = "all";
    bool version = false;
    app.add_option("--config", config_path, "TOML configuration file");
    app.add_option("--role", role, "ingress | drain | all")->check(CLI::IsMember({"ingress", "drain", "all"}));
    app.add_flag("--version", version, "print the version");
    auto* migrate = app.add_subcommand("migrate", "apply sql/ migrations (idempotent)");
    std::string migrate_config;
    migrate->add_option("--config", migrate_config, "TOML configuration file")->required();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    if (version) {
        std::cout << "outboxd " << OUTBOXD_VERSION << "\n";
        return 0;
    }
    std::string path = migrate->parsed() ? migrate_config : config_path;
    if (path.empty()) {
        std::cerr << "outboxd: --config FILE is required\n";
        return 2;
    }
    config::Config cfg;
    try {
        cfg = config::load_file(path);
    } catch (const std::exception& e) {
        std::cerr << "outboxd: " << e.what() << "\n";
        return 1;
    }
    setup_logging(cfg.log.level, cfg.log.format);
    std::signal(SIGPIPE, SIG_IGN);
    try {
        if (migrate->parsed()) return run_migrate(cfg);
        config::LiveConfig live(cfg);
        return serve(path, live, role);
    } catch (const std::exception& e) {
        spdlog::critical("outboxd: {}", e.what());
        std::cerr << "outboxd: " << e.what() << "\n";
        return 1;
    }
}
