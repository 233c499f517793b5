// The start-up settings check against a real PostgreSQL: it reads what the server and the table
// say, in the units pg_settings reports.
#include "outboxd/db/settings_advice.hpp"

#include <gtest/gtest.h>

#include "outboxd/db/connection.hpp"
#include "support/harness.hpp"

using namespace testsupport;

namespace {

bool mentions(const std::vector<std::string>& advice, const std::string& word) {
    for (const auto& a : advice)
        if (a.find(word) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST(SettingsAdvice, ReadsTheServersNaptimeAndTheTablesOptions) {
    TestDatabase db("settings_advice");
    outboxd::db::Connection conn(db.url(), "settings-advice-test");
    auto naptime = std::stol(conn.exec("SELECT setting FROM pg_settings WHERE name = 'autovacuum_naptime'").text(0, 0));
    auto before = outboxd::db::settings_advice(conn);
    EXPECT_EQ(mentions(before, "autovacuum_naptime is"), naptime > 15) << naptime;
    EXPECT_FALSE(mentions(before, "autovacuum_enabled")) << "the migrations leave autovacuum on for the outbox";

    db.sql("ALTER TABLE control_outbox SET (autovacuum_enabled = off)");
    EXPECT_TRUE(mentions(outboxd::db::settings_advice(conn), "autovacuum_enabled=false"));
    db.sql("ALTER TABLE control_outbox RESET (autovacuum_enabled)");
    EXPECT_FALSE(mentions(outboxd::db::settings_advice(conn), "autovacuum_enabled"));
}
