// The metrics registry's exposition: types, label escaping, cumulative histogram buckets, and a
// promtool check of the whole text when promtool is installed.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "outboxd/metrics/metrics.hpp"

using namespace outboxd::metrics;

TEST(MetricsRegistry, CountersGaugesAndLabels) {
    Registry r;
    auto& c = r.counter("t_requests_total", "Requests.", {"provider", "code"});
    c.with({"github", "202"}).inc();
    c.with({"github", "202"}).inc(2);
    c.with({"we\"ird\\\n", "400"}).inc();
    auto& g = r.gauge("t_backlog_rows", "Backlog.", {"region"});
    g.with({"us"}).set(5);
    g.with({"us"}).add(-2);
    auto text = r.expose();
    EXPECT_NE(text.find("# TYPE t_requests_total counter\n"), std::string::npos);
    EXPECT_NE(text.find("t_requests_total{provider=\"github\",code=\"202\"} 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find("t_requests_total{provider=\"we\\\"ird\\\\\\n\",code=\"400\"} 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("# TYPE t_backlog_rows gauge\nt_backlog_rows{region=\"us\"} 3\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, HistogramBucketsAreCumulative) {
    Registry r;
    auto& h = r.histogram("t_duration_seconds", "Durations.", {"region"}, {0.1, 1});
    auto& s = h.with({"us"});
    for (double v : {0.05, 0.1, 0.5, 2.0}) s.observe(v);
    auto text = r.expose();
    EXPECT_NE(text.find("t_duration_seconds_bucket{region=\"us\",le=\"0.1\"} 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("t_duration_seconds_bucket{region=\"us\",le=\"1\"} 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find("t_duration_seconds_bucket{region=\"us\",le=\"+Inf\"} 4\n"), std::string::npos) << text;
    EXPECT_NE(text.find("t_duration_seconds_count{region=\"us\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("t_duration_seconds_sum{region=\"us\"} 2.65\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, ConcurrentIncrementsAreNotLost) {
    Registry r;
    auto& c = r.counter("t_total", "T.").get();
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) ts.emplace_back([&] {
        for (int i = 0; i < 10000; ++i) c.inc();
    });
    for (auto& t : ts) t.join();
    EXPECT_EQ(c.value(), 40000);
}

TEST(MetricsRegistry, OutboxdFamiliesPassPromtool) {
    Metrics m;
    m.build_info.with({"test"}).set(1);
    m.deliveries.with({"us", "delivered"}).inc();
    m.delivery_duration.with({"us"}).observe(0.02);
    m.ingress_requests.with({"github", "202"}).inc();
    m.backlog_rows.with({"none"}).set(0);
    auto text = m.registry.expose();
    if (std::system("command -v promtool >/dev/null 2>&1") != 0) GTEST_SKIP() << "promtool not installed";
    std::string path = testing::TempDir() + "outboxd_metrics.txt";
    std::ofstream(path) << text;
    int rc = std::system(("promtool check metrics < " + path + " >/dev/null 2>&1").c_str());
    EXPECT_EQ(rc, 0) << text;
}
