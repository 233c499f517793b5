// Persists outbox rows with group commit: concurrent ingress requests are gathered into one
// transaction, and each caller is answered only after that transaction committed.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "outboxd/db/connection.hpp"
#include "outboxd/ingress/request.hpp"
#include "outboxd/metrics/metrics.hpp"

namespace outboxd::outbox {

struct NewRow {
    std::optional<std::string> region;  // NULL for rows that carry a target_url
    std::string mailbox;
    std::string category = "webhook_proxy";
    std::optional<std::string> provider;
    std::optional<std::int64_t> integration_id;
    std::string method = "POST";
    std::string path;
    ingress::Headers headers;
    std::string body;
    std::optional<std::string> target_url;
};

enum class WriteStatus { committed, failed, shutting_down };

class OutboxWriter {
public:
    // `sessions` writer threads, each with its own connection, take batches from one queue: while
    // one session waits for its commit's WAL flush, the next gathers and sends the next batch.
    OutboxWriter(std::string conninfo, metrics::Metrics& m, std::size_t max_batch = 512, int sessions = 2);
    ~OutboxWriter();

    // Queues the rows of one request; the future resolves after COMMIT (or failure). All rows of
    // one call commit together, in the order given.
    std::future<WriteStatus> write(std::vector<NewRow> rows);
    // Convenience: write and wait.
    WriteStatus write_and_wait(std::vector<NewRow> rows) { return write(std::move(rows)).get(); }
    // Writer sessions open now; /readyz is false at 0 (every webhook would be answered 503).
    int connected_sessions() const { return connected_.load(); }
    // Queues the rows of one request; `done` runs on the writer's thread after COMMIT (or failure),
    // so it must only hand the result on (post it to an executor), never block.
    void write_async(std::vector<NewRow> rows, std::function<void(WriteStatus)> done);
    void stop();

private:
    struct Pending {
        std::vector<NewRow> rows;
        std::function<void(WriteStatus)> done;
    };
    using Session = std::optional<db::Connection>;
    void run();
    void flush(Session& s, std::vector<Pending>& batch);
    void insert(Session& s, const std::vector<const NewRow*>& rows);
    void wake(Session& s);
    void connect(Session& s);

    std::string conninfo_;
    metrics::Metrics& metrics_;
    std::size_t max_batch_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::condition_variable stop_cv_;  // a writer without a session waits out its backoff on this
    std::deque<Pending> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
    std::atomic<int> connected_{0};
};

// The stored form of request_headers: a JSON array of [name, value] pairs, in order.
std::string headers_json(const ingress::Headers& headers);

// The insert statement's parameters: the mailboxes to lock, then one binary array per column.
db::Params insert_params(const std::vector<const NewRow*>& rows);

}  // namespace outboxd::outbox
