// Turns one claimed row into one HTTP request (region or app destination, signed headers), sends
// it, and says what happened as an Outcome. It decides nothing about retries itself: classify()
// and RetryPolicy do.
#pragma once
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <mutex>
#include <optional>
#include <functional>
#include <random>

#include "outboxd/common/log_throttle.hpp"
#include "outboxd/config/config.hpp"
#include "outboxd/drain/retry_policy.hpp"
#include "outboxd/drain/types.hpp"
#include "outboxd/http/client.hpp"
#include "outboxd/metrics/metrics.hpp"

namespace outboxd::drain {

// The request a row becomes: region rows go to region.url + path with X-Outbox-* headers; app
// rows go to target_url with a fresh Sentry-Hook-Timestamp. nullopt: no such region.
std::optional<http::OutboundRequest> build_request(const ClaimedRow& row, const config::Config& cfg,
                                                   std::chrono::system_clock::time_point now);

// Reasons a row of a configured region dies for (control_outbox_dead.reason and the reason label
// of outboxd_dead_letters_total), and those only rows without a region (app webhooks) die for,
// from their send-time check. unknown_region is left out: its region label is not configured.
inline constexpr std::string_view kRegionDeadReasons[] = {"permanent_status", "max_attempts", "max_age",
                                                          "refused_url"};
inline constexpr std::string_view kAppDeadReasons[] = {"app_disabled", "app_deleted", "app_uninstalled",
                                                       "app_without_url"};

// What a send-time check says about a row whose destination can change after it was enqueued
// (an app's URL and secret, its status): read when the row is sent, as Sentry does.
struct CurrentTarget {
    enum class Verdict { send, drop, unknown } verdict = Verdict::send;
    std::string reason;                               // drop: the dead reason; drop/unknown: why, for the log
    std::optional<std::string> url;                   // send: replaces the stored URL
    std::optional<std::pair<std::string, std::string>> header;  // send: replaces the stored header of that name
};

class Deliverer {
public:
    using BlockingSender = std::function<http::OutboundResult(const ClaimedRow&)>;
    using SendTimeCheck = std::function<CurrentTarget(const ClaimedRow&)>;
    Deliverer(http::Client& client, metrics::Metrics& m) : client_(client), metrics_(m) {}
    // Categories delivered by something other than HTTP (email over SMTP); runs on `pool`.
    void set_sender(std::string category, BlockingSender s) { senders_.emplace_back(std::move(category), std::move(s)); }
    void set_blocking_pool(boost::asio::thread_pool* pool) { pool_ = pool; }
    // Rows of `category` are checked on `pool` right before each send (it may read the database).
    void set_send_time_check(std::string category, SendTimeCheck c) { checks_.emplace_back(std::move(category), std::move(c)); }

    // Sends the row once and returns its outcome (delivered, retry with delay, or dead).
    // `cfg` is the snapshot in force for this shard run.
    boost::asio::awaitable<Outcome> deliver(const ClaimedRow& row, const RetryPolicy& policy,
                                            std::shared_ptr<const config::Config> cfg);
    // The outcome of a failed attempt, as the retry policy dictates (exposed for tests).
    Outcome failed(const ClaimedRow& row, const RetryPolicy& policy, const http::OutboundResult& res,
                   const Classification& c);

private:
    http::Client& client_;
    metrics::Metrics& metrics_;
    boost::asio::thread_pool* pool_ = nullptr;
    std::vector<std::pair<std::string, BlockingSender>> senders_;
    std::vector<std::pair<std::string, SendTimeCheck>> checks_;
    std::mt19937_64 rng_{std::random_device{}()};
    std::mutex rng_mu_;
    // Retries are logged at info, at most one line per destination a second: a failing region
    // is found with `grep region=…` at once, and one with thousands of rows does not flood.
    LogThrottle retry_log_;
};

}  // namespace outboxd::drain
