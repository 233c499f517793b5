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

// One JSON object, fields in the order SPEC.md lists them. Written by hand rather than through
// json::serialize because that prints doubles as 7.2E3; ages read better as 7200.118.
class JsonObject {
public:
    JsonObject& add(const char* key, std::string_view v) { return raw(key, json::serialize(json::string(v))); }
    JsonObject& add(const char* key, std::int64_t v) { return raw(key, std::to_string(v)); }
    JsonObject& add(const char* key, bool v) { return raw(key, v ? "true" : "false"); }
    JsonObject& add(const char* key, double v) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.3f", std::isfinite(v) ? v : 0.0);
        return raw(key, buf);
    }
    template <class T>
    JsonObject& add(const char* key, const std::optional<T>& v) {
        return v ? add(key, *v) : raw(key, "null");
    }
    std::string str() const { return "{" + body_ + "}"; }

private:
    JsonObject& raw(const char* key, const std::string& value) {
        if (!body_.empty()) body_ += ',';
        body_ += json::serialize(json::string(key)) + ":" + value;
        return *this;
    }
    std::string body_;
};

template <class Items, class Fn>
std::string json_array(const Items& items, Fn to_object) {
    std::string out = "[";
    for (const auto& item : items) out += (out.size() > 1 ? "," : "") + to_object(item).str();
    return out + "]";
}

}  // namespace

void print_status(const StatusReport& r, bool as_json) {
    if (as_json) {
        auto regions = json_array(r.regions, [](const RegionStatus& s) {
            return JsonObject()
                .add("region", s.region)
                .add("backlog", s.backlog)
                .add("oldest_age_seconds", s.oldest_age_seconds)
                .add("dead", s.dead)
                .add("paused", s.paused);
        });
        auto mailboxes = json_array(r.mailboxes, [](const MailboxStatus& m) {
            return JsonObject()
                .add("mailbox", m.mailbox)
                .add("region", m.region)
                .add("backlog", m.backlog)
                .add("oldest_age_seconds", m.oldest_age_seconds)
                .add("paused", m.paused);
        });
        std::cout << "{\"regions\":" << regions << ",\"mailboxes\":" << mailboxes << "}\n";
        return;
    }
    Table regions({{"REGION"}, {"BACKLOG", true}, {"OLDEST", true}, {"DEAD", true}, {"PAUSED"}});
    for (const auto& s : r.regions)
        regions.add(
            {s.region, std::to_string(s.backlog), age(s.oldest_age_seconds), std::to_string(s.dead), yes_no(s.paused)});
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
        std::cout << json_array(rows, [](const DeadRow& d) {
            return JsonObject()
                .add("id", d.id)
                .add("region", d.region)
                .add("mailbox", d.mailbox)
                .add("category", d.category)
                .add("attempts", d.attempts)
                .add("last_status", d.last_status)
                .add("last_error", d.last_error)
                .add("reason", d.reason)
                .add("date_added", d.date_added)
                .add("dead_at", d.dead_at);
        }) << "\n";
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
