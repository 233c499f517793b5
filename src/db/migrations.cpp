// Idempotent schema migration: records each applied file, so `outboxd migrate` can run at every deploy.
#include "outboxd/db/migrations.hpp"

#include <algorithm>

namespace outboxd::db {
namespace {
constexpr const char* kCreateTable = R"(
CREATE TABLE IF NOT EXISTS outboxd_schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
))";
constexpr const char* kComment = R"(
COMMENT ON TABLE outboxd_schema_migrations IS 'Migrations of outboxd applied to this database (outboxd migrate).';
COMMENT ON COLUMN outboxd_schema_migrations.version IS 'File name of the applied migration under sql/, without .sql (e.g. 002_outbox).';
COMMENT ON COLUMN outboxd_schema_migrations.applied_at IS 'When outboxd migrate applied it.')";
}  // namespace

std::vector<std::string> applied_versions(Connection& conn) {
    auto exists = conn.exec("SELECT to_regclass('outboxd_schema_migrations') IS NOT NULL");
    if (!exists.boolean(0, 0)) return {};
    auto r = conn.exec("SELECT version FROM outboxd_schema_migrations ORDER BY version");
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
    return out;
}

std::vector<std::string> migrate(Connection& conn) {
    conn.exec("SET client_min_messages = warning");
    conn.exec("SELECT pg_advisory_lock(7401, 0)");
    std::vector<std::string> done;
    try {
        // The bookkeeping table is made in the first migration's transaction, so a run that fails
        // there leaves nothing behind (not even that table, owned by a role that could not finish),
        // and a run that finds it only reads it: a role that may not alter it can still run the
        // no-op migrate every start does (the systemd unit's ExecStartPre).
        bool have_table = conn.exec("SELECT to_regclass('outboxd_schema_migrations') IS NOT NULL").boolean(0, 0);
        auto have = applied_versions(conn);
        for (const auto& m : embedded_migrations()) {
            if (std::find(have.begin(), have.end(), m.version) != have.end()) continue;
            try {
                Transaction tx(conn);
                if (!have_table) {
                    conn.exec(kCreateTable);
                    conn.exec(kComment);
                }
                conn.exec(m.sql);
                conn.exec("INSERT INTO outboxd_schema_migrations(version) VALUES ($1)", Params(m.version));
                tx.commit();
                have_table = true;
            } catch (const Error& e) {
                // With the session lost the COMMIT's fate is unknown; otherwise it was rolled back.
                throw Error("migration " + m.version + " failed" +
                                (e.connection_lost() ? " (connection lost; run migrate again): "
                                                     : " (nothing of it was applied): ") +
                                e.what(),
                            e.sqlstate(), e.connection_lost());
            }
            done.push_back(m.version);
        }
    } catch (...) {
        try {
            conn.exec("SELECT pg_advisory_unlock(7401, 0)");
        } catch (const Error&) {
            // The session is gone, and its lock with it.
        }
        throw;
    }
    conn.exec("SELECT pg_advisory_unlock(7401, 0)");
    return done;
}

}  // namespace outboxd::db
