// Group commit of outbox rows. One writer thread owns one connection: whatever requests queued
// while the previous transaction was committing go into the next one, so throughput grows with
// load while each request still waits for its own COMMIT before the provider is answered.
#include "outboxd/outbox/outbox_writer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>

#include "outboxd/db/connection.hpp"

namespace outboxd::outbox {
namespace {

// One statement, one round trip, its own transaction: the InitPlan in WHERE takes the ordering
// lock of every mailbox written (in hash order, so two writers cannot deadlock) before the first
// row is produced, i.e. before any id is drawn; the locks are held until the statement's commit.
// Ids are assigned in array order, i.e. request order.
constexpr const char* kInsertRows = R"(
INSERT INTO control_outbox (region_name, mailbox_name, category, provider, integration_id,
                            request_method, request_path, request_headers, request_body, target_url)
SELECT r.region_name, r.mailbox_name, r.category, r.provider, r.integration_id,
       r.request_method, r.request_path, r.request_headers, decode(r.body_hex, 'hex'), r.target_url
FROM jsonb_to_recordset($2::jsonb)
     AS r(n bigint, region_name text, mailbox_name text, category text, provider text, integration_id bigint,
          request_method text, request_path text, request_headers jsonb, body_hex text, target_url text)
WHERE (SELECT count(pg_advisory_xact_lock(7401, h))
       FROM (SELECT DISTINCT hashtext(m) AS h FROM unnest($1::text[]) AS m ORDER BY 1) s) >= 0
ORDER BY r.n)";

constexpr const char* kNotify = "BEGIN; SET LOCAL synchronous_commit = off; NOTIFY outboxd_outbox; COMMIT";

std::string hex(std::string_view s) {
    static const char* d = "0123456789abcdef";
    std::string out(s.size() * 2, '0');
    for (std::size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        out[2 * i] = d[c >> 4];
        out[2 * i + 1] = d[c & 15];
    }
    return out;
}

}  // namespace

std::string rows_to_json(const std::vector<const NewRow*>& rows) {
    boost::json::array arr;
    arr.reserve(rows.size());
    for (const auto* r : rows) {
        boost::json::object o;
        o["n"] = arr.size();
        o["region_name"] = r->region ? boost::json::value(*r->region) : nullptr;
        o["mailbox_name"] = r->mailbox;
        o["category"] = r->category;
        o["provider"] = r->provider ? boost::json::value(*r->provider) : nullptr;
        o["integration_id"] = r->integration_id ? boost::json::value(*r->integration_id) : nullptr;
        o["request_method"] = r->method;
        o["request_path"] = r->path;
        boost::json::array hs;
        for (const auto& [k, v] : r->headers) hs.push_back(boost::json::array{boost::json::string(k), boost::json::string(v)});
        o["request_headers"] = std::move(hs);
        o["body_hex"] = hex(r->body);
        o["target_url"] = r->target_url ? boost::json::value(*r->target_url) : nullptr;
        arr.push_back(std::move(o));
    }
    return boost::json::serialize(arr);
}

struct OutboxWriter::Db {
    std::optional<db::Connection> conn;
};

OutboxWriter::OutboxWriter(std::string conninfo, metrics::Metrics& m, std::size_t max_batch)
    : conninfo_(std::move(conninfo)), metrics_(m), max_batch_(max_batch), db_(std::make_unique<Db>()) {
    thread_ = std::thread([this] { run(); });
}

OutboxWriter::~OutboxWriter() { stop(); }

void OutboxWriter::stop() {
    {
        std::lock_guard lk(mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

std::future<WriteStatus> OutboxWriter::write(std::vector<NewRow> rows) {
    auto promise = std::make_shared<std::promise<WriteStatus>>();
    auto f = promise->get_future();
    write_async(std::move(rows), [promise](WriteStatus s) { promise->set_value(s); });
    return f;
}

void OutboxWriter::write_async(std::vector<NewRow> rows, std::function<void(WriteStatus)> done) {
    {
        std::unique_lock lk(mu_);
        if (stopping_) {
            lk.unlock();
            done(WriteStatus::shutting_down);
            return;
        }
        queue_.push_back(Pending{std::move(rows), std::move(done)});
    }
    cv_.notify_one();
}

void OutboxWriter::run() {
    while (true) {
        std::vector<Pending> batch;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping and drained
            while (!queue_.empty() && batch.size() < max_batch_) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        flush(batch);
    }
}

void OutboxWriter::connect() {
    db_->conn.emplace(conninfo_, "outboxd-writer");
    // This session wakes drainers itself after each commit (see sql/005_deferred_notify.sql).
    db_->conn->exec("SET outboxd.defer_notify = on");
}

void OutboxWriter::insert(const std::vector<const NewRow*>& rows) {
    auto& c = *db_->conn;
    std::vector<std::string> mailboxes;  // duplicates are fine: the lock statement takes DISTINCT
    for (const auto* r : rows) mailboxes.push_back(r->mailbox);
    c.exec_prepared("outbox_insert_rows", kInsertRows, db::Params(db::array_literal(mailboxes), rows_to_json(rows)));
    // The rows are durable; the wake-up is only a hint (drainers poll too), so its own tiny
    // transaction skips the WAL flush and holds the notify lock for microseconds.
    try {
        c.exec(kNotify);
    } catch (const db::Error& e) {
        spdlog::debug("outbox_writer: NOTIFY failed (drainers will poll) error=\"{}\"", e.what());
    }
}

void OutboxWriter::flush(std::vector<Pending>& batch) {
    auto count_enqueued = [&](const Pending& p) {
        for (const auto& r : p.rows) metrics_.enqueued.with({r.region.value_or("none")}).inc();
    };
    try {
        if (!db_->conn || !db_->conn->ok()) connect();
        std::vector<const NewRow*> all;
        for (const auto& p : batch)
            for (const auto& r : p.rows) all.push_back(&r);
        if (!all.empty()) insert(all);
        metrics_.commit_batch.get().observe(static_cast<double>(batch.size()));
        for (auto& p : batch) {
            count_enqueued(p);
            p.done(WriteStatus::committed);
        }
        return;
    } catch (const db::Error& e) {
        metrics_.db_errors.with({"outbox_writer"}).inc();
        if (e.connection_lost() || batch.size() == 1) {
            spdlog::error("outbox_writer: commit failed rows_requests={} sqlstate={} error=\"{}\"", batch.size(),
                          e.sqlstate(), e.what());
            if (e.connection_lost()) db_->conn.reset();
            for (auto& p : batch) p.done(WriteStatus::failed);
            return;
        }
        spdlog::warn("outbox_writer: group commit failed, retrying one by one sqlstate={} error=\"{}\"", e.sqlstate(),
                     e.what());
    } catch (const std::exception& e) {
        spdlog::error("outbox_writer: commit failed error=\"{}\"", e.what());
        db_->conn.reset();
        for (auto& p : batch) p.done(WriteStatus::failed);
        return;
    }
    // A data error in one request must not fail its neighbours: commit each on its own.
    for (auto& p : batch) {
        try {
            std::vector<const NewRow*> rows;
            for (const auto& r : p.rows) rows.push_back(&r);
            if (!db_->conn || !db_->conn->ok()) connect();
            if (!rows.empty()) insert(rows);
            count_enqueued(p);
            p.done(WriteStatus::committed);
        } catch (const std::exception& e) {
            spdlog::error("outbox_writer: commit failed error=\"{}\"", e.what());
            if (db_->conn && !db_->conn->ok()) db_->conn.reset();
            p.done(WriteStatus::failed);
        }
    }
}

}  // namespace outboxd::outbox
