// The claim statement. Ordering invariant: a row is handed to a deliverer only while it is the
// lowest id of its shard still in control_outbox, or follows that head within the same lease.
// Heads come from a loose index scan over (shard_key, id), so a shard with 10 000 rows costs one
// index probe like any other and cannot starve the rest. Rows are then found by primary key
// (`= ANY (ARRAY(...))`), never by a join the planner might turn into a scan of the whole table
// when its statistics lag behind a fast-growing backlog.
#include "outboxd/drain/mailbox_claimer.hpp"

#include <boost/json.hpp>
#include <map>

namespace outboxd::drain {
namespace {

constexpr const char* kClaim = R"(
WITH RECURSIVE shards(k) AS (
    (SELECT shard_key FROM control_outbox ORDER BY shard_key LIMIT 1)
    UNION ALL
    SELECT (SELECT c.shard_key FROM control_outbox c WHERE c.shard_key > s.k ORDER BY c.shard_key LIMIT 1)
    FROM shards s WHERE s.k IS NOT NULL
),
heads AS (
    SELECT h.* FROM shards s
    CROSS JOIN LATERAL (SELECT c.id, c.shard_key, c.mailbox_name, c.region_name, c.scheduled_for,
                               c.lease_until, c.lease_pid
                        FROM control_outbox c WHERE c.shard_key = s.k ORDER BY c.id LIMIT 1) h
    WHERE s.k IS NOT NULL
),
live AS (SELECT pid FROM pg_stat_activity),
eligible AS (
    SELECT h.id FROM heads h
    WHERE h.scheduled_for <= now()
      AND (h.lease_until IS NULL OR h.lease_until < now() OR h.lease_pid NOT IN (SELECT pid FROM live))
      AND NOT EXISTS (SELECT 1 FROM outbox_pause p
                      WHERE (p.kind = 'mailbox' AND p.name = h.mailbox_name)
                         OR (p.kind = 'region' AND p.name = h.region_name))
      AND (h.region_name IS NULL OR h.region_name <> ALL ($5::text[]))
    ORDER BY h.scheduled_for, h.id
    LIMIT $3
),
locked_heads AS (
    -- Re-checked on the locked version: another daemon may have leased it since our snapshot.
    SELECT c.id, c.shard_key FROM control_outbox c
    WHERE c.id = ANY (ARRAY(SELECT id FROM eligible))
      AND c.scheduled_for <= now()
      AND (c.lease_until IS NULL OR c.lease_until < now() OR c.lease_pid NOT IN (SELECT pid FROM live))
    FOR UPDATE SKIP LOCKED
),
run AS (
    SELECT l.id FROM locked_heads l
    UNION ALL
    SELECT f.id FROM locked_heads l
    CROSS JOIN LATERAL (SELECT c.id FROM control_outbox c WHERE c.shard_key = l.shard_key AND c.id > l.id
                        ORDER BY c.id LIMIT $4 - 1 FOR UPDATE) f
)
UPDATE control_outbox c
SET lease_owner = $1, lease_pid = pg_backend_pid(), lease_until = now() + $2::bigint * interval '1 millisecond'
WHERE c.id = ANY (ARRAY(SELECT id FROM run))
RETURNING c.id, c.region_name, c.mailbox_name, c.category, c.attempts,
          extract(epoch FROM c.date_added)::float8, c.request_method, c.request_path,
          c.request_headers::text, c.request_body, c.target_url, c.shard_key)";

ingress::Headers parse_headers(std::string_view text) {
    ingress::Headers out;
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    if (ec || !v.is_array()) return out;
    for (const auto& pair : v.as_array()) {
        if (!pair.is_array() || pair.as_array().size() != 2) continue;
        const auto& k = pair.as_array()[0];
        const auto& val = pair.as_array()[1];
        if (k.is_string() && val.is_string()) out.emplace_back(std::string(k.as_string()), std::string(val.as_string()));
    }
    return out;
}

}  // namespace

std::vector<ShardRun> MailboxClaimer::claim(const ClaimParams& p) {
    auto r = conn_.exec_prepared("outbox_claim", kClaim,
                                 db::Params(p.owner, static_cast<std::int64_t>(p.lease.count()), p.max_shards,
                                            p.rows_per_shard, db::array_literal(p.skip_regions)));
    std::map<std::string, ShardRun> runs;
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
        auto& run = runs[r.text(i, 11)];
        run.shard = r.text(i, 11);
        run.rows.push_back(std::move(row));
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

std::set<std::pair<std::string, std::string>> MailboxClaimer::paused() {
    auto r = conn_.exec_prepared("outbox_paused", "SELECT kind, name FROM outbox_pause");
    std::set<std::pair<std::string, std::string>> out;
    for (int i = 0; i < r.rows(); ++i) out.emplace(r.text(i, 0), r.text(i, 1));
    return out;
}

}  // namespace outboxd::drain
