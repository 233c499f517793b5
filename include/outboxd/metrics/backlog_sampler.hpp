// Samples backlog, oldest-row age and dead rows per region from SQL every few seconds, so the
// gauges cost one cheap query per interval rather than work on the hot path.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "outboxd/config/config.hpp"
#include "outboxd/metrics/metrics.hpp"

namespace outboxd::metrics {

class BacklogSampler {
public:
    BacklogSampler(const config::Config& cfg, Metrics& m, std::chrono::milliseconds interval = std::chrono::seconds(5));
    ~BacklogSampler();
    void start();
    void stop();
    // One sample now (also used by tests). Throws db::Error.
    void sample_once();

private:
    const config::Config& cfg_;
    Metrics& metrics_;
    std::chrono::milliseconds interval_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace outboxd::metrics
