// Backlog gauges from the outbox tables; every configured region is reported, 0 when empty.
#include "outboxd/metrics/backlog_sampler.hpp"

#include <spdlog/spdlog.h>

#include <map>

#include "outboxd/db/connection.hpp"

namespace outboxd::metrics {
namespace {
constexpr const char* kBacklog = R"(
SELECT coalesce(region_name, 'none'), count(*), coalesce(extract(epoch FROM now() - min(date_added)), 0)::float8
FROM control_outbox GROUP BY 1)";
constexpr const char* kDead = "SELECT coalesce(region_name, 'none'), count(*) FROM control_outbox_dead GROUP BY 1";
}  // namespace

BacklogSampler::BacklogSampler(const config::Config& cfg, Metrics& m, std::chrono::milliseconds interval)
    : cfg_(cfg), metrics_(m), interval_(interval) {}

BacklogSampler::~BacklogSampler() { stop(); }

void BacklogSampler::sample_once() {
    thread_local std::optional<db::Connection> conn;
    if (!conn || !conn->ok()) conn.emplace(cfg_.database.url, "outboxd-sampler");
    std::map<std::string, std::pair<double, double>> backlog;
    std::map<std::string, double> dead;
    for (const auto& r : cfg_.regions) {
        backlog[r.name] = {0, 0};
        dead[r.name] = 0;
    }
    try {
        auto r = conn->exec_prepared("sample_backlog", kBacklog);
        for (int i = 0; i < r.rows(); ++i) backlog[r.text(i, 0)] = {static_cast<double>(r.int64(i, 1)), r.number(i, 2)};
        auto d = conn->exec_prepared("sample_dead", kDead);
        for (int i = 0; i < d.rows(); ++i) dead[d.text(i, 0)] = static_cast<double>(d.int64(i, 1));
    } catch (...) {
        conn.reset();
        throw;
    }
    for (const auto& [region, v] : backlog) {
        metrics_.backlog_rows.with({region}).set(v.first);
        metrics_.oldest_age.with({region}).set(v.second);
    }
    for (const auto& [region, n] : dead) metrics_.dead_rows.with({region}).set(n);
}

void BacklogSampler::start() {
    thread_ = std::thread([this] {
        bool failing = false;
        std::unique_lock lk(mu_);
        while (!stopping_) {
            lk.unlock();
            try {
                sample_once();
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
