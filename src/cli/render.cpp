// outboxctl's output, kept apart from the queries: people read the aligned tables, scripts read
// the JSON whose shape SPEC.md fixes, and both must show the same report.
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "commands.hpp"

namespace outboxd::cli {
namespace {

namespace json = boost::json;

// Columns padded to their widest cell; numbers right-aligned so digits line up.
class Table {
public:
    struct Column {
        std::string header;
        bool right = false;
    };
    explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
    void add(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }

    void print(std::ostream& out) const {
        std::vector<std::size_t> width(columns_.size());
        for (std::size_t c = 0; c < columns_.size(); ++c) {
            width[c] = columns_[c].header.size();
            for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
        }
        auto line = [&](auto cell) {
            std::string s;
            for (std::size_t c = 0; c < columns_.size(); ++c) {
                const std::string& v = cell(c);
                std::string pad(width[c] - v.size(), ' ');
                bool last = c + 1 == columns_.size();
                s += columns_[c].right ? pad + v : (last ? v : v + pad);
                if (!last) s += "  ";
            }
            out << s << "\n";
        };
        line([&](std::size_t c) -> const std::string& { return columns_[c].header; });
        for (const auto& row : rows_) line([&](std::size_t c) -> const std::string& { return row[c]; });
    }

private:
    std::vector<Column> columns_;
    std::vector<std::vector<std::string>> rows_;
};

// 12.3s, 4m05s, 3h07m, 2d04h: precise for a fresh backlog, short for an old one.
std::string age(double seconds) {
    char buf[32];
    auto s = static_cast<long long>(seconds);
    if (seconds < 60)
        std::snprintf(buf, sizeof buf, "%.1fs", seconds);
    else if (s < 3600)
        std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        std::snprintf(buf, sizeof buf, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    return buf;
}

std::string yes_no(bool b) { return b ? "yes" : "no"; }

template <class T>
std::string or_dash(const std::optional<T>& v) {
    if (!v) return "-";
    if constexpr (std::is_same_v<T, std::string>)
        return *v;
    else
        return std::to_string(*v);
}

template <class T>
json::value or_null(const std::optional<T>& v) {
    if (!v) return nullptr;
    return json::value_from(*v);
}

}  // namespace

void print_status(const StatusReport& r, bool as_json) {
    if (as_json) {
        json::array regions, mailboxes;
        for (const auto& s : r.regions)
            regions.push_back(json::object{{"region", s.region},
                                           {"backlog", s.backlog},
                                           {"oldest_age_seconds", s.oldest_age_seconds},
                                           {"dead", s.dead},
                                           {"paused", s.paused}});
        for (const auto& m : r.mailboxes)
            mailboxes.push_back(json::object{{"mailbox", m.mailbox},
                                             {"region", m.region},
                                             {"backlog", m.backlog},
                                             {"oldest_age_seconds", m.oldest_age_seconds},
                                             {"paused", m.paused}});
        std::cout << json::serialize(json::object{{"regions", regions}, {"mailboxes", mailboxes}}) << "\n";
        return;
    }
    Table regions({{"REGION"}, {"BACKLOG", true}, {"OLDEST", true}, {"DEAD", true}, {"PAUSED"}});
    for (const auto& s : r.regions)
        regions.add({s.region, std::to_string(s.backlog), age(s.oldest_age_seconds), std::to_string(s.dead),
                     yes_no(s.paused)});
    regions.print(std::cout);
    std::cout << "\n";
    if (r.mailboxes.empty()) {
        std::cout << "no mailbox has undelivered rows\n";
        return;
    }
    Table mailboxes({{"MAILBOX"}, {"REGION"}, {"BACKLOG", true}, {"OLDEST", true}, {"PAUSED"}});
    for (const auto& m : r.mailboxes)
        mailboxes.add({m.mailbox, m.region, std::to_string(m.backlog), age(m.oldest_age_seconds), yes_no(m.paused)});
    mailboxes.print(std::cout);
}

void print_dead_list(const std::vector<DeadRow>& rows, bool as_json) {
    if (as_json) {
        json::array out;
        for (const auto& d : rows)
            out.push_back(json::object{{"id", d.id},
                                       {"region", d.region},
                                       {"mailbox", d.mailbox},
                                       {"category", d.category},
                                       {"attempts", or_null(d.attempts)},
                                       {"last_status", or_null(d.last_status)},
                                       {"last_error", or_null(d.last_error)},
                                       {"reason", d.reason},
                                       {"date_added", d.date_added},
                                       {"dead_at", d.dead_at}});
        std::cout << json::serialize(out) << "\n";
        return;
    }
    if (rows.empty()) {
        std::cout << "no dead rows\n";
        return;
    }
    Table t({{"ID", true},
             {"REGION"},
             {"MAILBOX"},
             {"CATEGORY"},
             {"ATTEMPTS", true},
             {"STATUS", true},
             {"REASON"},
             {"DEAD_AT"},
             {"LAST_ERROR"}});
    for (const auto& d : rows)
        t.add({std::to_string(d.id), d.region, d.mailbox, d.category, or_dash(d.attempts), or_dash(d.last_status),
               d.reason, d.dead_at, or_dash(d.last_error)});
    t.print(std::cout);
}

void print_move(const MoveReport& r) { std::cout << r.verb << " " << r.count << "\n"; }

void print_pause(const PauseReport& r) {
    std::string subject = r.kind + " " + r.name;
    if (r.pausing)
        std::cout << (r.changed ? "paused " + subject : subject + " was already paused") << "\n";
    else
        std::cout << (r.changed ? "resumed " + subject : subject + " was not paused") << "\n";
}

void print_config(const std::vector<std::pair<std::string, std::string>>& lines) {
    for (const auto& [key, value] : lines) std::cout << key << " = " << value << "\n";
}

void print_keys(const std::vector<std::string>& keys) {
    for (const auto& k : keys) std::cout << k << "\n";
}

}  // namespace outboxd::cli
