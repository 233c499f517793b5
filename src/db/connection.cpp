// libpq wrapper: the only file that calls PQexec*, so error handling and reconnects live here once.
#include "outboxd/db/connection.hpp"

#include <spdlog/spdlog.h>

#include <poll.h>

#include <bit>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>

namespace outboxd::db {

Params& Params::add(std::string_view text) {
    values_.emplace_back(std::string(text));
    lengths_.push_back(static_cast<int>(text.size()));
    formats_.push_back(0);
    return *this;
}

Params& Params::bytes(std::string_view data) {
    values_.emplace_back(std::string(data));
    lengths_.push_back(static_cast<int>(data.size()));
    formats_.push_back(1);
    return *this;
}

Params& Params::null() {
    values_.emplace_back(std::nullopt);
    lengths_.push_back(0);
    formats_.push_back(0);
    return *this;
}

namespace {
void put_u32(std::string& out, std::uint32_t v) {
    char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
    out.append(b, 4);
}
}  // namespace

BinaryArray& BinaryArray::add(std::optional<std::string_view> element) {
    ++count_;
    if (!element) {
        has_null_ = true;
        put_u32(elements_, 0xffffffffu);  // length -1: NULL
        return *this;
    }
    put_u32(elements_, static_cast<std::uint32_t>(element->size()));
    elements_.append(*element);
    return *this;
}

BinaryArray& BinaryArray::add(std::optional<std::int64_t> element) {
    if (!element) return add(std::optional<std::string_view>{});
    // Length 8, then the value in network order, straight into the element bytes.
    ++count_;
    auto v = static_cast<std::uint64_t>(*element);
    put_u32(elements_, 8);
    put_u32(elements_, static_cast<std::uint32_t>(v >> 32));
    put_u32(elements_, static_cast<std::uint32_t>(v));
    return *this;
}

std::string BinaryArray::encode() const {
    std::string out;
    out.reserve(20 + elements_.size());
    put_u32(out, count_ ? 1 : 0);  // dimensions (an empty array has none)
    put_u32(out, has_null_ ? 1 : 0);
    put_u32(out, oid_);
    if (count_) {
        put_u32(out, static_cast<std::uint32_t>(count_));
        put_u32(out, 1);  // lower bound
    }
    out += elements_;
    return out;
}

const char* const* Params::values() const {
    ptrs_.clear();
    for (const auto& v : values_) ptrs_.push_back(v ? v->data() : nullptr);
    return ptrs_.data();
}

std::string array_literal(const std::vector<std::string>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        out += '"';
        for (char c : items[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

std::string array_literal(const std::vector<std::int64_t>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(items[i]);
    }
    return out + "}";
}

namespace {
std::uint64_t big_endian(std::string_view v) {
    std::uint64_t n = 0;
    for (unsigned char c : v) n = (n << 8) | c;
    return n;
}
}  // namespace

bool Result::binary(int col) const { return PQfformat(res_.get(), col) == 1; }

std::int64_t Result::int64(int row, int col) const {
    auto v = get(row, col);
    if (binary(col)) {
        // int8, int4 or int2 in network byte order, sign-extended from its width.
        auto n = big_endian(v);
        switch (v.size()) {
            case 2: return static_cast<std::int16_t>(n);
            case 4: return static_cast<std::int32_t>(n);
            default: return static_cast<std::int64_t>(n);
        }
    }
    std::int64_t n = 0;
    std::from_chars(v.data(), v.data() + v.size(), n);
    return n;
}

double Result::number(int row, int col) const {
    auto v = get(row, col);
    if (binary(col)) {
        if (v.size() == 4) return std::bit_cast<float>(static_cast<std::uint32_t>(big_endian(v)));
        return std::bit_cast<double>(big_endian(v));
    }
    return std::strtod(std::string(v).c_str(), nullptr);
}

bool Result::boolean(int row, int col) const {
    auto v = get(row, col);
    return binary(col) ? (!v.empty() && v[0] != 0) : v == "t";
}

std::string Result::bytea(int row, int col) const {
    auto v = get(row, col);
    if (binary(col) || v.size() < 2 || v[0] != '\\' || v[1] != 'x') return std::string(v);
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return c - 'A' + 10;
    };
    std::string out;
    out.reserve((v.size() - 2) / 2);
    for (std::size_t i = 2; i + 1 < v.size(); i += 2) out.push_back(static_cast<char>(hex(v[i]) * 16 + hex(v[i + 1])));
    return out;
}

int Result::column(std::string_view name) const {
    return PQfnumber(res_.get(), std::string(name).c_str());
}

std::int64_t Result::affected() const {
    const char* n = PQcmdTuples(res_.get());
    return (n && *n) ? std::strtoll(n, nullptr, 10) : 0;
}

Connection::Connection(std::string conninfo, std::string application_name)
    : conninfo_(std::move(conninfo)), application_name_(std::move(application_name)) {
    connect();
}

Connection::~Connection() {
    if (conn_) PQfinish(conn_);
}

namespace {
// libpq's messages span lines ("...\n\tIs the server running...", "DETAIL:  ...") and quote names
// with double quotes; logged as error="..." they broke the key=value line in two and its quoting.
std::string one_line(std::string msg) {
    std::string out;
    out.reserve(msg.size());
    bool space = false;
    for (char c : msg) {
        if (c == '\n' || c == '\r' || c == '\t') {
            space = true;
            continue;
        }
        if (space && !out.empty() && out.back() != ' ') out.push_back(' ');
        space = false;
        out.push_back(c == '"' ? '\'' : c);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}
}  // namespace

void Connection::connect() {
    if (conn_) PQfinish(conn_);
    prepared_.clear();
    const char* keys[] = {"dbname", "application_name", "connect_timeout", nullptr};
    const char* vals[] = {conninfo_.c_str(), application_name_.c_str(), "5", nullptr};
    conn_ = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn_) != CONNECTION_OK) {
        std::string msg = PQerrorMessage(conn_);
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
        // A failed PGconn still owns memory, and a throwing constructor runs no destructor.
        PQfinish(conn_);
        conn_ = nullptr;
        throw Error("database connection failed: " + one_line(std::move(msg)), "", true);
    }
    cancel_ = std::shared_ptr<PGcancel>(PQgetCancel(conn_), [](PGcancel* c) {
        if (c) PQfreeCancel(c);
    });
    // What the server says outside a statement ("terminating connection due to administrator
    // command" before a close) went to stderr as a bare line; it belongs in the log, as one line.
    PQsetNoticeProcessor(
        conn_,
        [](void* app, const char* message) {
            spdlog::info("database: server notice session={} message=\"{}\"", static_cast<const char*>(app),
                         one_line(message));
        },
        const_cast<char*>(application_name_.c_str()));
}

void Connection::reset() { connect(); }

bool CancelHandle::cancel() const {
    if (!c_) return false;
    char err[256];
    return PQcancel(c_.get(), err, sizeof err) == 1;
}

void Connection::rollback() noexcept {
    if (!ok()) return;
    PGresult* r = PQexec(conn_, "ROLLBACK");
    PQclear(r);
}

Result Connection::check(PGresult* r, std::string_view what) {
    auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Result(r);
    std::string state;
    std::string msg;
    if (r) {
        if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) state = s;
        msg = PQresultErrorMessage(r);
        PQclear(r);
    }
    if (msg.empty() && conn_) msg = PQerrorMessage(conn_);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    bool lost = !conn_ || PQstatus(conn_) != CONNECTION_OK;
    // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now: the session is gone.
    if (state.rfind("57P0", 0) == 0 || state.rfind("08", 0) == 0) lost = true;
    throw Error(std::string(what) + ": " + one_line(std::move(msg)), state, lost);
}

Result Connection::exec(std::string_view sql, const Params& params) {
    if (!conn_) throw Error("no database connection", "", true);
    std::string q(sql);
    if (params.size() == 0) return check(PQexec(conn_, q.c_str()), "query failed");
    return check(PQexecParams(conn_, q.c_str(), params.size(), nullptr, params.values(), params.lengths(),
                              params.formats(), 0),
                 "query failed");
}

Result Connection::exec_prepared(const std::string& name, std::string_view sql, const Params& params,
                                 ResultFormat format) {
    if (!conn_) throw Error("no database connection", "", true);
    if (std::find(prepared_.begin(), prepared_.end(), name) == prepared_.end()) {
        std::string q(sql);
        check(PQprepare(conn_, name.c_str(), q.c_str(), 0, nullptr), "prepare " + name);
        prepared_.push_back(name);
    }
    return check(PQexecPrepared(conn_, name.c_str(), params.size(), params.values(), params.lengths(),
                                params.formats(), format == ResultFormat::binary ? 1 : 0),
                 name);
}

bool Connection::alive() {
    if (!ok()) return false;
    // A session between statements (and not listening) is sent nothing but its end: the
    // server's FATAL message and the close. libpq notices the close only on a later read, so
    // anything to read at all counts as the end.
    pollfd p{PQsocket(conn_), POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
}

std::vector<std::string> Connection::notifications() {
    std::vector<std::string> out;
    if (!conn_) return out;
    if (!PQconsumeInput(conn_)) throw Error("database connection lost while listening", "", true);
    while (PGnotify* n = PQnotifies(conn_)) {
        out.emplace_back(n->relname);
        PQfreemem(n);
    }
    return out;
}

struct Pool::State {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::unique_ptr<Connection>> idle;
    int size = 0;
    int created = 0;
};

Pool::Pool(std::string conninfo, int size, std::string application_name)
    : conninfo_(std::move(conninfo)), application_name_(std::move(application_name)), state_(std::make_unique<State>()) {
    state_->size = size;
}

Pool::~Pool() = default;

Pool::Lease::~Lease() {
    if (pool_ && conn_) pool_->give_back(std::move(conn_));
}

void Pool::give_back(std::unique_ptr<Connection> c) {
    std::lock_guard lk(state_->mu);
    if (c->ok()) {
        state_->idle.push_back(std::move(c));
    } else {
        --state_->created;  // a broken connection is dropped; the next acquire dials a new one
    }
    state_->cv.notify_one();
}

std::optional<Pool::Lease> Pool::acquire(std::chrono::milliseconds timeout) {
    std::unique_lock lk(state_->mu);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (!state_->idle.empty()) {
            auto c = std::move(state_->idle.front());
            state_->idle.pop_front();
            return Lease(this, std::move(c));
        }
        if (state_->created < state_->size) {
            ++state_->created;
            lk.unlock();
            try {
                return Lease(this, std::make_unique<Connection>(conninfo_, application_name_));
            } catch (...) {
                lk.lock();
                --state_->created;
                throw;
            }
        }
        if (state_->cv.wait_until(lk, deadline) == std::cv_status::timeout && state_->idle.empty()) return std::nullopt;
    }
}

}  // namespace outboxd::db
