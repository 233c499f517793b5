// Batched writes of delivery outcomes (River's completer, adapted): at most 5 000 rows per
// statement, one transaction per flush, retried with backoff while the database is away.
#include "outboxd/drain/completer.hpp"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>

namespace outboxd::drain {
namespace {

constexpr std::size_t kMaxBatch = 5000;

constexpr const char* kDelete = "DELETE FROM control_outbox WHERE id = ANY($1::bigint[])";

// A retry counts the attempt, records why and pushes the head back. The lease check keeps a slow
// daemon whose lease lapsed from overwriting the state the shard's new holder works from.
constexpr const char* kRetry = R"(
UPDATE control_outbox c
SET attempts = u.attempts, last_status = u.status, last_error = u.error, last_attempt_at = now(),
    scheduled_for = now() + u.delay_ms * interval '1 millisecond'
FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, attempts int, status int, error text, delay_ms bigint)
WHERE c.id = u.id AND EXISTS (SELECT 1 FROM outbox_lease l WHERE l.shard_key = c.shard_key AND l.owner = $2))";

constexpr const char* kDead = R"(
WITH u AS (SELECT * FROM jsonb_to_recordset($1::jsonb)
                 AS u(id bigint, attempts int, status int, error text, reason text)),
moved AS (
    DELETE FROM control_outbox c USING u
    WHERE c.id = u.id AND EXISTS (SELECT 1 FROM outbox_lease l WHERE l.shard_key = c.shard_key AND l.owner = $2)
    RETURNING c.*, u.attempts AS new_attempts, u.status AS new_status, u.error AS new_error, u.reason AS new_reason)
INSERT INTO control_outbox_dead (id, region_name, mailbox_name, category, provider, integration_id, date_added,
                                 attempts, last_status, last_error, request_method, request_path, request_headers,
                                 request_body, target_url, dead_at, reason)
SELECT id, region_name, mailbox_name, category, provider, integration_id, date_added,
       new_attempts, new_status, new_error, request_method, request_path, request_headers,
       request_body, target_url, now(), new_reason
FROM moved
ON CONFLICT (id) DO UPDATE SET attempts = EXCLUDED.attempts, last_status = EXCLUDED.last_status,
    last_error = EXCLUDED.last_error, dead_at = EXCLUDED.dead_at, reason = EXCLUDED.reason)";

// Ends the lease in place (a HOT update; see sql/006_shard_lease.sql).
constexpr const char* kRelease = R"(
UPDATE outbox_lease SET owner = NULL, pid = NULL, until = NULL
WHERE shard_key = ANY($1::text[]) AND owner = $2)";

}  // namespace

Completer::Completer(std::string conninfo, std::string owner, metrics::Metrics& m, std::function<void()> after_flush,
                     Extra extra, std::size_t max_pending)
    : conninfo_(std::move(conninfo)), owner_(std::move(owner)), metrics_(m), after_flush_(std::move(after_flush)),
      extra_(std::move(extra)), max_pending_(max_pending) {
    thread_ = std::thread([this] { run(); });
}

Completer::~Completer() { stop(std::chrono::seconds(5)); }

void Completer::push(Outcome o) {
    std::unique_lock lk(mu_);
    // Backpressure: deliverers wait while the completer is far behind.
    room_.wait(lk, [&] { return queue_.size() < max_pending_ || stopping_; });
    queue_.push_back(std::move(o));
    cv_.notify_one();
}

bool Completer::drain(std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    return idle_.wait_for(lk, timeout, [&] { return queue_.empty() && !busy_; });
}

void Completer::stop(std::chrono::milliseconds timeout) {
    if (!thread_.joinable()) return;
    bool drained = drain(timeout);
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    room_.notify_all();
    if (!drained) {
        // A flush waiting on a lock (a DBA's LOCK TABLE) would hold the join, and the exit, past
        // every deadline: its statement is cancelled and its outcomes given up (the leases lapse,
        // the rows are delivered again: at least once).
        spdlog::warn("completer: outcomes still unwritten at shutdown; cancelling the pending write");
        std::lock_guard lk(cancel_mu_);
        cancel_.cancel();
    }
    thread_.join();
}

void Completer::run() {
    std::optional<db::Connection> conn;
    auto backoff = std::chrono::milliseconds(100);
    bool failing = false;
    while (true) {
        std::vector<Outcome> batch;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;
            if (stopping_ && failing) return;  // database away at shutdown: leases lapse, rows are redelivered
            while (!queue_.empty() && batch.size() < kMaxBatch) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
            busy_ = true;
        }
        room_.notify_all();
        try {
            // alive(): a session the server ended while idle (a restart) is noticed before the
            // flush, which otherwise failed once on it and logged an outage that was over.
            if (!conn || !conn->alive()) {
                conn.emplace(conninfo_, "outboxd-completer");
                {
                    std::lock_guard lk(cancel_mu_);
                    cancel_ = conn->cancel_handle();
                }
                // After five executions PostgreSQL may keep a generic plan, and one made while the
                // outbox was empty deletes by id with a sequential scan, reading the whole table
                // on every flush once it has grown, until an autoanalyze replans it. Plan each
                // flush for the table as it is (a few tens of microseconds).
                conn->exec("SET plan_cache_mode = force_custom_plan");
            }
            flush(*conn, batch);
            if (failing) spdlog::info("completer: database reachable again, outcomes written");
            failing = false;
            backoff = std::chrono::milliseconds(100);
        } catch (const std::exception& e) {
            metrics_.db_errors.with({"completer"}).inc();
            if (!failing) spdlog::error("completer: cannot write outcomes, will retry error=\"{}\"", e.what());
            failing = true;
            conn.reset();
            std::unique_lock lk(mu_);
            for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
            busy_ = false;
            cv_.wait_for(lk, backoff, [&] { return stopping_; });
            backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
            continue;
        }
        {
            std::lock_guard lk(mu_);
            busy_ = false;
        }
        idle_.notify_all();
        if (after_flush_) after_flush_();
    }
}

void Completer::flush(db::Connection& c, const std::vector<Outcome>& batch) {
    std::vector<std::int64_t> deleted;
    std::vector<std::string> released;
    boost::json::array retries, dead;
    for (const auto& o : batch) {
        switch (o.kind) {
            case Outcome::Kind::delivered:
                deleted.push_back(o.id);
                break;
            case Outcome::Kind::release:
                released.push_back(o.shard);
                break;
            case Outcome::Kind::retry:
                retries.push_back(boost::json::object{{"id", o.id},
                                                      {"attempts", o.attempts},
                                                      {"status", o.status},
                                                      {"error", o.error},
                                                      {"delay_ms", o.delay.count()}});
                break;
            case Outcome::Kind::dead:
                dead.push_back(boost::json::object{{"id", o.id},
                                                   {"attempts", o.attempts},
                                                   {"status", o.status},
                                                   {"error", o.error},
                                                   {"reason", o.reason}});
                break;
        }
    }
    db::Transaction tx(c);
    if (!deleted.empty()) c.exec_prepared("completer_delete", kDelete, db::Params(db::array_literal(deleted)));
    if (!retries.empty())
        c.exec_prepared("completer_retry", kRetry, db::Params(boost::json::serialize(retries), owner_));
    if (!dead.empty()) c.exec_prepared("completer_dead", kDead, db::Params(boost::json::serialize(dead), owner_));
    if (!released.empty()) c.exec_prepared("completer_release", kRelease, db::Params(db::array_literal(released), owner_));
    if (extra_) extra_(c, batch);
    tx.commit();
}

}  // namespace outboxd::drain
