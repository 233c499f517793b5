// Leases due shards to this daemon (outbox_lease) and reads their first rows. Runs on the LISTEN
// connection, whose backend pid is the lease's liveness: when this daemon dies, its session ends
// and its leases are void at once.
#pragma once
#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "outboxd/db/connection.hpp"
#include "outboxd/drain/types.hpp"

namespace outboxd::drain {

struct ClaimParams {
    std::string owner;
    std::chrono::milliseconds lease{30000};
    int max_shards = 100;
    int rows_per_shard = 20;
    std::vector<std::string> skip_regions;
};

class MailboxClaimer {
public:
    explicit MailboxClaimer(db::Connection& conn) : conn_(conn) {}
    // Planner settings the claim statements need on their session (index paths only).
    static void configure_session(db::Connection& conn);
    std::vector<ShardRun> claim(const ClaimParams& p);
    // Extends every lease this session holds (claimed, not yet released) to `lease` from now;
    // returns how many. A finished run's outcomes wait in the completer until they are written,
    // and if that waits on a lock past the lease, the next claim would send the same rows again.
    std::int64_t renew_leases(const std::string& owner, std::chrono::milliseconds lease);
    // Deletes lease rows that are free or void and whose shard has no rows left; returns how many.
    std::int64_t sweep_void_leases();
    // (kind, name) pairs from outbox_pause.
    std::set<std::pair<std::string, std::string>> paused();

private:
    db::Connection& conn_;
};

}  // namespace outboxd::drain
