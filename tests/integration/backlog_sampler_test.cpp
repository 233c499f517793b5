// The backlog gauges against a real PostgreSQL: ages come from the region index every sample, row
// counts are exact when taken and spaced out by how long they take, and a region that empties
// reads 0 at once rather than keeping its last count.
#include <gtest/gtest.h>

#include <sstream>

#include "outboxd/config/config.hpp"
#include "outboxd/db/connection.hpp"
#include "outboxd/metrics/backlog_sampler.hpp"
#include "outboxd/metrics/metrics.hpp"
#include "support/harness.hpp"

using namespace testsupport;
using outboxd::db::Params;

namespace {

// The value of one exposed series, or -1 when it is absent.
double gauge(outboxd::metrics::Metrics& m, const std::string& series) {
    std::istringstream in(m.registry.expose());
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    return -1;
}

outboxd::config::Config config_for(const TestDatabase& db) {
    outboxd::config::Config cfg;
    cfg.database.url = db.url();
    cfg.regions.push_back({"de", "http://127.0.0.1:1", "s"});
    cfg.regions.push_back({"us", "http://127.0.0.1:1", "s"});
    return cfg;
}

}  // namespace

TEST(BacklogSampler, CountsAndAgesPerRegionIncludingRegionlessRows) {
    TestDatabase db("sampler_counts");
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, date_added) "
           "SELECT 'us', 'github:' || (g % 7), now() - interval '90 seconds' + g * interval '1 ms' "
           "FROM generate_series(1, 500) g");
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, category, target_url, date_added) "
           "SELECT NULL, 'app:1', 'app_webhook', 'http://app.example/', now() - interval '30 seconds' "
           "FROM generate_series(1, 3)");
    auto cfg = config_for(db);
    outboxd::metrics::Metrics m;
    outboxd::metrics::BacklogSampler sampler(cfg, m);
    sampler.sample_once();
    EXPECT_EQ(gauge(m, R"(outboxd_backlog_rows{region="us"})"), 500);
    EXPECT_EQ(gauge(m, R"(outboxd_backlog_rows{region="none"})"), 3);
    EXPECT_EQ(gauge(m, R"(outboxd_backlog_rows{region="de"})"), 0) << "a configured region is reported when empty";
    auto us_age = gauge(m, R"(outboxd_oldest_row_age_seconds{region="us"})");
    EXPECT_GE(us_age, 89.0);
    EXPECT_LT(us_age, 120.0);
    auto none_age = gauge(m, R"(outboxd_oldest_row_age_seconds{region="none"})");
    EXPECT_GE(none_age, 29.0);
    EXPECT_LT(none_age, 60.0);
    EXPECT_EQ(gauge(m, R"(outboxd_oldest_row_age_seconds{region="de"})"), 0);
    EXPECT_GE(gauge(m, "outboxd_backlog_count_duration_seconds"), 0);
}

TEST(BacklogSampler, BetweenCountsAnEmptiedRegionReadsZeroAndAgesStayCurrent) {
    TestDatabase db("sampler_between");
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, date_added) "
           "SELECT r, 'github:1', now() - interval '60 seconds' FROM unnest(ARRAY['us', 'de']) r, generate_series(1, 10)");
    auto cfg = config_for(db);
    outboxd::metrics::Metrics m;
    outboxd::metrics::BacklogSampler sampler(cfg, m, std::chrono::hours(1));  // no count is due again
    sampler.sample_once();
    ASSERT_EQ(gauge(m, R"(outboxd_backlog_rows{region="us"})"), 10);
    ASSERT_EQ(gauge(m, R"(outboxd_backlog_rows{region="de"})"), 10);

    db.sql("DELETE FROM control_outbox WHERE region_name = 'us'");
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name) VALUES ('de', 'github:2')");
    db.sql("UPDATE control_outbox SET date_added = now() - interval '600 seconds' WHERE region_name = 'de' "
           "AND id = (SELECT min(id) FROM control_outbox WHERE region_name = 'de')");
    sampler.sample(false);
    EXPECT_EQ(gauge(m, R"(outboxd_backlog_rows{region="us"})"), 0) << "emptied: known at once";
    EXPECT_EQ(gauge(m, R"(outboxd_oldest_row_age_seconds{region="us"})"), 0);
    EXPECT_EQ(gauge(m, R"(outboxd_backlog_rows{region="de"})"), 10) << "the count waits for its turn";
    EXPECT_GE(gauge(m, R"(outboxd_oldest_row_age_seconds{region="de"})"), 599.0) << "the age does not";

    sampler.sample(true);
    EXPECT_EQ(gauge(m, R"(outboxd_backlog_rows{region="de"})"), 11);
}

TEST(BacklogSampler, TheAgeQueryReadsTheIndexNotTheTable) {
    TestDatabase db("sampler_plan");
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, category, target_url, request_body) "
           "SELECT CASE WHEN g % 10 = 0 THEN NULL ELSE 'us' END, 'm:' || (g % 50), "
           "CASE WHEN g % 10 = 0 THEN 'app_webhook' ELSE 'webhook_proxy' END, "
           "CASE WHEN g % 10 = 0 THEN 'http://a/' END, convert_to(repeat('x', 400), 'UTF8') "
           "FROM generate_series(1, 20000) g");
    db.sql("ANALYZE control_outbox");
    auto cfg = config_for(db);
    outboxd::metrics::Metrics m;
    outboxd::metrics::BacklogSampler sampler(cfg, m);
    sampler.sample(false);  // the first sample counts too; ages are what this test is about
    // The same statement the sampler prepares, planned in this database: no sequential scan and
    // no sort of a whole region.
    auto plan = db.sql(std::string("EXPLAIN ") + outboxd::metrics::BacklogSampler::oldest_row_statement());
    std::string text;
    for (int i = 0; i < plan.rows(); ++i) text += plan.text(i, 0) + "\n";
    EXPECT_EQ(text.find("Seq Scan"), std::string::npos) << text;
    EXPECT_EQ(text.find("Sort"), std::string::npos) << text;
    EXPECT_EQ(text.find("Bitmap"), std::string::npos) << text;
}

// A daemon often starts on an empty outbox (statistics say: no rows) that then fills. The age
// statement must not keep a plan made for the empty table, three sequential scans per sample (the
// bench caught it): once the outbox has grown, a sample that also counts reads the table once,
// for the count. Scans of the empty table read no tuples, so seq_tup_read counts only the later.
TEST(BacklogSampler, AStartOnAnEmptyOutboxDoesNotLeaveTheAgesScanningTheTable) {
    TestDatabase db("sampler_stale_plan");
    db.sql("ANALYZE control_outbox");
    auto cfg = config_for(db);
    outboxd::metrics::Metrics m;
    outboxd::metrics::BacklogSampler sampler(cfg, m);
    for (int i = 0; i < 6; ++i) sampler.sample(true);  // every statement runs on the empty table
    constexpr int kRows = 20000;
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, request_body) "
           "SELECT 'us', 'm:' || (g % 50), convert_to(repeat('x', 400), 'UTF8') FROM generate_series(1, " +
           std::to_string(kRows) + ") g");
    sampler.sample(true);  // ages, then the counts
    EXPECT_EQ(gauge(m, R"(outboxd_backlog_rows{region="us"})"), kRows);
    // The sampler's session reports its statistics some seconds after it goes idle.
    std::int64_t read = 0;
    ASSERT_TRUE(wait_until(
        [&] {
            read = db.sql("SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'control_outbox'").int64(0, 0);
            return read > 0;
        },
        std::chrono::seconds(30)))
        << "the sampler's statistics never arrived";
    EXPECT_EQ(read, kRows) << "only the count may read the table; the ages read the index";
}
