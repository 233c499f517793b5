// Backlog gauges from the outbox tables; every configured region is reported, 0 when empty.
#include "outboxd/metrics/backlog_sampler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>

#include "outboxd/db/connection.hpp"

namespace outboxd::metrics {
namespace {
// Oldest row per region through the (region_name, date_added) index: a loose index scan over the
// regions present, then the region-less rows (app webhooks, emails). Each step reads the first
// live index entry, so this stays cheap however large the backlog grows. ORDER BY names
// region_name too, or the planner sorts every region-less row instead of reading the index in order.
constexpr const char* kOldest = R"(
WITH RECURSIVE regions AS (
    (SELECT region_name, date_added FROM control_outbox WHERE region_name IS NOT NULL
     ORDER BY region_name, date_added LIMIT 1)
    UNION ALL
    SELECT n.region_name, n.date_added
    FROM regions r CROSS JOIN LATERAL (
        SELECT region_name, date_added FROM control_outbox WHERE region_name > r.region_name
        ORDER BY region_name, date_added LIMIT 1) n
)
SELECT region_name, greatest(extract(epoch FROM now() - date_added), 0)::float8 FROM regions
UNION ALL
SELECT 'none', greatest(extract(epoch FROM now() - date_added), 0)::float8
FROM (SELECT date_added FROM control_outbox WHERE region_name IS NULL
      ORDER BY region_name, date_added LIMIT 1) n)";
// Counting reads every row (and holds a snapshot while it does): see BacklogSampler::sample.
constexpr const char* kBacklog = "SELECT coalesce(region_name, 'none'), count(*) FROM control_outbox GROUP BY 1";
constexpr const char* kDead = "SELECT coalesce(region_name, 'none'), count(*) FROM control_outbox_dead GROUP BY 1";
// A count may run at most this fraction of the time: the next one waits 1/kCountShare times as
// long as the last one took (and at least one interval).
constexpr double kCountShare = 0.05;
}  // namespace

const char* BacklogSampler::oldest_row_statement() { return kOldest; }

BacklogSampler::BacklogSampler(const config::Config& cfg, Metrics& m, std::chrono::milliseconds interval)
    : cfg_(cfg), metrics_(m), interval_(interval) {
    for (const auto& r : cfg_.regions) seen_.insert(r.name);
}

BacklogSampler::~BacklogSampler() { stop(); }

void BacklogSampler::sample_once() { sample(true); }

void BacklogSampler::sample(bool force_counts) {
    if (!conn_ || !conn_->ok()) {
        conn_.emplace(cfg_.database.url, "outboxd-sampler");
        // A metric is background work: no parallel workers taking cores from deliveries.
        conn_->exec("SET max_parallel_workers_per_gather = 0");
    }
    const auto now = std::chrono::steady_clock::now();
    const bool count = force_counts || now >= next_count_;
    std::map<std::string, double> oldest;
    std::set<std::string> present;  // regions with at least one undelivered row
    std::map<std::string, double> backlog;
    std::map<std::string, double> dead;
    // Every region reported once stays reported (seen_ starts with the configured ones): a gauge
    // left at its last value after the region emptied would read as a stuck backlog.
    for (const auto& r : seen_) oldest[r] = 0;
    try {
        // Planned afresh every sample, never prepared: a statement without parameters keeps its
        // first plan until something invalidates it, and one planned while the outbox was empty
        // is three sequential scans. The bench caught exactly that: a daemon started on an empty
        // table read the whole (growing) outbox three times per sample, 16 % of PostgreSQL's CPU
        // during ingress, until the first autoanalyze. Planning costs well under a millisecond.
        auto a = conn_->exec(kOldest);
        for (int i = 0; i < a.rows(); ++i) {
            oldest[a.text(i, 0)] = a.number(i, 1);
            present.insert(a.text(i, 0));
            seen_.insert(a.text(i, 0));
        }
        if (count) {
            auto r = conn_->exec_prepared("sample_backlog", kBacklog);
            for (int i = 0; i < r.rows(); ++i) backlog[r.text(i, 0)] = static_cast<double>(r.int64(i, 1));
            auto d = conn_->exec_prepared("sample_dead", kDead);
            for (int i = 0; i < d.rows(); ++i) {
                dead[d.text(i, 0)] = static_cast<double>(d.int64(i, 1));
                seen_.insert(d.text(i, 0));
            }
        }
    } catch (...) {
        conn_.reset();
        throw;
    }
    for (const auto& [region, age] : oldest) metrics_.oldest_age.with({region}).set(age);
    if (count) {
        const auto took = std::chrono::steady_clock::now() - now;
        metrics_.backlog_count_duration.get().set(std::chrono::duration<double>(took).count());
        next_count_ = now + std::max<std::chrono::steady_clock::duration>(
                                interval_, std::chrono::duration_cast<std::chrono::steady_clock::duration>(took / kCountShare));
        for (const auto& r : seen_) {
            backlog.try_emplace(r, 0);
            dead.try_emplace(r, 0);
        }
        for (const auto& [region, n] : backlog) metrics_.backlog_rows.with({region}).set(n);
        for (const auto& [region, n] : dead) metrics_.dead_rows.with({region}).set(n);
        return;
    }
    // Between counts, a region the index shows empty is known to be 0 at once.
    for (const auto& [region, age] : oldest)
        if (!present.count(region)) metrics_.backlog_rows.with({region}).set(0);
}

void BacklogSampler::start() {
    thread_ = std::thread([this] {
        bool failing = false;
        std::unique_lock lk(mu_);
        while (!stopping_) {
            lk.unlock();
            try {
                sample(false);
                failing = false;
            } catch (const std::exception& e) {
                if (!failing) spdlog::warn("metrics: backlog sample failed error=\"{}\"", e.what());
                failing = true;
            }
            lk.lock();
            cv_.wait_for(lk, interval_, [&] { return stopping_; });
        }
    });
}

void BacklogSampler::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

}  // namespace outboxd::metrics
