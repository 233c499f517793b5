// Group commit of outbox rows. A few writer threads, each owning one connection, take whatever
// requests queued up as one transaction; while one waits for its commit's WAL flush, the next
// gathers the following batch, so throughput grows with load while each request still waits for
// its own COMMIT before the provider is answered. Mailbox ordering across sessions comes from the
// per-mailbox advisory locks in the insert statement, not from there being one writer.
#include "outboxd/outbox/outbox_writer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "outboxd/db/connection.hpp"

namespace outboxd::outbox {
namespace {

// One statement, one round trip, its own transaction: the InitPlan in WHERE takes the ordering
// lock of every mailbox written (in hash order, so two writers cannot deadlock) before the first
// row is produced, i.e. before any id is drawn; the locks are held until the statement's commit.
// The rows arrive as one binary array per column (bodies are bytes, nothing to parse); ids are
// assigned in array order, i.e. request order.
constexpr const char* kInsertRows = R"(
INSERT INTO control_outbox (region_name, mailbox_name, category, provider, integration_id,
                            request_method, request_path, request_headers, request_body, target_url)
SELECT r.region_name, r.mailbox_name, r.category, r.provider, r.integration_id,
       r.request_method, r.request_path, r.request_headers::jsonb, r.request_body, r.target_url
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
            $7::text[], $8::text[], $9::text[], $10::bytea[], $11::text[]) WITH ORDINALITY
     AS r(region_name, mailbox_name, category, provider, integration_id,
          request_method, request_path, request_headers, request_body, target_url, n)
WHERE (SELECT count(pg_advisory_xact_lock(7401, h))
       FROM (SELECT DISTINCT hashtext(m) AS h FROM unnest($1::text[]) AS m ORDER BY 1) s) >= 0
ORDER BY r.n)";

constexpr const char* kNotify = "BEGIN; SET LOCAL synchronous_commit = off; NOTIFY outboxd_outbox; COMMIT";

// The headers as a JSON array of [name, value] pairs, written straight into one string (the
// writer does this for every row it commits). Control characters are escaped; other bytes are
// copied as they are: the ingress refuses headers that are not UTF-8.
void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(ch);
        } else if (c < 0x20) {
            out += "\\u00";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        } else {
            out.push_back(ch);
        }
    }
    out.push_back('"');
}

}  // namespace

std::string headers_json(const ingress::Headers& headers) {
    std::string out;
    std::size_t size = 2;
    for (const auto& [k, v] : headers) size += k.size() + v.size() + 8;
    out.reserve(size);
    out.push_back('[');
    for (const auto& [k, v] : headers) {
        if (out.size() > 1) out.push_back(',');
        out.push_back('[');
        append_json_string(out, k);
        out.push_back(',');
        append_json_string(out, v);
        out.push_back(']');
    }
    out.push_back(']');
    return out;
}

db::Params insert_params(const std::vector<const NewRow*>& rows) {
    auto opt = [](const std::optional<std::string>& v) {
        return v ? std::optional<std::string_view>(*v) : std::optional<std::string_view>();
    };
    auto region = db::BinaryArray::text(), mailbox = db::BinaryArray::text(), category = db::BinaryArray::text(),
         provider = db::BinaryArray::text(), integration = db::BinaryArray::int8(), method = db::BinaryArray::text(),
         path = db::BinaryArray::text(), headers = db::BinaryArray::text(), body = db::BinaryArray::bytea(),
         target = db::BinaryArray::text(), locks = db::BinaryArray::text();
    for (const auto* r : rows) {
        region.add(opt(r->region));
        mailbox.add(std::optional<std::string_view>(r->mailbox));
        category.add(std::optional<std::string_view>(r->category));
        provider.add(opt(r->provider));
        integration.add(r->integration_id);
        method.add(std::optional<std::string_view>(r->method));
        path.add(std::optional<std::string_view>(r->path));
        headers.add(std::optional<std::string_view>(headers_json(r->headers)));
        body.add(std::optional<std::string_view>(r->body));
        target.add(opt(r->target_url));
        locks.add(std::optional<std::string_view>(r->mailbox));  // duplicates are fine: the lock takes DISTINCT
    }
    db::Params p;
    for (auto* a : {&locks, &region, &mailbox, &category, &provider, &integration, &method, &path, &headers, &body, &target})
        p.bytes(a->encode());
    return p;
}

OutboxWriter::OutboxWriter(std::string conninfo, metrics::Metrics& m, std::size_t max_batch, int sessions)
    : conninfo_(std::move(conninfo)), metrics_(m), max_batch_(max_batch) {
    for (int i = 0; i < std::max(1, sessions); ++i) threads_.emplace_back([this] { run(); });
}

OutboxWriter::~OutboxWriter() { stop(); }

void OutboxWriter::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    stop_cv_.notify_all();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
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
    Session session;
    bool counted = false;  // this thread's share of connected_
    auto backoff = std::chrono::milliseconds(100);
    bool logged_down = false;
    auto account = [&] {
        bool now = session && session->ok();
        if (now != counted) connected_.fetch_add(now ? 1 : -1);
        counted = now;
    };
    // Opens a session if there is none (or it ended while idle). A writer that cannot (the
    // server at max_connections, its session killed) used to answer its whole batch 503 while
    // the other writer's session worked: it now hands `batch` back to the queue for a writer
    // that has a session, and only when none has are the requests answered 503 at once (not
    // after a provider's timeout). Then it waits out a backoff. False when there is no session.
    auto open = [&](std::vector<Pending>& batch) {
        if (session && session->alive()) return true;
        session.reset();
        try {
            connect(session);
            account();
            if (logged_down) spdlog::info("outbox_writer: session open again");
            logged_down = false;
            backoff = std::chrono::milliseconds(100);
            return true;
        } catch (const std::exception& e) {
            session.reset();
            account();
            metrics_.db_errors.with({"outbox_writer"}).inc();
            if (!logged_down)
                spdlog::error("outbox_writer: cannot open a session, retrying with backoff error=\"{}\"", e.what());
            logged_down = true;
        }
        std::vector<Pending> refused;
        {
            std::unique_lock lk(mu_);
            if (connected_.load() > 0 && !stopping_) {
                for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
                batch.clear();
                cv_.notify_one();
            } else {
                refused = std::move(batch);
                batch.clear();
                while (!queue_.empty()) {
                    refused.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
            }
        }
        for (auto& p : refused) p.done(WriteStatus::failed);
        std::unique_lock lk(mu_);
        // Not on cv_: a request's notify_one could wake this thread instead of a writer that
        // has a session, and be lost.
        stop_cv_.wait_for(lk, backoff, [&] { return stopping_; });
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
        return false;
    };
    while (true) {
        // Connected before the first request, so /readyz can tell.
        std::vector<Pending> none;
        if (!session && !open(none)) {
            std::lock_guard lk(mu_);
            if (stopping_) break;
            continue;
        }
        std::vector<Pending> batch;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) break;  // stopping and drained
            while (!queue_.empty() && batch.size() < max_batch_) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        if (!session->alive() && !open(batch)) continue;
        flush(session, batch);
        account();
    }
    session.reset();
    account();
}

void OutboxWriter::connect(Session& s) {
    s.emplace(conninfo_, "outboxd-writer");
    // This session wakes drainers itself after each commit (see sql/005_deferred_notify.sql).
    s->exec("SET outboxd.defer_notify = on");
    // A provider waits about 10 s for its answer (GitHub) and then counts a failure, so a commit
    // stuck behind a lock (a migration, a DBA's LOCK TABLE) is answered 503 before that.
    s->exec("SET lock_timeout = '5s'");
}

void OutboxWriter::insert(Session& s, const std::vector<const NewRow*>& rows) {
    auto& c = *s;
    auto params = insert_params(rows);
    const auto start = std::chrono::steady_clock::now();
    c.exec_prepared("outbox_insert_rows", kInsertRows, params);
    metrics_.commit_duration.get().observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

void OutboxWriter::wake(Session& s) {
    auto& c = *s;
    // The rows are durable; the wake-up is only a hint (drainers poll too), so its own tiny
    // transaction skips the WAL flush and holds the notify lock for microseconds.
    try {
        c.exec(kNotify);
    } catch (const db::Error& e) {
        spdlog::debug("outbox_writer: NOTIFY failed (drainers will poll) error=\"{}\"", e.what());
    }
}

void OutboxWriter::flush(Session& s, std::vector<Pending>& batch) {
    auto count_enqueued = [&](const Pending& p) {
        for (const auto& r : p.rows) metrics_.enqueued.with({r.region.value_or("none")}).inc();
    };
    try {
        if (!s || !s->alive()) connect(s);
        std::vector<const NewRow*> all;
        for (const auto& p : batch)
            for (const auto& r : p.rows) all.push_back(&r);
        if (!all.empty()) insert(s, all);
        metrics_.commit_batch.get().observe(static_cast<double>(batch.size()));
        for (auto& p : batch) {
            count_enqueued(p);
            p.done(WriteStatus::committed);
        }
        if (!all.empty()) wake(s);
        return;
    } catch (const db::Error& e) {
        metrics_.db_errors.with({"outbox_writer"}).inc();
        // A lock or statement timeout would hit each request of the batch again, one by one.
        bool batch_wide = e.connection_lost() || e.sqlstate() == "55P03" || e.sqlstate() == "57014";
        if (batch_wide || batch.size() == 1) {
            spdlog::error("outbox_writer: commit failed rows_requests={} sqlstate={} error=\"{}\"", batch.size(),
                          e.sqlstate(), e.what());
            if (e.connection_lost()) s.reset();
            for (auto& p : batch) p.done(WriteStatus::failed);
            return;
        }
        spdlog::warn("outbox_writer: group commit failed, retrying one by one sqlstate={} error=\"{}\"", e.sqlstate(),
                     e.what());
    } catch (const std::exception& e) {
        spdlog::error("outbox_writer: commit failed error=\"{}\"", e.what());
        s.reset();
        for (auto& p : batch) p.done(WriteStatus::failed);
        return;
    }
    // A data error in one request must not fail its neighbours: commit each on its own.
    for (auto& p : batch) {
        try {
            std::vector<const NewRow*> rows;
            for (const auto& r : p.rows) rows.push_back(&r);
            if (!s || !s->alive()) connect(s);
            if (!rows.empty()) insert(s, rows);
            count_enqueued(p);
            p.done(WriteStatus::committed);
            if (!rows.empty()) wake(s);
        } catch (const std::exception& e) {
            spdlog::error("outbox_writer: commit failed error=\"{}\"", e.what());
            if (s && !s->ok()) s.reset();
            p.done(WriteStatus::failed);
        }
    }
}

}  // namespace outboxd::outbox
