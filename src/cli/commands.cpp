// outboxctl's database work: every statement it runs is in the block below, parameterised, so a
// DBA can read what the tool does to the outbox without reading the C++.
#include <algorithm>
#include <map>
#include <set>

#include "commands.hpp"

namespace outboxd::cli {
namespace {

// --- SQL -------------------------------------------------------------------------------------
// One snapshot, so the region totals and the mailbox list describe the same moment.
constexpr const char* kStatusSnapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

// Status reads the DBA views, not the tables, so outboxctl and a DBA's psql always agree.
// NULL regions stay NULL here and become kNoRegion in C++, next to the configured names.
constexpr const char* kStatusRegions = R"(
WITH b AS (
    SELECT region_name, sum(rows)::bigint AS backlog,
           greatest(max(extract(epoch FROM oldest_age)), 0)::float8 AS oldest_age_seconds
    FROM outbox_backlog GROUP BY region_name
),
d AS (SELECT region_name, sum(rows)::bigint AS dead FROM outbox_dead_summary GROUP BY region_name),
p AS (SELECT name AS region_name FROM outbox_pause WHERE kind = 'region'),
names AS (SELECT region_name FROM b UNION SELECT region_name FROM d UNION SELECT region_name FROM p)
SELECT n.region_name, coalesce(b.backlog, 0), coalesce(b.oldest_age_seconds, 0), coalesce(d.dead, 0),
       EXISTS (SELECT 1 FROM p WHERE p.region_name = n.region_name)
FROM names n
LEFT JOIN b ON b.region_name IS NOT DISTINCT FROM n.region_name
LEFT JOIN d ON d.region_name IS NOT DISTINCT FROM n.region_name
ORDER BY n.region_name NULLS LAST)";

// The view's `paused` is already the effective state (mailbox or region).
constexpr const char* kStatusMailboxes = R"(
SELECT mailbox_name, region_name, rows, greatest(extract(epoch FROM oldest_age), 0)::float8, paused
FROM outbox_backlog
ORDER BY oldest_date_added, region_name NULLS LAST, mailbox_name
LIMIT $1::bigint)";

// $1 region ('none' = NULL region), $2 mailbox: NULL means "any".
constexpr const char* kDeadList = R"(
SELECT id, region_name, mailbox_name, category, attempts, last_status, last_error, reason,
       to_char(date_added AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(dead_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM control_outbox_dead
WHERE ($1::text IS NULL OR region_name = $1 OR ($1 = 'none' AND region_name IS NULL))
  AND ($2::text IS NULL OR mailbox_name = $2)
ORDER BY dead_at DESC, id DESC
LIMIT $3::bigint)";

// Locks the selected dead rows so a concurrent replay or discard cannot take them twice.
// $1 ids (NULL = all), $2 region, $3 mailbox.
constexpr const char* kDeadSelect = R"(
SELECT id, mailbox_name FROM control_outbox_dead
WHERE ($1::bigint[] IS NULL OR id = ANY ($1::bigint[]))
  AND ($2::text IS NULL OR region_name = $2 OR ($2 = 'none' AND region_name IS NULL))
  AND ($3::text IS NULL OR mailbox_name = $3)
ORDER BY id
FOR UPDATE)";

// The writers' ordering lock (sql/002_outbox.sql): without it a writer of the same mailbox could
// commit a newer id while the replayed, older id is still invisible, and have it delivered first.
constexpr const char* kLockMailbox = "SELECT outbox_lock_mailbox($1)";

// Replay keeps the original id, so the row is again the head of its mailbox ahead of anything
// newer. date_added restarts because retry.max_age counts from it and a row that died of max_age
// would otherwise die again on its first claim. last_status and last_error are kept so the row
// still says why it died until its next attempt overwrites them. The insert trigger sends the
// NOTIFY that wakes the drainers.
constexpr const char* kDeadReplay = R"(
WITH moved AS (
    DELETE FROM control_outbox_dead WHERE id = ANY ($1::bigint[]) RETURNING *
)
INSERT INTO control_outbox (id, region_name, mailbox_name, category, provider, integration_id, date_added,
                            scheduled_for, attempts, last_status, last_error, last_attempt_at, request_method,
                            request_path, request_headers, request_body, target_url)
SELECT id, region_name, mailbox_name, category, provider, integration_id, now(),
       now(), 0, last_status, last_error, NULL, request_method,
       request_path, request_headers, request_body, target_url
FROM moved)";

constexpr const char* kDeadDiscard = "DELETE FROM control_outbox_dead WHERE id = ANY ($1::bigint[])";

constexpr const char* kPause = "INSERT INTO outbox_pause (kind, name) VALUES ($1, $2) ON CONFLICT DO NOTHING";
constexpr const char* kResume = "DELETE FROM outbox_pause WHERE kind = $1 AND name = $2";
// ---------------------------------------------------------------------------------------------

// "The 100 mailboxes with the oldest head row" (SPEC.md).
constexpr std::int64_t kStatusMailboxLimit = 100;

std::string region_label(const db::Result& r, int row, int col) {
    return r.is_null(row, col) ? kNoRegion : r.text(row, col);
}

std::optional<std::int64_t> optional_int(const db::Result& r, int row, int col) {
    if (r.is_null(row, col)) return std::nullopt;
    return r.int64(row, col);
}

// A Postgres array literal of integers: safe to pass as one parameter because each element is
// a number we formatted ourselves.
std::string bigint_array(const std::vector<std::int64_t>& ids) {
    std::string out = "{";
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(ids[i]);
    }
    return out + "}";
}

db::Params selection_params(const DeadSelection& sel) {
    db::Params p;
    if (sel.ids.empty())
        p.null();
    else
        p.add(bigint_array(sel.ids));
    p.add(sel.region).add(sel.mailbox);
    return p;
}

struct Selected {
    std::vector<std::int64_t> ids;
    std::set<std::string> mailboxes;  // sorted: every replay takes the locks in the same order
};

// Locks the selected rows; names every requested id that is not among them.
Selected select_dead(db::Connection& conn, const DeadSelection& sel) {
    auto r = conn.exec(kDeadSelect, selection_params(sel));
    Selected out;
    for (int i = 0; i < r.rows(); ++i) {
        out.ids.push_back(r.int64(i, 0));
        out.mailboxes.insert(r.text(i, 1));
    }
    std::vector<std::int64_t> missing;
    for (auto id : std::set<std::int64_t>(sel.ids.begin(), sel.ids.end()))
        if (!std::binary_search(out.ids.begin(), out.ids.end(), id)) missing.push_back(id);
    if (!missing.empty()) {
        std::string msg = missing.size() == 1 ? "no dead row with id " : "no dead rows with ids ";
        for (std::size_t i = 0; i < missing.size(); ++i) msg += (i ? ", " : "") + std::to_string(missing[i]);
        if (sel.region) msg += " in region " + *sel.region;
        if (sel.mailbox) msg += " in mailbox " + *sel.mailbox;
        throw CommandError(msg + "; nothing changed");
    }
    return out;
}

}  // namespace

StatusReport status_read(db::Connection& conn, const std::vector<std::string>& configured) {
    db::Result regions, mailboxes;
    {
        conn.exec(kStatusSnapshot);
        try {
            regions = conn.exec(kStatusRegions, db::Params());
            mailboxes = conn.exec(kStatusMailboxes, db::Params(kStatusMailboxLimit));
        } catch (...) {
            conn.rollback();
            throw;
        }
        conn.commit();
    }

    StatusReport out;
    std::map<std::string, RegionStatus> found;
    std::vector<std::string> extra;  // regions with rows or pauses that the config does not list
    for (int i = 0; i < regions.rows(); ++i) {
        RegionStatus s{region_label(regions, i, 0), regions.int64(i, 1), regions.number(i, 2), regions.int64(i, 3),
                       regions.boolean(i, 4)};
        if (std::find(configured.begin(), configured.end(), s.region) == configured.end()) extra.push_back(s.region);
        found[s.region] = s;
    }
    // Configured regions first, in file order, then the others as sorted by the query.
    for (const auto& name : configured) {
        auto it = found.find(name);
        out.regions.push_back(it != found.end() ? it->second : RegionStatus{name});
    }
    for (const auto& name : extra) out.regions.push_back(found[name]);

    for (int i = 0; i < mailboxes.rows(); ++i)
        out.mailboxes.push_back({mailboxes.text(i, 0), region_label(mailboxes, i, 1), mailboxes.int64(i, 2),
                                 mailboxes.number(i, 3), mailboxes.boolean(i, 4)});
    return out;
}

std::vector<DeadRow> dead_list(db::Connection& conn, const DeadSelection& sel, std::int64_t limit) {
    auto r = conn.exec(kDeadList, db::Params(sel.region, sel.mailbox, limit));
    std::vector<DeadRow> out;
    for (int i = 0; i < r.rows(); ++i)
        out.push_back({r.int64(i, 0), region_label(r, i, 1), r.text(i, 2), r.text(i, 3), optional_int(r, i, 4),
                       optional_int(r, i, 5), r.optional_text(i, 6), r.text(i, 7), r.text(i, 8), r.text(i, 9)});
    return out;
}

MoveReport dead_replay(db::Connection& conn, const DeadSelection& sel) {
    db::Transaction tx(conn);
    auto selected = select_dead(conn, sel);
    for (const auto& mailbox : selected.mailboxes) conn.exec(kLockMailbox, db::Params(mailbox));
    std::int64_t n = 0;
    try {
        if (!selected.ids.empty()) n = conn.exec(kDeadReplay, db::Params(bigint_array(selected.ids))).affected();
    } catch (const db::Error& e) {
        // Ids come from one sequence, so this means someone copied a row back by hand.
        if (e.sqlstate() == "23505")
            throw CommandError(std::string("an id to replay is already in control_outbox; nothing changed (") +
                               e.what() + ")");
        throw;
    }
    tx.commit();
    return {"replayed", n};
}

MoveReport dead_discard(db::Connection& conn, const DeadSelection& sel) {
    db::Transaction tx(conn);
    auto selected = select_dead(conn, sel);
    std::int64_t n = 0;
    if (!selected.ids.empty()) n = conn.exec(kDeadDiscard, db::Params(bigint_array(selected.ids))).affected();
    tx.commit();
    return {"discarded", n};
}

PauseReport pause_set(db::Connection& conn, const std::string& kind, const std::string& name, bool pausing) {
    auto r = conn.exec(pausing ? kPause : kResume, db::Params(kind, name));
    return {kind, name, pausing, r.affected() > 0};
}

}  // namespace outboxd::cli
