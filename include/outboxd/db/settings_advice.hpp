// Server settings that decide whether control_outbox stays small. The daemon checks them at start
// and logs one warning per finding: a database that cannot vacuum the outbox in time bloats it
// and slows every claim, and the first symptom (a growing table) is easy to miss.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "outboxd/db/connection.hpp"

namespace outboxd::db {

// `settings` maps a pg_settings name to its `setting` column (autovacuum_naptime in seconds), plus
// "control_outbox.reloptions" (the table's storage options, comma-separated, empty when none).
// Returns a sentence per setting that should change, saying what and why; empty when all is well.
std::vector<std::string> settings_advice(const std::map<std::string, std::string>& settings);

// The same, for the database `conn` is connected to. Throws db::Error.
std::vector<std::string> settings_advice(Connection& conn);

}  // namespace outboxd::db
