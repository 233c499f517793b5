// The one place that decides what a delivery attempt's result means (delivered, retry, permanent)
// and how long a shard waits before its head is tried again.
#pragma once
#include <chrono>
#include <optional>
#include <random>
#include <string>

#include "outboxd/config/config.hpp"
#include "outboxd/http/client.hpp"

namespace outboxd::drain {

using ms = std::chrono::milliseconds;

enum class Verdict { delivered, retry, permanent };

struct Classification {
    Verdict verdict;
    std::optional<ms> retry_after;  // from a 429/503 Retry-After header
    bool region_failure = false;    // counts against the region's circuit (5xx, timeout, connect)
};

// 2xx delivered; 5xx, 408, 429, 3xx (not followed), timeouts and connection errors retry; other
// 4xx are permanent; a refused or malformed destination is permanent.
Classification classify(const http::OutboundResult& r, std::chrono::system_clock::time_point now);

// Retry-After as delta-seconds or an HTTP date; nullopt when unparseable or in the past.
std::optional<ms> parse_retry_after(const std::string& value, std::chrono::system_clock::time_point now);

enum class Next { retry, dead_max_attempts, dead_max_age };

struct RetryPolicy {
    ms base_delay{1000};
    ms max_delay{3600000};
    int max_attempts = 10;
    ms max_age{72LL * 3600 * 1000};

    static RetryPolicy from(const config::Config& cfg);
    // Upper bound of the backoff after `attempts` failures (attempts >= 1): base × 2^(attempts-1),
    // capped at max_delay.
    ms ceiling(int attempts) const;
    // Full jitter: uniform in [0, ceiling(attempts)], never below a Retry-After the server sent.
    ms backoff(int attempts, std::optional<ms> retry_after, std::mt19937_64& rng) const;
    // What follows a failed attempt: `attempts` counts it; `age` is now - date_added.
    Next after_failure(int attempts, ms age) const;
};

}  // namespace outboxd::drain
