// Persists outbox rows with group commit: concurrent ingress requests are gathered into one
// transaction, and each caller is answered only after that transaction committed.
#pragma once
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
    OutboxWriter(std::string conninfo, metrics::Metrics& m, std::size_t max_batch = 512);
    ~OutboxWriter();

    // Queues the rows of one request; the future resolves after COMMIT (or failure). All rows of
    // one call commit together, in the order given.
    std::future<WriteStatus> write(std::vector<NewRow> rows);
    // Convenience: write and wait.
    WriteStatus write_and_wait(std::vector<NewRow> rows) { return write(std::move(rows)).get(); }
    // Queues the rows of one request; `done` runs on the writer's thread after COMMIT (or failure),
    // so it must only hand the result on (post it to an executor), never block.
    void write_async(std::vector<NewRow> rows, std::function<void(WriteStatus)> done);
    void stop();

private:
    struct Pending {
        std::vector<NewRow> rows;
        std::function<void(WriteStatus)> done;
    };
    void run();
    void flush(std::vector<Pending>& batch);
    void insert(const std::vector<const NewRow*>& rows);
    void connect();

    std::string conninfo_;
    metrics::Metrics& metrics_;
    std::size_t max_batch_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Pending> queue_;
    bool stopping_ = false;
    std::thread thread_;
    struct Db;
    std::unique_ptr<Db> db_;
};

// Serialises rows into the one JSON parameter the insert statement reads (body as hex).
std::string rows_to_json(const std::vector<const NewRow*>& rows);

}  // namespace outboxd::outbox
