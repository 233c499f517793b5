// outboxctl: what ops and DBAs run to see the backlog and dead letters, replay or discard them,
// and pause a mailbox or region, without writing SQL against a live outbox by hand.
// Like PgBouncer's admin console, a command is one row of kCommands plus one handler; the row's
// flags say which options it takes, so parsing, help and validation come from the table.
#include <CLI/CLI.hpp>
#include <charconv>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "outboxd/config/config.hpp"

using namespace outboxd;
using namespace outboxd::cli;

namespace {

// Every option any command takes; a command's flags decide which of them it registers.
struct Args {
    std::string config_path;
    bool json = false;
    std::optional<std::string> region;
    std::optional<std::string> mailbox;
    std::int64_t limit = 100;
    std::vector<std::int64_t> ids;
    bool all = false;
};

// What a handler works with: the parsed options and, unless the command is kNoConfig, the
// configuration and a connection opened on first use.
class Session {
public:
    explicit Session(const Args& a) : args(a) {}
    const Args& args;
    std::optional<config::Config> cfg;

    db::Connection& db() {
        if (!conn_) conn_ = std::make_unique<db::Connection>(cfg->database.url, "outboxctl");
        return *conn_;
    }

private:
    std::unique_ptr<db::Connection> conn_;
};

enum Flags : unsigned {
    kJson = 1,       // --json
    kFilter = 2,     // --region R --mailbox M, both optional
    kLimit = 4,      // --limit N
    kSelect = 8,     // --id ID... | --all (exactly one)
    kTarget = 16,    // --mailbox NAME | --region NAME (exactly one)
    kNoConfig = 32,  // runs without --config
};

using Handler = void (*)(Session&);

struct Command {
    const char* name;  // the subcommand: one word, or a group and a word ("dead list")
    Handler handler;
    const char* help;
    unsigned flags;
};

DeadSelection selection(const Args& a) { return {a.ids, a.region, a.mailbox}; }

std::pair<std::string, std::string> target(const Args& a) {
    return a.mailbox ? std::pair<std::string, std::string>{"mailbox", *a.mailbox}
                     : std::pair<std::string, std::string>{"region", *a.region};
}

// A paused region that no [[region]] names is almost always a typo, and would pause nothing.
void warn_unknown_region(Session& s) {
    auto [kind, name] = target(s.args);
    if (kind == "region" && !s.cfg->region(name))
        std::cerr << "outboxctl: note: region '" << name << "' is not in the config file\n";
}

void cmd_status(Session& s) {
    std::vector<std::string> configured;
    for (const auto& r : s.cfg->regions) configured.push_back(r.name);
    print_status(status_read(s.db(), configured), s.args.json);
}

void cmd_dead_list(Session& s) { print_dead_list(dead_list(s.db(), selection(s.args), s.args.limit), s.args.json); }
void cmd_dead_replay(Session& s) { print_move(dead_replay(s.db(), selection(s.args))); }
void cmd_dead_discard(Session& s) { print_move(dead_discard(s.db(), selection(s.args))); }

void cmd_pause(Session& s) {
    warn_unknown_region(s);
    auto [kind, name] = target(s.args);
    print_pause(pause_set(s.db(), kind, name, true));
}

void cmd_resume(Session& s) {
    auto [kind, name] = target(s.args);
    print_pause(pause_set(s.db(), kind, name, false));
}

void cmd_config_show(Session& s) { print_config(config::describe(*s.cfg)); }

void cmd_config_keys(Session&) {
    std::vector<std::string> keys;
    for (const auto& k : config::known_keys()) keys.push_back(k.path);
    print_keys(keys);
}

const Command kCommands[] = {
    {"status", cmd_status, "backlog, oldest age, dead rows and pause state per region; the 100 oldest mailboxes",
     kJson},
    {"dead list", cmd_dead_list, "dead rows, newest first", kJson | kFilter | kLimit},
    {"dead replay", cmd_dead_replay, "move dead rows back into the outbox under their original id, due now",
     kSelect | kFilter},
    {"dead discard", cmd_dead_discard, "delete dead rows for good", kSelect | kFilter},
    {"pause", cmd_pause, "stop claiming a mailbox's or region's rows (they are still accepted)", kTarget},
    {"resume", cmd_resume, "claim a paused mailbox's or region's rows again", kTarget},
    {"config show", cmd_config_show, "the effective configuration, secrets masked", 0},
    {"config keys", cmd_config_keys, "every key the config file may hold", kNoConfig},
};

std::vector<std::string> words(const char* name) {
    std::istringstream in(name);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

// Creates the subcommand for `cmd`, and the group above it (e.g. "dead") on first use.
CLI::App* add_command(CLI::App& app, const Command& cmd, Args& args, std::map<std::string, CLI::App*>& groups) {
    CLI::App* parent = &app;
    auto path = words(cmd.name);
    if (path.size() == 2) {
        auto& group = groups[path[0]];
        // At most one, not exactly one: with a minimum, CLI11 reports "dead frobnicate" as a
        // missing subcommand instead of naming the word it did not expect.
        if (!group) group = app.add_subcommand(path[0], path[0] + ":")->require_subcommand(0, 1);
        group->description(group->get_description() + " " + path[1]);
        parent = group;
    }
    auto* sub = parent->add_subcommand(path.back(), cmd.help);
    if (cmd.flags & kJson) sub->add_flag("--json", args.json, "print JSON instead of a table");
    if (cmd.flags & kFilter) {
        sub->add_option("--region", args.region, "only rows of this region ('none': rows without one)");
        sub->add_option("--mailbox", args.mailbox, "only rows of this mailbox");
    }
    if (cmd.flags & kLimit)
        sub->add_option("--limit", args.limit, "at most N rows")
            ->check(CLI::Validator(
                [](const std::string& v) {
                    std::int64_t n = 0;
                    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
                    bool ok = ec == std::errc() && end == v.data() + v.size() && n > 0;
                    return ok ? std::string() : "must be a positive integer, got '" + v + "'";
                },
                "POSITIVE"))
            ->capture_default_str();
    if (cmd.flags & kSelect) {
        auto* all = sub->add_flag("--all", args.all, "every dead row (narrowed by --region and --mailbox)");
        sub->add_option("--id", args.ids, "these dead rows (repeat the option or list several ids)")->excludes(all);
    }
    if (cmd.flags & kTarget) {
        auto* mailbox = sub->add_option("--mailbox", args.mailbox, "a mailbox, e.g. github:42");
        sub->add_option("--region", args.region, "a [[region]] name")->excludes(mailbox);
    }
    return sub;
}

// The "exactly one of" rules CLI11 cannot express on its own (it only sees "both").
void check_usage(const Command& cmd, const Args& a) {
    if ((cmd.flags & kSelect) && a.ids.empty() && !a.all)
        throw UsageError(std::string(cmd.name) + ": give --id ID... or --all");
    if ((cmd.flags & kTarget) && !a.mailbox == !a.region)
        throw UsageError(std::string(cmd.name) + ": give exactly one of --mailbox NAME or --region NAME");
    if ((cmd.flags & kTarget) && ((a.mailbox && a.mailbox->empty()) || (a.region && a.region->empty())))
        throw UsageError(std::string(cmd.name) + ": the name must not be empty");
    // Elsewhere "none" selects the rows without a region; a pause keyed by it would match no row.
    if ((cmd.flags & kTarget) && a.region && *a.region == "none")
        throw UsageError(std::string(cmd.name) +
                         ": rows without a region (app webhooks, emails) are paused by --mailbox, e.g. app:<installation id>");
    if (!(cmd.flags & kNoConfig) && a.config_path.empty())
        throw UsageError(std::string(cmd.name) + ": --config FILE is required");
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"outboxctl: inspect and operate the outboxd outbox"};
    // Options of the top level (--config) are also accepted after the subcommand.
    app.fallthrough();
    app.require_subcommand(0, 1);  // at most one; none is reported below, with the help
    Args args;
    app.add_option("--config", args.config_path,
                   "TOML configuration file (OUTBOXD_DATABASE_URL overrides database.url)");
    std::vector<std::pair<const Command*, CLI::App*>> subs;
    std::map<std::string, CLI::App*> groups;
    for (const auto& cmd : kCommands) subs.emplace_back(&cmd, add_command(app, cmd, args, groups));

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    const Command* cmd = nullptr;
    for (const auto& [c, sub] : subs)
        if (sub->parsed()) cmd = c;
    if (!cmd) {  // nothing, or a group alone (`outboxctl dead`)
        CLI::App* shown = &app;
        for (const auto& [name, group] : groups)
            if (group->parsed()) shown = group;
        std::cerr << "outboxctl: a command is required\n" << shown->help();
        return 2;
    }

    Session session(args);
    try {
        check_usage(*cmd, args);
        if (!(cmd->flags & kNoConfig)) session.cfg = config::load_file(args.config_path);
        cmd->handler(session);
    } catch (const UsageError& e) {
        std::cerr << "outboxctl: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "outboxctl: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
