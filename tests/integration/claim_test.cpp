// The claim statements on their own, against a real PostgreSQL: shard leases (outbox_lease) are
// exclusive across sessions, void when their session ends or their time is up, and released by
// the completer together with the run's outcomes; rows come back in binary form, byte for byte.
#include <gtest/gtest.h>

#include <set>

#include "outboxd/db/connection.hpp"
#include "outboxd/drain/completer.hpp"
#include "outboxd/drain/mailbox_claimer.hpp"
#include "outboxd/metrics/metrics.hpp"
#include "support/harness.hpp"

using namespace testsupport;
using outboxd::db::Connection;
using outboxd::db::Params;
using outboxd::drain::ClaimParams;
using outboxd::drain::MailboxClaimer;
using outboxd::drain::ShardRun;

namespace {

void seed(TestDatabase& db, int mailboxes, int rows) {
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, request_body) "
           "SELECT 'us', 'm:' || (g % $1), convert_to('m:' || (g % $1) || '#' || g, 'UTF8') "
           "FROM generate_series(1, $2) g",
           Params(mailboxes, rows));
}

std::set<std::string> shards_of(const std::vector<ShardRun>& runs) {
    std::set<std::string> out;
    for (const auto& r : runs) out.insert(r.shard);
    return out;
}

}  // namespace

TEST(Claim, TwoSessionsNeverHoldTheSameShard) {
    TestDatabase db("claim_exclusive");
    seed(db, 10, 100);
    Connection a(db.url()), b(db.url());
    auto ra = MailboxClaimer(a).claim({.owner = "a", .max_shards = 6, .rows_per_shard = 5});
    auto rb = MailboxClaimer(b).claim({.owner = "b", .max_shards = 6, .rows_per_shard = 5});
    ASSERT_EQ(ra.size(), 6u);
    ASSERT_EQ(rb.size(), 4u) << "only the shards a does not hold";
    for (const auto& s : shards_of(rb)) EXPECT_EQ(shards_of(ra).count(s), 0u) << s;
    for (const auto& run : ra) {
        ASSERT_EQ(run.rows.size(), 5u) << "the head and the rows that follow it";
        for (std::size_t i = 1; i < run.rows.size(); ++i) EXPECT_LT(run.rows[i - 1].id, run.rows[i].id);
        EXPECT_EQ(run.rows[0].id, std::stoll(db.scalar("SELECT min(id) FROM control_outbox WHERE shard_key = '" +
                                                       run.shard + "'")));
    }
    EXPECT_TRUE(MailboxClaimer(a).claim({.owner = "a"}).empty()) << "everything is leased";
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox_lease"), "10");
}

TEST(Claim, ALeaseDiesWithItsSession) {
    TestDatabase db("claim_session_gone");
    seed(db, 3, 9);
    {
        Connection gone(db.url());
        ASSERT_EQ(MailboxClaimer(gone).claim({.owner = "gone"}).size(), 3u);
    }
    // The session's backend may take a moment to leave pg_stat_activity after the disconnect.
    Connection next(db.url());
    std::vector<ShardRun> runs;
    ASSERT_TRUE(wait_until([&] { return (runs = MailboxClaimer(next).claim({.owner = "next"})).size() == 3; }, 5s));
    EXPECT_EQ(runs[0].rows.size(), 3u);
    EXPECT_EQ(db.scalar("SELECT string_agg(DISTINCT owner, ',') FROM outbox_lease"), "next");
}

TEST(Claim, ALeaseEndsWhenItsTimeIsUpEvenIfItsSessionLives) {
    TestDatabase db("claim_expiry");
    seed(db, 2, 2);
    Connection a(db.url()), b(db.url());
    ASSERT_EQ(MailboxClaimer(a).claim({.owner = "a", .lease = std::chrono::milliseconds(200)}).size(), 2u);
    EXPECT_TRUE(MailboxClaimer(b).claim({.owner = "b"}).empty());
    std::this_thread::sleep_for(300ms);  // the lease's own clock is what is under test
    EXPECT_EQ(MailboxClaimer(b).claim({.owner = "b"}).size(), 2u);
}

TEST(Claim, DueHeadsOnlyAndPausedOrSkippedRegionsStay) {
    TestDatabase db("claim_filters");
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, scheduled_for) VALUES "
           "('us', 'later', now() + interval '1 hour'), ('us', 'later', now()), "
           "('eu', 'skipped', now()), ('ap', 'paused', now()), ('us', 'due', now())");
    db.sql("INSERT INTO outbox_pause (kind, name) VALUES ('region', 'ap')");
    Connection a(db.url());
    auto runs = MailboxClaimer(a).claim({.owner = "a", .skip_regions = {"eu"}});
    EXPECT_EQ(shards_of(runs), (std::set<std::string>{"due@us"})) << "a head in backoff holds its whole shard";
}

TEST(Claim, SweepRemovesFreeAndVoidLeasesOfEmptiedShardsOnly) {
    TestDatabase db("claim_sweep");
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name) VALUES ('us', 'busy')");
    db.sql("INSERT INTO outbox_lease (shard_key, owner, pid, until) VALUES "
           "('expired@us', 'x', pg_backend_pid(), now() - interval '1 second'), "
           "('dead@us', 'x', 2147483000, now() + interval '1 hour'), "
           "('free@us', NULL, NULL, NULL), "
           "('busy@us', NULL, NULL, NULL), "
           "('live@us', 'x', pg_backend_pid(), now() + interval '1 hour')");
    Connection a(db.url());
    EXPECT_EQ(MailboxClaimer(a).sweep_void_leases(), 3);
    EXPECT_EQ(db.scalar("SELECT string_agg(shard_key, ',' ORDER BY shard_key) FROM outbox_lease"), "busy@us,live@us")
        << "a shard with rows keeps its row; a live lease is never swept";
}

TEST(Claim, AFreeLeaseRowIsTakenAgainInPlace) {
    TestDatabase db("claim_reuse");
    seed(db, 1, 2);
    Connection a(db.url());
    auto first = MailboxClaimer(a).claim({.owner = "a", .rows_per_shard = 1});
    ASSERT_EQ(first.size(), 1u);
    db.sql("DELETE FROM control_outbox WHERE id = " + std::to_string(first[0].rows[0].id));
    db.sql("UPDATE outbox_lease SET owner = NULL, pid = NULL, until = NULL");
    auto second = MailboxClaimer(a).claim({.owner = "b"});
    ASSERT_EQ(second.size(), 1u);
    EXPECT_EQ(db.scalar("SELECT count(*) || ':' || min(owner) FROM outbox_lease"), "1:b");
}

TEST(Claim, CompleterReleasesTheLeaseWithTheRunsOutcomes) {
    TestDatabase db("claim_release");
    seed(db, 1, 3);
    outboxd::metrics::Metrics m;
    outboxd::drain::Completer completer(db.url(), "a", m, nullptr, nullptr);
    Connection a(db.url());
    auto runs = MailboxClaimer(a).claim({.owner = "a"});
    ASSERT_EQ(runs.size(), 1u);
    ASSERT_EQ(runs[0].rows.size(), 3u);
    using Kind = outboxd::drain::Outcome::Kind;
    completer.push({.kind = Kind::delivered, .id = runs[0].rows[0].id});
    completer.push({.kind = Kind::retry, .id = runs[0].rows[1].id, .attempts = 1, .status = 503, .error = "HTTP 503",
                    .delay = std::chrono::milliseconds(60000)});
    completer.push({.kind = Kind::release, .shard = runs[0].shard});
    ASSERT_TRUE(completer.drain(5s));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox_lease WHERE owner IS NOT NULL"), "0");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox_lease"), "1") << "the free lease row stays, for HOT updates";
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "2");
    EXPECT_EQ(db.scalar("SELECT attempts || ':' || last_status || ':' || (scheduled_for > now()) FROM control_outbox "
                        "WHERE id = " + std::to_string(runs[0].rows[1].id)),
              "1:503:true");
    EXPECT_TRUE(MailboxClaimer(a).claim({.owner = "a"}).empty()) << "the new head is in backoff";
}

TEST(Claim, AnExpiredHolderCannotOverwriteTheNewHoldersState) {
    TestDatabase db("claim_stale_holder");
    seed(db, 1, 1);
    Connection a(db.url()), b(db.url());
    auto old_runs = MailboxClaimer(a).claim({.owner = "a", .lease = std::chrono::milliseconds(100)});
    ASSERT_EQ(old_runs.size(), 1u);
    std::this_thread::sleep_for(200ms);
    ASSERT_EQ(MailboxClaimer(b).claim({.owner = "b"}).size(), 1u);
    outboxd::metrics::Metrics m;
    {
        outboxd::drain::Completer late(db.url(), "a", m, nullptr, nullptr);
        using Kind = outboxd::drain::Outcome::Kind;
        late.push({.kind = Kind::retry, .id = old_runs[0].rows[0].id, .attempts = 1, .status = 500, .error = "late",
                   .delay = std::chrono::milliseconds(60000)});
        late.push({.kind = Kind::release, .shard = old_runs[0].shard});
        ASSERT_TRUE(late.drain(5s));
    }
    EXPECT_EQ(db.scalar("SELECT attempts FROM control_outbox"), "0") << "a's retry was refused";
    EXPECT_EQ(db.scalar("SELECT owner FROM outbox_lease"), "b") << "a's release left b's lease alone";
}

TEST(Claim, BinaryRowsCarryEveryByteAndEveryType) {
    TestDatabase db("claim_binary");
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, request_body, attempts, request_headers, "
           "date_added) VALUES ('us', 'bin', '\\x00ff5c7800'::bytea, 7, '[[\"X-A\", \"b\"]]', "
           "'2026-01-02 03:04:05.5+00')");
    Connection a(db.url());
    auto runs = MailboxClaimer(a).claim({.owner = "a"});
    ASSERT_EQ(runs.size(), 1u);
    const auto& row = runs[0].rows.at(0);
    EXPECT_EQ(row.body, std::string("\x00\xff\\x\x00", 5));
    EXPECT_EQ(row.attempts, 7);
    EXPECT_EQ(row.region, "us");
    EXPECT_EQ(row.mailbox, "bin");
    ASSERT_EQ(row.headers.size(), 1u);
    EXPECT_EQ(row.headers[0].first, "X-A");
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(row.date_added.time_since_epoch()).count(),
              1767323045500);
    EXPECT_FALSE(row.target_url.has_value());

    auto r = a.exec_prepared("binary_types", "SELECT -5::int2, -70000::int4, -5000000000::int8, -1.25::float8, "
                                             "2.5::float4, true, false, 'x'::text",
                             {}, outboxd::db::ResultFormat::binary);
    EXPECT_EQ(r.int64(0, 0), -5);
    EXPECT_EQ(r.int64(0, 1), -70000);
    EXPECT_EQ(r.int64(0, 2), -5000000000);
    EXPECT_EQ(r.number(0, 3), -1.25);
    EXPECT_EQ(r.number(0, 4), 2.5);
    EXPECT_TRUE(r.boolean(0, 5));
    EXPECT_FALSE(r.boolean(0, 6));
    EXPECT_EQ(r.text(0, 7), "x");
}

TEST(Claim, BinaryArraysRoundTripThroughPostgres) {
    TestDatabase db("binary_arrays");
    using outboxd::db::BinaryArray;
    auto text = BinaryArray::text();
    text.add(std::optional<std::string_view>("naïve"))
        .add(std::optional<std::string_view>())
        .add(std::optional<std::string_view>(""))
        .add(std::optional<std::string_view>("a,\"b\"{c}"));
    auto bytes = BinaryArray::bytea();
    bytes.add(std::optional<std::string_view>(std::string_view("\x00\xff\\", 3)));
    auto ints = BinaryArray::int8();
    ints.add(std::optional<std::int64_t>(-5000000000)).add(std::optional<std::int64_t>()).add(std::optional<std::int64_t>(7));
    Params p;
    p.bytes(text.encode()).bytes(bytes.encode()).bytes(ints.encode()).bytes(BinaryArray::text().encode());
    auto r = db.sql("SELECT array_to_json($1::text[])::text, encode(($2::bytea[])[1], 'hex'), $3::bigint[]::text, "
                    "cardinality($4::text[])",
                    p);
    EXPECT_EQ(r.text(0, 0), R"(["naïve",null,"","a,\"b\"{c}"])");
    EXPECT_EQ(r.text(0, 1), "00ff5c");
    EXPECT_EQ(r.text(0, 2), "{-5000000000,NULL,7}");
    EXPECT_EQ(r.text(0, 3), "0");
}

TEST(Claim, TheClaimerSessionPlansIndexWalksOnly) {
    TestDatabase db("claim_plan");
    seed(db, 20, 20000);
    db.sql("ANALYZE control_outbox");
    Connection a(db.url());
    MailboxClaimer::configure_session(a);
    // In the soak a head lookup estimated at one row was planned as a bitmap heap scan plus sort
    // (every row of a shard of 500, per shard, per claim) and a claim ran for minutes; the exact
    // estimates that tip the planner are hard to recreate, so the settings themselves are checked.
    EXPECT_EQ(a.exec("SHOW enable_bitmapscan").text(0, 0), "off");
    EXPECT_EQ(a.exec("SHOW enable_seqscan").text(0, 0), "off");
    auto plan = a.exec("EXPLAIN SELECT c.id, c.shard_key, c.mailbox_name, c.region_name, c.scheduled_for "
                       "FROM control_outbox c WHERE c.shard_key = $1 ORDER BY c.id LIMIT 1",
                       Params("m:0@us"));
    std::string text;
    for (int i = 0; i < plan.rows(); ++i) text += plan.text(i, 0) + "\n";
    EXPECT_EQ(text.find("Bitmap"), std::string::npos) << text;
    EXPECT_EQ(text.find("Sort"), std::string::npos) << text;
    EXPECT_NE(text.find("Index Scan"), std::string::npos) << "an ordered index walk that stops at the first row\n" << text;
}

// Claims are prepared and, after five executions, may run on a generic plan made while the outbox
// was empty. Whatever plan the claimer's session gets must stay an index walk once the outbox has
// grown: no claim reads the table sequentially.
TEST(Claim, PlansMadeOnAnEmptyOutboxStayIndexWalks) {
    TestDatabase db("claim_generic_plan");
    db.sql("ANALYZE control_outbox");
    db.sql("ANALYZE outbox_lease");
    Connection a(db.url());
    MailboxClaimer::configure_session(a);
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(MailboxClaimer(a).claim({.owner = "a"}).empty());
    seed(db, 50, 20000);
    for (int i = 0; i < 3; ++i) {
        auto runs = MailboxClaimer(a).claim({.owner = "a", .max_shards = 10, .rows_per_shard = 5});
        ASSERT_EQ(runs.size(), 10u);
        for (const auto& r : runs) EXPECT_EQ(r.rows.size(), 5u);
    }
    a.exec("SELECT pg_stat_force_next_flush()");  // the session reports before it is ready again
    EXPECT_EQ(db.scalar("SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'control_outbox'"), "0");
}

// A completer that starts on an empty outbox (statistics say: no rows) and flushes a few times may
// be handed a generic plan that deletes by id with a sequential scan; kept, it would read the
// whole outbox on every flush once a backlog builds. Deletes must keep going through the index.
TEST(Claim, CompleterDeletesThroughTheIndexAfterStartingOnAnEmptyOutbox) {
    TestDatabase db("claim_completer_plan");
    db.sql("ANALYZE control_outbox");
    outboxd::metrics::Metrics m;
    outboxd::drain::Completer completer(db.url(), "a", m, nullptr, nullptr);
    using Kind = outboxd::drain::Outcome::Kind;
    for (std::int64_t id = 1; id <= 8; ++id) {  // one flush each, all on the empty table
        completer.push({.kind = Kind::delivered, .id = id});
        ASSERT_TRUE(completer.drain(5s));
    }
    seed(db, 50, 20000);  // ids 1..20000: the sequence was never used
    for (std::int64_t id = 1; id <= 10; ++id) completer.push({.kind = Kind::delivered, .id = id});
    ASSERT_TRUE(completer.drain(5s));
    // The completer's session reports its statistics some seconds after it goes idle; deletes and
    // scans of one table arrive together.
    auto stat = [&](const char* column) {
        return db.sql(std::string("SELECT ") + column + " FROM pg_stat_user_tables WHERE relname = 'control_outbox'")
            .int64(0, 0);
    };
    ASSERT_TRUE(wait_until([&] { return stat("n_tup_del") >= 10; }, 30s)) << "the deletes never showed up";
    EXPECT_EQ(stat("n_tup_del"), 10);
    EXPECT_EQ(stat("seq_tup_read"), 0) << "a delete by id read the table sequentially";
}

// A daemon that has delivered to many mailboxes keeps one lease row per shard it ever claimed
// (free ones stay, so that claiming is a HOT update). A claim must look up the leases of the
// heads it found, not read every lease row: as an anti-join PostgreSQL hashed the whole lease
// table on every claim (0.2-5 ms of a 0.5 ms claim in the end-to-end bench, 1,000 leases).
TEST(Claim, AClaimLooksUpTheLeasesOfItsHeadsOnly) {
    TestDatabase db("claim_lease_probes");
    db.sql("INSERT INTO outbox_lease (shard_key) SELECT 'm:' || g || '@us' FROM generate_series(1000, 2999) g");
    seed(db, 5, 50);
    db.sql("ANALYZE outbox_lease");
    db.sql("ANALYZE control_outbox");
    Connection a(db.url());
    MailboxClaimer::configure_session(a);
    auto fetched = [&] {
        a.exec("SELECT pg_stat_force_next_flush()");
        return db.sql("SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) FROM pg_stat_user_tables "
                      "WHERE relname = 'outbox_lease'")
            .int64(0, 0);
    };
    for (int i = 0; i < 8; ++i) {  // past the five custom plans, onto a generic one if it is cheaper
        auto before = fetched();
        auto runs = MailboxClaimer(a).claim({.owner = "a", .max_shards = 10, .rows_per_shard = 2});
        auto read = fetched() - before;
        EXPECT_EQ(runs.size(), i == 0 ? 5u : 0u);
        EXPECT_LT(read, 100) << "claim " << i << " read " << read << " lease rows for 5 heads";
    }
}
