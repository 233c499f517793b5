// Which server settings outboxd warns about, and the query that reads them.
#include "outboxd/db/settings_advice.hpp"

#include <charconv>
#include <string_view>

namespace outboxd::db {
namespace {

// The runbook's advice ("Table health"): the per-table thresholds of 002_outbox are met within
// seconds, so how soon autovacuum looks is what bounds the table. Above this it warns.
constexpr long kMaxNaptimeSeconds = 15;

constexpr const char* kRead = R"(
SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'autovacuum_naptime', 'track_counts')
UNION ALL
SELECT 'control_outbox.reloptions', coalesce(array_to_string(reloptions, ','), '')
FROM pg_class WHERE oid = to_regclass('control_outbox'))";

std::string value_of(const std::map<std::string, std::string>& s, const std::string& name) {
    auto it = s.find(name);
    return it == s.end() ? std::string() : it->second;
}

// Whether reloptions ("a=b,c=d", as stored) turn autovacuum off for the table, in any of the
// spellings PostgreSQL accepts for a boolean false (it stores the value as written).
bool autovacuum_disabled(std::string_view reloptions) {
    constexpr std::string_view key = "autovacuum_enabled=";
    while (!reloptions.empty()) {
        auto comma = reloptions.find(',');
        auto option = reloptions.substr(0, comma);
        if (option.substr(0, key.size()) == key) {
            std::string v(option.substr(key.size()));
            for (auto& c : v) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            // parse_bool(): any prefix of "false" or "no", "of"/"off", or "0".
            auto prefix_of = [&](std::string_view word) { return !v.empty() && word.substr(0, v.size()) == v; };
            return prefix_of("false") || prefix_of("no") || (v.size() >= 2 && prefix_of("off")) || v == "0";
        }
        if (comma == std::string_view::npos) break;
        reloptions.remove_prefix(comma + 1);
    }
    return false;
}

}  // namespace

std::vector<std::string> settings_advice(const std::map<std::string, std::string>& s) {
    std::vector<std::string> out;
    if (value_of(s, "autovacuum") == "off")
        out.push_back("autovacuum is off: control_outbox keeps every delivered row as a dead tuple and grows "
                      "without bound; turn it on (postgresql.conf: autovacuum = on)");
    if (value_of(s, "track_counts") == "off")
        out.push_back("track_counts is off: autovacuum cannot see that control_outbox needs vacuuming; turn it on");
    auto naptime = value_of(s, "autovacuum_naptime");
    long seconds = 0;
    auto [end, ec] = std::from_chars(naptime.data(), naptime.data() + naptime.size(), seconds);
    if (ec == std::errc() && end == naptime.data() + naptime.size() && seconds > kMaxNaptimeSeconds)
        out.push_back("autovacuum_naptime is " + naptime +
                      "s: control_outbox can grow by that many seconds of webhooks (and much more after a long "
                      "transaction) before a vacuum reuses its space; 10s is advised (ops/RUNBOOK.md, Table health)");
    if (autovacuum_disabled(value_of(s, "control_outbox.reloptions")))
        out.push_back("control_outbox has autovacuum_enabled=false: it will bloat; "
                      "ALTER TABLE control_outbox RESET (autovacuum_enabled)");
    return out;
}

std::vector<std::string> settings_advice(Connection& conn) {
    auto r = conn.exec(kRead);
    std::map<std::string, std::string> s;
    for (int i = 0; i < r.rows(); ++i) s[r.text(i, 0)] = r.text(i, 1);
    return settings_advice(s);
}

}  // namespace outboxd::db
