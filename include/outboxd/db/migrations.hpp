// Schema migrations: the ordered sql/NNN_name.sql files, embedded in the binary at build time.
#pragma once
#include <string>
#include <vector>

#include "outboxd/db/connection.hpp"

namespace outboxd::db {

struct Migration {
    std::string version;  // file name without .sql, e.g. "002_outbox"
    std::string sql;
};

const std::vector<Migration>& embedded_migrations();

// Applies the migrations not yet recorded in outboxd_schema_migrations, each in its own
// transaction, under an advisory lock so concurrent `migrate` runs do not collide.
// Returns the versions applied now.
std::vector<std::string> migrate(Connection& conn);

// Versions already applied (empty when the schema is new).
std::vector<std::string> applied_versions(Connection& conn);

}  // namespace outboxd::db
