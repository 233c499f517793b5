// What DBAs read: the schema that `outboxd migrate` leaves behind documents itself.
#include <gtest/gtest.h>

#include "support/harness.hpp"

using namespace testsupport;

// SPEC: "Every table, view and column carries COMMENT ON" (outboxd's own bookkeeping included).
TEST(Schema, EveryTableViewAndColumnCarriesAComment) {
    TestDatabase db("schema_comments");
    auto missing = db.sql(R"(
        SELECT c.relname || coalesce('.' || a.attname, '')
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'v', 'p')
          AND (obj_description(c.oid, 'pg_class') IS NULL
               OR (a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))
        ORDER BY 1)");
    std::string names;
    for (int i = 0; i < missing.rows(); ++i) names += missing.text(i, 0) + " ";
    EXPECT_EQ(missing.rows(), 0) << "without COMMENT ON: " << names;
    EXPECT_GT(std::stoi(db.scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                  "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v')")),
              10)
        << "the query looked at the migrated schema";
}
