// Rows as the drainer sees them: claimed runs in, outcomes out.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "outboxd/ingress/request.hpp"

namespace outboxd::drain {

struct ClaimedRow {
    std::int64_t id = 0;
    std::optional<std::string> region;
    std::string mailbox;
    std::string category;
    int attempts = 0;
    std::chrono::system_clock::time_point date_added;
    std::string method;
    std::string path;
    ingress::Headers headers;
    std::string body;
    std::optional<std::string> target_url;
};

// The first rows of one leased shard (mailbox within a region), in id order.
struct ShardRun {
    std::string shard;
    std::vector<ClaimedRow> rows;
    std::chrono::steady_clock::time_point claimed_at;
};

struct Outcome {
    // release ends a run: it frees the shard's lease, written in the same transaction as (or
    // after) the outcomes of the run's rows, so the next holder starts from what they left.
    enum class Kind { delivered, retry, dead, release } kind;
    std::int64_t id = 0;
    std::string shard;  // release: the shard whose lease ends
    std::optional<std::string> region;
    std::string mailbox;
    std::string category;
    int attempts = 0;  // after this attempt
    int status = 0;
    std::string error;
    std::chrono::milliseconds delay{0};
    std::string reason;  // dead: permanent_status, max_attempts, max_age, unknown_region, ...
    // For the app request log (category app_webhook).
    std::string url;
    std::string request_head;
    std::string response_head;
    bool timed_out = false;
    bool region_failure = false;  // counts against the region circuit
};

}  // namespace outboxd::drain
