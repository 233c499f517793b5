// Which server settings the daemon warns about at start (the pure part; the query is covered by
// tests/integration/settings_advice_test.cpp).
#include "outboxd/db/settings_advice.hpp"

#include <gtest/gtest.h>

using outboxd::db::settings_advice;

namespace {

std::map<std::string, std::string> healthy() {
    return {{"autovacuum", "on"},
            {"track_counts", "on"},
            {"autovacuum_naptime", "10"},
            {"control_outbox.reloptions", "autovacuum_vacuum_scale_factor=0.0,fillfactor=90"}};
}

bool mentions(const std::vector<std::string>& advice, const std::string& word) {
    for (const auto& a : advice)
        if (a.find(word) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST(SettingsAdvice, NothingToSayAboutTheRecommendedSettings) {
    EXPECT_TRUE(settings_advice(healthy()).empty());
    auto s = healthy();
    s["autovacuum_naptime"] = "15";  // the limit itself is fine
    EXPECT_TRUE(settings_advice(s).empty());
}

TEST(SettingsAdvice, TheDefaultNaptimeIsTooSlowForTheOutbox) {
    auto s = healthy();
    s["autovacuum_naptime"] = "60";
    auto advice = settings_advice(s);
    ASSERT_EQ(advice.size(), 1u);
    EXPECT_TRUE(mentions(advice, "autovacuum_naptime is 60s"));
    EXPECT_TRUE(mentions(advice, "10s"));
}

TEST(SettingsAdvice, AutovacuumOffGlobalOrOnTheTableIsReported) {
    auto s = healthy();
    s["autovacuum"] = "off";
    EXPECT_TRUE(mentions(settings_advice(s), "autovacuum is off"));
    s = healthy();
    s["track_counts"] = "off";
    EXPECT_TRUE(mentions(settings_advice(s), "track_counts is off"));
    for (const char* spelling : {"false", "OFF", "of", "0", "no", "f", "fal"}) {
        s = healthy();
        s["control_outbox.reloptions"] = std::string("fillfactor=90,autovacuum_enabled=") + spelling;
        EXPECT_TRUE(mentions(settings_advice(s), "autovacuum_enabled=false")) << spelling;
    }
    for (const char* spelling : {"true", "on", "1", "yes"}) {
        s = healthy();
        s["control_outbox.reloptions"] = std::string("autovacuum_enabled=") + spelling;
        EXPECT_TRUE(settings_advice(s).empty()) << spelling;
    }
}

TEST(SettingsAdvice, MissingOrOddValuesAreNotGuessedAt) {
    EXPECT_TRUE(settings_advice({}).empty());
    auto s = healthy();
    s["autovacuum_naptime"] = "1min";  // not the seconds pg_settings reports: no claim made
    s.erase("control_outbox.reloptions");
    EXPECT_TRUE(settings_advice(s).empty());
}
