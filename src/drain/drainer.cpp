// Claim loop and shard runs. The claimer sleeps in poll() on its LISTEN socket and an eventfd
// (capacity freed, outcomes flushed), with drain.poll_interval as the fallback, so new rows are
// picked up at once and a missed NOTIFY costs at most one interval.
#include "outboxd/drain/drainer.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <boost/asio.hpp>

#include "outboxd/drain/mailbox_claimer.hpp"

namespace outboxd::drain {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {
// How long after its open period a breaker that let no probe through still counts as open. While
// rows of the region wait, claims come at least once per poll interval and one of them carries
// the probe well within this.
std::chrono::milliseconds circuit_grace(const config::Config& cfg) {
    return std::max<std::chrono::milliseconds>(5s, cfg.drain.poll_interval * 2);
}
}  // namespace

Drainer::Drainer(config::LiveConfig& live, asio::io_context& ioc, asio::thread_pool& blocking, http::Client& client,
                 metrics::Metrics& m, std::string owner, Completer::Extra completer_extra)
    : live_(live),
      boot_(live.get()),
      ioc_(ioc),
      blocking_(blocking),
      client_(client),
      metrics_(m),
      owner_(std::move(owner)),
      deliverer_(client, m),
      breakers_({boot_->drain.circuit_failures, boot_->drain.circuit_open, boot_->drain.circuit_max_open}),
      completer_extra_(std::move(completer_extra)) {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    deliverer_.set_blocking_pool(&blocking_);
}

Drainer::~Drainer() {
    stop();
    if (wake_fd_ >= 0) close(wake_fd_);
}

void Drainer::wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
}

void Drainer::start() {
    completer_ = std::make_unique<Completer>(boot_->database.url, owner_, metrics_, [this] { wake(); }, completer_extra_);
    // Every series an alert reads exists from the start, at 0: Prometheus' increase() cannot see
    // the first step of a series that appears already at 1, so the first dead letters after a
    // start would not alert (OutboxdDeadLettersGrowing).
    auto zero = [this](std::string_view region) {
        for (auto outcome : {"delivered", "retry", "dead"}) metrics_.deliveries.with({region, outcome});
        for (auto reason : kRegionDeadReasons) metrics_.dead_letters.with({region, reason});
    };
    for (const auto& r : boot_->regions) {
        metrics_.circuit_open.with({r.name}).set(0);
        zero(r.name);
    }
    zero("none");
    for (auto reason : kAppDeadReasons) metrics_.dead_letters.with({"none", reason});
    claimer_ = std::thread([this] { claim_loop(); });
}

bool Drainer::alive() const {
    auto now = std::chrono::steady_clock::now();
    auto last = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(last_loop_ns_.load()));
    if (now - last < live_.get()->drain.poll_interval * 3 + 10s) return true;
    // Waiting on the database (a DBA's lock, a claim slowed by a pinned horizon) for up to ten
    // minutes: a restart by the watchdog would not end the wait, only the deliveries in flight.
    auto since = db_since_ns_.load();
    return since != 0 && now - std::chrono::steady_clock::time_point(std::chrono::nanoseconds(since)) < 10min;
}

bool Drainer::healthy() const { return connected_.load() && alive(); }

bool Drainer::paused(const ClaimedRow& row) {
    std::lock_guard lk(pause_mu_);
    return paused_.count({"mailbox", row.mailbox}) || (row.region && paused_.count({"region", *row.region}));
}

void Drainer::stop() {
    if (!claimer_.joinable()) return;
    stopping_ = true;
    wake();
    // In-flight runs finish the row they are sending and release the rest.
    auto deadline = std::chrono::steady_clock::now() + boot_->drain.shutdown_timeout;
    while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
    if (in_flight_.load() > 0) {
        spdlog::warn("drain: shutdown deadline reached with runs={} in flight; their leases lapse when this daemon "
                     "disconnects",
                     in_flight_.load());
    }
    if (completer_) completer_->stop(5s);
    // The claimer's session is the lease's liveness: closing it frees whatever is still claimed,
    // so it is closed only now, after the runs ended and their outcomes were written.
    release_session_ = true;
    // The claimer may be waiting on the database (a DBA's LOCK TABLE outbox_lease): it gets until
    // the shutdown deadline, at least a second, then its statement is cancelled.
    auto join_deadline = std::max(deadline, std::chrono::steady_clock::now() + 1s);
    while (!claimer_done_.load() && std::chrono::steady_clock::now() < join_deadline) std::this_thread::sleep_for(20ms);
    if (!claimer_done_.load()) {
        spdlog::warn("drain: the claimer is still waiting on the database at shutdown; cancelling its statement");
        std::lock_guard lk(cancel_mu_);
        claimer_cancel_.cancel();
    }
    claimer_.join();
}

asio::awaitable<void> Drainer::deliver_run(ShardRun run, std::uint64_t session) {
    auto cfg = live_.get();
    auto policy = RetryPolicy::from(*cfg);
    // Stop taking rows of this run well before its lease could lapse under another daemon.
    auto lease_deadline = run.claimed_at + boot_->drain.lease / 2;
    for (const auto& row : run.rows) {
        if (stopping_ || paused(row) || std::chrono::steady_clock::now() > lease_deadline) break;
        // The session holding the lease is gone, so the shard may already be claimed again.
        if (session_.load() != session) break;
        auto now = std::chrono::steady_clock::now();
        if (row.region && !breakers_.admit(*row.region, now)) break;
        Outcome o = co_await deliverer_.deliver(row, policy, cfg);
        if (row.region) {
            bool failure = o.kind == Outcome::Kind::retry && o.region_failure;
            if (o.kind != Outcome::Kind::release) {
                switch (breakers_.record(*row.region, failure, std::chrono::steady_clock::now())) {
                    case CircuitBreakers::Change::none:
                        break;
                    case CircuitBreakers::Change::opened:
                        spdlog::warn("drain: region={} circuit opened after {} failures in a row; deliveries paused, "
                                     "probing again in {}ms error=\"{}\"",
                                     *row.region, cfg->drain.circuit_failures, cfg->drain.circuit_open.count(), o.error);
                        break;
                    case CircuitBreakers::Change::reopened:
                        spdlog::info("drain: region={} circuit probe failed; open again error=\"{}\"", *row.region,
                                     o.error);
                        break;
                    case CircuitBreakers::Change::closed:
                        spdlog::info("drain: region={} circuit closed; deliveries resume", *row.region);
                        break;
                }
            }
            auto after = std::chrono::steady_clock::now();
            metrics_.circuit_open.with({*row.region}).set(breakers_.reported_open(*row.region, after, circuit_grace(*cfg)) ? 1 : 0);
        }
        std::string region = row.region.value_or("none");
        switch (o.kind) {
            case Outcome::Kind::delivered:
                metrics_.deliveries.with({region, "delivered"}).inc();
                break;
            case Outcome::Kind::retry:
                metrics_.deliveries.with({region, "retry"}).inc();
                break;
            case Outcome::Kind::dead:
                metrics_.deliveries.with({region, "dead"}).inc();
                metrics_.dead_letters.with({region, o.reason}).inc();
                break;
            case Outcome::Kind::release:
                break;
        }
        bool go_on = o.kind == Outcome::Kind::delivered || o.kind == Outcome::Kind::dead;
        completer_->push(std::move(o));
        if (!go_on) break;
    }
    // Rows not sent stay where they are; ending the lease hands the shard to the next claim.
    Outcome end{Outcome::Kind::release};
    end.shard = run.shard;
    completer_->push(std::move(end));
    metrics_.in_flight.get().set(static_cast<double>(--in_flight_));
    wake();
}

void Drainer::claim_loop() {
    std::optional<db::Connection> conn;
    auto retry_delay = 100ms;
    bool was_down = false;
    auto next_pause_refresh = std::chrono::steady_clock::time_point{};
    auto next_lease_sweep = std::chrono::steady_clock::time_point{};
    auto next_lease_renewal = std::chrono::steady_clock::time_point{};
    auto next_idle_reap = std::chrono::steady_clock::time_point{};
    bool want_claim = true;
    auto last_claim = std::chrono::steady_clock::time_point{};
    bool last_full = false;
    // After a lost session: runs of the old one may still be sending, and their releases and
    // outcomes may still be queued. A claim now could give one of their shards a second run.
    bool settling = false;
    auto lose_session = [&] {
        ++session_;
        settling = true;
        if (int n = in_flight_.load(); n > 0)
            spdlog::warn("drain: claim session lost with runs={} in flight; they stop after their current row and "
                         "no claim is made until they ended",
                         n);
    };
    std::shared_ptr<const config::Config> applied;
    while (true) {
        last_loop_ns_ = std::chrono::steady_clock::now().time_since_epoch().count();
        if (stopping_) break;
        auto cfg = live_.get();
        if (cfg != applied) {
            breakers_.set_options({cfg->drain.circuit_failures, cfg->drain.circuit_open, cfg->drain.circuit_max_open});
            applied = cfg;
        }
        db_since_ns_ = std::chrono::steady_clock::now().time_since_epoch().count();
        try {
            if (!conn || !conn->ok()) {
                connected_ = false;
                if (conn) lose_session();
                conn.emplace(boot_->database.url, "outboxd-claimer");
                {
                    std::lock_guard lk(cancel_mu_);
                    claimer_cancel_ = conn->cancel_handle();
                }
                MailboxClaimer::configure_session(*conn);
                conn->exec("LISTEN outboxd_outbox");
                if (was_down) spdlog::info("drain: database reachable again");
                was_down = false;
                retry_delay = 100ms;
                want_claim = true;
            }
            connected_ = true;
            MailboxClaimer claimer(*conn);
            auto now = std::chrono::steady_clock::now();
            if (now >= next_pause_refresh) {
                auto p = claimer.paused();
                {
                    std::lock_guard lk(pause_mu_);
                    // A resume sends no NOTIFY: claim now rather than at the next poll, which may
                    // be seconds away (the contract is "within a second").
                    for (const auto& was : paused_)
                        if (!p.count(was)) want_claim = true;
                    paused_ = std::move(p);
                }
                next_pause_refresh = now + 500ms;
                // Between deliveries too: a breaker with nothing left to probe is reported closed.
                for (const auto& r : cfg->regions)
                    metrics_.circuit_open.with({r.name}).set(
                        breakers_.reported_open(r.name, now, circuit_grace(*cfg)) ? 1 : 0);
            }
            if (now >= next_lease_sweep) {
                // Mostly rows of shards that were released and emptied: routine, not a fault.
                if (auto n = claimer.sweep_void_leases(); n > 0)
                    spdlog::debug("drain: swept lease rows of empty shards rows={}", n);
                next_lease_sweep = now + 30s;
            }
            if (now >= next_idle_reap) {
                if (auto n = client_.reap_idle(); n > 0) spdlog::debug("drain: closed idle connections n={}", n);
                next_idle_reap = now + 10s;
            }
            // Runs stop starting rows at half their lease, but their outcomes, the lease's release
            // included, may wait in the completer behind a lock (a DBA's LOCK TABLE, a CREATE
            // INDEX) for longer than the lease. Held leases are renewed meanwhile, so the shard is
            // not claimed again, and its delivered rows sent twice, while this session lives.
            if (now >= next_lease_renewal) {
                claimer.renew_leases(owner_, boot_->drain.lease);
                next_lease_renewal = now + boot_->drain.lease / 4;
            }
            // Read afresh at each use: runs finish on other threads while this one waits and claims.
            auto free_slots = [&] { return cfg->drain.concurrency - in_flight_.load(); };
            bool full = false;
            if (want_claim && !last_full && free_slots() > 0) {
                // Wake-ups come per commit and per finished run, hundreds a second under moderate
                // load, and every claim walks all shard heads: claiming at each one makes many
                // claims of a few rows (docs/BENCHMARKS.md, finding 24). What woke us while we
                // waited is covered by this claim, so it is consumed, not answered with another.
                auto since = std::chrono::steady_clock::now() - last_claim;
                if (since < cfg->drain.claim_interval) {
                    std::this_thread::sleep_for(cfg->drain.claim_interval - since);
                    if (stopping_) continue;
                    conn->notifications();
                    std::uint64_t v;
                    [[maybe_unused]] auto r = read(wake_fd_, &v, sizeof v);
                }
            }
            if (settling && in_flight_.load() == 0 && completer_->drain(1s)) {
                settling = false;
                want_claim = true;
                spdlog::info("drain: runs of the lost claim session ended; claiming again");
            }
            int free = free_slots();
            if (want_claim && !settling && free > 0) {
                ClaimParams p;
                p.owner = owner_;
                p.lease = boot_->drain.lease;
                p.max_shards = std::min(free, cfg->drain.batch_size);
                p.rows_per_shard = cfg->drain.rows_per_mailbox;
                p.skip_regions = breakers_.blocked(now);
                auto runs = claimer.claim(p);
                last_claim = std::chrono::steady_clock::now();
                metrics_.claims.get().inc();
                full = static_cast<int>(runs.size()) == p.max_shards;
                last_full = full;
                for (auto& run : runs) {
                    metrics_.claimed_rows.get().inc(static_cast<double>(run.rows.size()));
                    metrics_.in_flight.get().set(static_cast<double>(++in_flight_));
                    // A strand: beast::tcp_stream's timer and socket operations must not complete
                    // concurrently, and the pool's io threads would otherwise run them in parallel.
                    asio::co_spawn(asio::make_strand(ioc_), deliver_run(std::move(run), session_.load()),
                                   asio::detached);
                }
            }
            db_since_ns_ = 0;
            // Sleep until a NOTIFY, a wake (capacity or flush), or the poll interval.
            pollfd fds[2] = {{conn->socket(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
            bool more = full && free_slots() > 0;  // rows are likely waiting
            int timeout = more ? 0 : static_cast<int>(std::min<std::int64_t>(cfg->drain.poll_interval.count(), 500));
            int n = ::poll(fds, 2, timeout);
            // A timed wake (every ≤ 500 ms, for pauses and the watchdog) claims only once per poll
            // interval: the fallback for a missed NOTIFY and for backoffs that ended.
            want_claim = n == 0 && (more || std::chrono::steady_clock::now() - last_claim >= cfg->drain.poll_interval);
            if (n > 0 && (fds[0].revents & (POLLIN | POLLERR | POLLHUP))) {
                conn->notifications();
                want_claim = true;
            }
            if (n > 0 && (fds[1].revents & POLLIN)) {
                std::uint64_t v;
                [[maybe_unused]] auto r = read(wake_fd_, &v, sizeof v);
                want_claim = true;
            }
        } catch (const std::exception& e) {
            db_since_ns_ = 0;
            connected_ = false;
            if (stopping_) break;
            metrics_.db_errors.with({"claimer"}).inc();
            if (!was_down) spdlog::error("drain: database unavailable, retrying error=\"{}\"", e.what());
            was_down = true;
            if (conn) lose_session();
            conn.reset();
            std::this_thread::sleep_for(retry_delay);
            retry_delay = std::min(retry_delay * 2, std::chrono::milliseconds(5000));
        }
    }
    db_since_ns_ = 0;
    // Keep the session (and so the leases of in-flight runs) until stop() has flushed outcomes.
    while (!release_session_) {
        last_loop_ns_ = std::chrono::steady_clock::now().time_since_epoch().count();
        std::this_thread::sleep_for(10ms);
    }
    connected_ = false;
    claimer_done_ = true;
}

}  // namespace outboxd::drain
