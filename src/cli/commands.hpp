// The seam between outboxctl's command table and the database: one report struct per command,
// filled by commands.cpp (which holds all of outboxctl's SQL) and printed by render.cpp.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "outboxd/db/connection.hpp"

namespace outboxd::cli {

// The name outboxctl shows for rows without a region (app webhooks, emails), as the backlog
// metrics do; `--region none` selects them.
inline constexpr const char* kNoRegion = "none";

// Exit 2: the command line itself is wrong.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// Exit 1: the command was well formed but could not be carried out.
struct CommandError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct RegionStatus {
    std::string region;
    std::int64_t backlog = 0;
    double oldest_age_seconds = 0;
    std::int64_t dead = 0;
    bool paused = false;
};
struct MailboxStatus {
    std::string mailbox;
    std::string region;
    std::int64_t backlog = 0;
    double oldest_age_seconds = 0;
    bool paused = false;  // effective: the mailbox or its region
};
struct StatusReport {
    std::vector<RegionStatus> regions;
    std::vector<MailboxStatus> mailboxes;
};

struct DeadRow {
    std::int64_t id = 0;
    std::string region;
    std::string mailbox;
    std::string category;
    std::optional<std::int64_t> attempts;
    std::optional<std::int64_t> last_status;
    std::optional<std::string> last_error;
    std::string reason;
    std::string date_added;  // ISO-8601, UTC
    std::string dead_at;
};

// Which dead rows a list, replay or discard applies to. Unset fields do not filter.
struct DeadSelection {
    std::vector<std::int64_t> ids;  // empty: every row (--all), narrowed by region and mailbox
    std::optional<std::string> region;
    std::optional<std::string> mailbox;
};

struct MoveReport {
    std::string verb;  // "replayed" | "discarded"
    std::int64_t count = 0;
};

struct PauseReport {
    std::string kind;  // "mailbox" | "region"
    std::string name;
    bool pausing = true;
    bool changed = false;  // false: it already was in the requested state
};

// `configured` lists the [[region]] names: each appears even with nothing queued.
StatusReport status_read(db::Connection& conn, const std::vector<std::string>& configured);
std::vector<DeadRow> dead_list(db::Connection& conn, const DeadSelection& sel, std::int64_t limit);
// Both run in one transaction and throw CommandError, changing nothing, when an id of
// `sel.ids` matches no dead row within the selection.
MoveReport dead_replay(db::Connection& conn, const DeadSelection& sel);
MoveReport dead_discard(db::Connection& conn, const DeadSelection& sel);
PauseReport pause_set(db::Connection& conn, const std::string& kind, const std::string& name, bool pausing);

// Output: a human table or the JSON documented in SPEC.md, on stdout.
void print_status(const StatusReport& r, bool json);
void print_dead_list(const std::vector<DeadRow>& rows, bool json);
void print_move(const MoveReport& r);
void print_pause(const PauseReport& r);
void print_config(const std::vector<std::pair<std::string, std::string>>& lines);
void print_keys(const std::vector<std::string>& keys);

}  // namespace outboxd::cli
