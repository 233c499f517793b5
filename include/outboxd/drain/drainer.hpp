// The drain side of the daemon: a claimer thread (LISTEN + claim), shard runs delivered as
// coroutines on the I/O threads, and the completer. Stop is graceful: no new claims, in-flight
// runs finish or release their rows, outcomes are flushed.
#pragma once
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <set>
#include <thread>

#include "outboxd/config/config.hpp"
#include "outboxd/drain/circuit_breaker.hpp"
#include "outboxd/drain/completer.hpp"
#include "outboxd/drain/deliverer.hpp"
#include "outboxd/http/client.hpp"
#include "outboxd/metrics/metrics.hpp"

namespace outboxd::drain {

class Drainer {
public:
    Drainer(config::LiveConfig& live, boost::asio::io_context& ioc, boost::asio::thread_pool& blocking,
            http::Client& client, metrics::Metrics& m, std::string owner, Completer::Extra completer_extra = {});
    ~Drainer();

    Deliverer& deliverer() { return deliverer_; }
    void start();
    // Stops claiming; waits up to drain.shutdown_timeout for in-flight runs; flushes outcomes.
    void stop();
    // The claimer loop is turning, connected or not (the systemd watchdog: a loop that waits out
    // a database outage is not wedged, and killing it would not bring the database back).
    bool alive() const;
    // Alive and connected (/readyz).
    bool healthy() const;
    int in_flight() const { return in_flight_.load(); }
    // Wakes the claimer now (tests, reload).
    void wake();

private:
    void claim_loop();
    // `session` is the claim session the run's lease belongs to (see session_).
    boost::asio::awaitable<void> deliver_run(ShardRun run, std::uint64_t session);
    bool paused(const ClaimedRow& row);

    config::LiveConfig& live_;
    const std::shared_ptr<const config::Config> boot_;  // the keys a reload cannot change
    boost::asio::io_context& ioc_;
    boost::asio::thread_pool& blocking_;
    http::Client& client_;
    metrics::Metrics& metrics_;
    std::string owner_;
    Deliverer deliverer_;
    CircuitBreakers breakers_;
    std::unique_ptr<Completer> completer_;
    Completer::Extra completer_extra_;
    std::thread claimer_;
    int wake_fd_ = -1;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> release_session_{false};
    std::atomic<int> in_flight_{0};
    // Counts claim sessions. Leases live as long as the session that took them: when it is lost,
    // runs of an older session stop before their next row, and no claim is made until they ended.
    std::atomic<std::uint64_t> session_{0};
    std::atomic<bool> connected_{false};
    std::atomic<std::int64_t> last_loop_ns_{0};
    // Since when the claimer has been inside its database statements (0: it is not): waiting on
    // the database (a lock, a slow claim) is not a wedged loop.
    std::atomic<std::int64_t> db_since_ns_{0};
    std::atomic<bool> claimer_done_{false};
    std::mutex cancel_mu_;
    db::CancelHandle claimer_cancel_;
    std::mutex pause_mu_;
    std::set<std::pair<std::string, std::string>> paused_;
};

}  // namespace outboxd::drain
