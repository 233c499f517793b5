// Samples backlog, oldest-row age and dead rows per region from SQL, so the gauges cost no work on
// the hot path. The oldest age (what alerts use) comes from the region index every interval, at a
// cost that does not grow with the backlog. Counting rows reads the whole table and holds a
// snapshot meanwhile (which pins the MVCC horizon), so counts are spaced out as they get slow:
// every interval while they are fast, never more than 5 % of the time once the backlog is huge.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "outboxd/config/config.hpp"
#include "outboxd/db/connection.hpp"
#include "outboxd/metrics/metrics.hpp"

namespace outboxd::metrics {

class BacklogSampler {
public:
    BacklogSampler(const config::Config& cfg, Metrics& m, std::chrono::milliseconds interval = std::chrono::seconds(5));
    ~BacklogSampler();
    void start();
    void stop();
    // One sample now, counts included (also used by tests). Throws db::Error.
    void sample_once();
    // One sample; counts only when due (or forced). Throws db::Error.
    void sample(bool force_counts);
    // The oldest-row statement, for tests that EXPLAIN it in their own database.
    static const char* oldest_row_statement();

private:
    const config::Config& cfg_;
    Metrics& metrics_;
    std::chrono::milliseconds interval_;
    std::chrono::steady_clock::time_point next_count_{};
    std::optional<db::Connection> conn_;  // the sampler thread's (or a test's) session
    std::set<std::string> seen_;  // regions ever reported (configured or found in the tables)
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace outboxd::metrics
