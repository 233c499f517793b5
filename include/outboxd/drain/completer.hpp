// Applies delivery outcomes in batches (deletes, reschedules, dead-letter moves, releases): one
// transaction per flush, flushed as soon as the previous flush ends, so batches grow with load.
// Callers wait when it falls behind; nothing is dropped when the database is away.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "outboxd/db/connection.hpp"
#include "outboxd/drain/types.hpp"
#include "outboxd/metrics/metrics.hpp"

namespace outboxd::drain {

class Completer {
public:
    // `after_flush` runs on the completer thread after each committed flush (wakes the claimer).
    // `extra` runs inside each flush transaction with that flush's outcomes (app request log).
    using Extra = std::function<void(db::Connection&, const std::vector<Outcome>&)>;
    Completer(std::string conninfo, std::string owner, metrics::Metrics& m, std::function<void()> after_flush,
              Extra extra = {}, std::size_t max_pending = 20000);
    ~Completer();

    void push(Outcome o);
    // Blocks until everything pushed so far is written (or `timeout` passes). True when flushed.
    bool drain(std::chrono::milliseconds timeout);
    void stop(std::chrono::milliseconds timeout);

private:
    void run();
    void flush(db::Connection& c, const std::vector<Outcome>& batch);

    std::string conninfo_, owner_;
    metrics::Metrics& metrics_;
    std::function<void()> after_flush_;
    Extra extra_;
    std::size_t max_pending_;
    std::mutex mu_;
    std::condition_variable cv_, room_, idle_;
    std::deque<Outcome> queue_;
    bool busy_ = false;
    bool stopping_ = false;
    std::thread thread_;
    std::mutex cancel_mu_;
    db::CancelHandle cancel_;  // of the session's running flush, for a stop that cannot wait
};

}  // namespace outboxd::drain
