// The claim: two statements, each with its own snapshot.
//
// 1. kLeaseShards finds due shard heads with a loose index scan over (shard_key, id), so a shard
//    with 10 000 rows costs one index probe like any other and cannot starve the rest, and leases
//    those shards (one narrow outbox_lease row each). ON CONFLICT re-checks a lease on its newest
//    version: of two daemons claiming one shard, the second sees the first's lease and skips it.
// 2. kShardRows reads the first rows of each leased shard. It must not share the first
//    statement's snapshot: if that snapshot predates the commit that released a lease (the
//    previous holder's deletes and retries), the rows it shows are stale. A lease the first
//    statement saw as free was released before the statement began, so the second statement's
//    later snapshot sees everything that release committed.
//
// Ordering invariant: only a shard's lease holder delivers, retries or dead-letters its rows, and
// it takes them in id order from the head.
#include "outboxd/drain/mailbox_claimer.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <map>

#include "outboxd/common/scratch_json.hpp"

namespace outboxd::drain {
namespace {

constexpr const char* kLeaseShards = R"(
WITH RECURSIVE shards(k) AS (
    (SELECT shard_key FROM control_outbox ORDER BY shard_key LIMIT 1)
    UNION ALL
    SELECT (SELECT c.shard_key FROM control_outbox c WHERE c.shard_key > s.k ORDER BY c.shard_key LIMIT 1)
    FROM shards s WHERE s.k IS NOT NULL
),
heads AS (
    SELECT h.* FROM shards s
    CROSS JOIN LATERAL (SELECT c.id, c.shard_key, c.mailbox_name, c.region_name, c.scheduled_for
                        FROM control_outbox c WHERE c.shard_key = s.k ORDER BY c.id LIMIT 1) h
    WHERE s.k IS NOT NULL
),
-- The lease check is a scalar subquery on purpose: one primary-key probe per head. Written as
-- NOT EXISTS it became a hash anti-join that read every lease row (one per shard ever claimed)
-- on every claim.
eligible AS (
    SELECT h.shard_key FROM heads h
    WHERE h.scheduled_for <= now()
      AND (SELECT l.owner IS NOT NULL AND l.until >= now() AND l.pid IN (SELECT pid FROM pg_stat_activity)
           FROM outbox_lease l WHERE l.shard_key = h.shard_key) IS NOT TRUE
      AND NOT EXISTS (SELECT 1 FROM outbox_pause p
                      WHERE (p.kind = 'mailbox' AND p.name = h.mailbox_name)
                         OR (p.kind = 'region' AND p.name = h.region_name))
      AND (h.region_name IS NULL OR h.region_name <> ALL ($4::text[]))
    ORDER BY h.scheduled_for, h.id
    LIMIT $3
)
-- Inserted in key order, so two daemons claiming overlapping shards wait for each other in the
-- same order and never deadlock on the primary key.
INSERT INTO outbox_lease AS l (shard_key, owner, pid, until)
SELECT shard_key, $1, pg_backend_pid(), now() + $2::bigint * interval '1 millisecond'
FROM eligible ORDER BY shard_key
ON CONFLICT (shard_key) DO UPDATE
    SET owner = EXCLUDED.owner, pid = EXCLUDED.pid, until = EXCLUDED.until, claimed_at = now()
    WHERE l.owner IS NULL OR l.until < now() OR l.pid NOT IN (SELECT pid FROM pg_stat_activity)
RETURNING l.shard_key)";

constexpr const char* kShardRows = R"(
SELECT c.id, c.region_name, c.mailbox_name, c.category, c.attempts,
       extract(epoch FROM c.date_added)::float8, c.request_method, c.request_path,
       c.request_headers::text, c.request_body, c.target_url, c.shard_key
FROM unnest($1::text[]) AS s(k)
CROSS JOIN LATERAL (SELECT * FROM control_outbox c WHERE c.shard_key = s.k ORDER BY c.id LIMIT $2) c)";

ingress::Headers parse_headers(std::string_view text) {
    ingress::Headers out;
    boost::system::error_code ec;
    ScratchJson json;  // the tree is thrown away at once
    auto v = json.parse(text, ec);
    if (ec || !v.is_array()) return out;
    out.reserve(v.as_array().size());
    for (const auto& pair : v.as_array()) {
        if (!pair.is_array() || pair.as_array().size() != 2) continue;
        const auto& k = pair.as_array()[0];
        const auto& val = pair.as_array()[1];
        if (k.is_string() && val.is_string()) out.emplace_back(std::string(k.as_string()), std::string(val.as_string()));
    }
    return out;
}

}  // namespace

void MailboxClaimer::configure_session(db::Connection& conn) {
    // The outbox swings from empty to huge, and PostgreSQL keeps the generic plan of a prepared
    // statement once it looks no dearer than the custom ones, i.e. while the table is empty. Such
    // a plan scanned the table sequentially inside the loose index scan (quadratic in the backlog,
    // found by the soak), and a head lookup (shard_key = k ORDER BY id LIMIT 1) estimated at one
    // row became a bitmap heap scan plus a sort that reads every row of the shard (after a pinned
    // horizon the soak caught one claim running for minutes). With both scan kinds off, every plan
    // of these statements, generic or not, is nested index probes whatever the table size (the
    // test ClaimsStayFastWhenTheBacklogGrowsFromEmpty). Claims are not re-planned each time, as
    // they were with plan_cache_mode = force_custom_plan: planning the claim took 0.6 ms, 40 % of
    // its cost, at 4,500 deliveries/s.
    conn.exec("SET enable_seqscan = off");
    conn.exec("SET enable_bitmapscan = off");
}

std::vector<ShardRun> MailboxClaimer::claim(const ClaimParams& p) {
    auto leased = conn_.exec_prepared("outbox_lease_shards", kLeaseShards,
                                      db::Params(p.owner, static_cast<std::int64_t>(p.lease.count()), p.max_shards,
                                                 db::array_literal(p.skip_regions)));
    if (leased.rows() == 0) return {};
    std::vector<std::string> shards;
    shards.reserve(static_cast<std::size_t>(leased.rows()));
    for (int i = 0; i < leased.rows(); ++i) shards.push_back(leased.text(i, 0));
    // Binary results: the body arrives as its bytes, not as hex to decode (7 % of a drainer's CPU).
    auto r = conn_.exec_prepared("outbox_shard_rows", kShardRows, db::Params(db::array_literal(shards), p.rows_per_shard),
                                 db::ResultFormat::binary);
    // Every leased shard becomes a run, even one whose rows vanished in between (an operator's
    // discard): the run's end is what releases the lease.
    std::map<std::string, ShardRun> runs;
    for (const auto& k : shards) runs[k].shard = k;
    for (int i = 0; i < r.rows(); ++i) {
        ClaimedRow row;
        row.id = r.int64(i, 0);
        row.region = r.optional_text(i, 1);
        row.mailbox = r.text(i, 2);
        row.category = r.text(i, 3);
        row.attempts = static_cast<int>(r.int64(i, 4));
        row.date_added = std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(r.number(i, 5))));
        row.method = r.text(i, 6);
        row.path = r.text(i, 7);
        row.headers = parse_headers(r.get(i, 8));
        row.body = r.bytea(i, 9);
        row.target_url = r.optional_text(i, 10);
        runs[r.text(i, 11)].rows.push_back(std::move(row));
    }
    std::vector<ShardRun> out;
    auto now = std::chrono::steady_clock::now();
    for (auto& [k, run] : runs) {
        std::sort(run.rows.begin(), run.rows.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
        run.claimed_at = now;
        out.push_back(std::move(run));
    }
    return out;
}

std::int64_t MailboxClaimer::renew_leases(const std::string& owner, std::chrono::milliseconds lease) {
    // Only this session's leases (pid): those of a lost session are void and must stay so. A
    // lease row another transaction holds (the completer releasing it, a claim) is skipped, not
    // waited for, so this cannot deadlock with either.
    auto r = conn_.exec_prepared("outbox_renew_leases", R"(
UPDATE outbox_lease l SET until = now() + $2::bigint * interval '1 millisecond'
FROM (SELECT shard_key FROM outbox_lease WHERE owner = $1 AND pid = pg_backend_pid() FOR UPDATE SKIP LOCKED) mine
WHERE l.shard_key = mine.shard_key)",
                                 db::Params(owner, static_cast<std::int64_t>(lease.count())));
    return r.affected();
}

std::int64_t MailboxClaimer::sweep_void_leases() {
    // Free or void lease rows of shards that have no rows left. (A void lease of a shard with rows
    // is simply overwritten by the next claim.) The DELETE re-checks `owner` on a row a claim
    // took meanwhile, so a live lease is never swept.
    auto r = conn_.exec_prepared("outbox_sweep_leases", R"(
DELETE FROM outbox_lease l
WHERE (l.owner IS NULL OR l.until < now() OR l.pid NOT IN (SELECT pid FROM pg_stat_activity))
  AND NOT EXISTS (SELECT 1 FROM control_outbox c WHERE c.shard_key = l.shard_key))");
    return r.affected();
}

std::set<std::pair<std::string, std::string>> MailboxClaimer::paused() {
    auto r = conn_.exec_prepared("outbox_paused", "SELECT kind, name FROM outbox_pause");
    std::set<std::pair<std::string, std::string>> out;
    for (int i = 0; i < r.rows(); ++i) out.emplace(r.text(i, 0), r.text(i, 1));
    return out;
}

}  // namespace outboxd::drain
