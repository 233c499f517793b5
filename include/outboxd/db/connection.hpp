// A small RAII layer over libpq: parameterised statements only (text or binary parameters),
// named prepared statements, transactions, and errors that carry the SQLSTATE.
#pragma once
#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace outboxd::db {

// A failed statement or a lost connection. `sqlstate` is empty when the server sent none
// (connection failures); `connection_lost()` says whether the connection must be reset.
class Error : public std::runtime_error {
public:
    Error(std::string message, std::string sqlstate, bool connection_lost)
        : std::runtime_error(std::move(message)), sqlstate_(std::move(sqlstate)), lost_(connection_lost) {}
    const std::string& sqlstate() const { return sqlstate_; }
    bool connection_lost() const { return lost_; }

private:
    std::string sqlstate_;
    bool lost_;
};

// Statement parameters. Text by default; `bytes` sends binary (for bytea), `null` sends NULL.
class Params {
public:
    Params() = default;
    template <class... Ts>
    explicit Params(const Ts&... vs) { (add(vs), ...); }

    Params& add(std::string_view text);
    Params& add(const std::string& text) { return add(std::string_view(text)); }
    Params& add(const char* text) { return add(std::string_view(text)); }
    Params& add(std::int64_t n) { return add(std::string_view(std::to_string(n))); }
    Params& add(int n) { return add(static_cast<std::int64_t>(n)); }
    Params& add(bool b) { return add(std::string_view(b ? "true" : "false")); }
    template <class T>
    Params& add(const std::optional<T>& v) { return v ? add(*v) : null(); }
    Params& bytes(std::string_view data);
    Params& null();

    int size() const { return static_cast<int>(values_.size()); }
    const char* const* values() const;
    const int* lengths() const { return lengths_.data(); }
    const int* formats() const { return formats_.data(); }

private:
    std::vector<std::optional<std::string>> values_;
    std::vector<int> lengths_;
    std::vector<int> formats_;
    mutable std::vector<const char*> ptrs_;
};

// Array literals for `$n::text[]` / `$n::bigint[]` parameters (elements quoted and escaped), so a
// statement takes a whole batch as one parameter.
std::string array_literal(const std::vector<std::string>& items);
std::string array_literal(const std::vector<std::int64_t>& items);

enum class ResultFormat { text, binary };

// One-dimensional arrays in PostgreSQL's binary format, sent with Params::bytes() for a
// `$n::text[]`, `$n::bytea[]` or `$n::bigint[]` parameter: the server copies the elements without
// parsing or unescaping anything (a batch of webhook bodies is megabytes). nullopt is NULL.
class BinaryArray {
public:
    static BinaryArray text() { return BinaryArray(25); }
    static BinaryArray bytea() { return BinaryArray(17); }
    static BinaryArray int8() { return BinaryArray(20); }
    BinaryArray& add(std::optional<std::string_view> element);
    BinaryArray& add(std::optional<std::int64_t> element);  // int8 arrays only
    // The wire form: header (dimensions, null flag, element type), then each length and element.
    std::string encode() const;

private:
    explicit BinaryArray(std::uint32_t element_oid) : oid_(element_oid) {}
    std::uint32_t oid_;
    std::size_t count_ = 0;
    bool has_null_ = false;
    std::string elements_;
};

class Result {
public:
    Result() = default;
    explicit Result(PGresult* r) : res_(r, &PQclear) {}

    int rows() const { return res_ ? PQntuples(res_.get()) : 0; }
    int columns() const { return res_ ? PQnfields(res_.get()) : 0; }
    bool is_null(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
    std::string_view get(int row, int col) const {
        return {PQgetvalue(res_.get(), row, col), static_cast<std::size_t>(PQgetlength(res_.get(), row, col))};
    }
    std::string text(int row, int col) const { return std::string(get(row, col)); }
    std::int64_t int64(int row, int col) const;
    double number(int row, int col) const;
    bool boolean(int row, int col) const;
    std::optional<std::string> optional_text(int row, int col) const {
        if (is_null(row, col)) return std::nullopt;
        return text(row, col);
    }
    // bytea: the bytes themselves in binary results, decoded from "\x..." hex in text results.
    std::string bytea(int row, int col) const;
    // Columns of a ResultFormat::binary result are in PostgreSQL's binary form: int64(),
    // number(), boolean() and bytea() decode it, text columns are their bytes as in text form.
    bool binary(int col) const;
    int column(std::string_view name) const;
    std::int64_t affected() const;

private:
    std::shared_ptr<PGresult> res_;
};

// Cancels the statement a session is running, from any thread (PQcancel is safe there; the
// handle is made by the owning thread when it connects). A shutdown uses it on a thread that
// waits on a lock, which would otherwise hold the stop past every deadline.
class CancelHandle {
public:
    CancelHandle() = default;
    explicit CancelHandle(std::shared_ptr<PGcancel> c) : c_(std::move(c)) {}
    // True when the request reached the server (there may have been nothing to cancel).
    bool cancel() const;

private:
    std::shared_ptr<PGcancel> c_;
};

class Connection {
public:
    explicit Connection(std::string conninfo, std::string application_name = "outboxd");
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Runs SQL (one statement when `params` is non-empty). Throws Error.
    Result exec(std::string_view sql, const Params& params = {});
    // Prepares NAME once per physical connection (again after a reset), then executes it.
    Result exec_prepared(const std::string& name, std::string_view sql, const Params& params = {},
                         ResultFormat format = ResultFormat::text);

    void begin() { exec("BEGIN"); }
    void commit() { exec("COMMIT"); }
    void rollback() noexcept;

    bool ok() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
    // ok(), and the server has not ended the session meanwhile (a terminated backend, a restart):
    // one poll, no waiting. For sessions between statements that do not LISTEN, before work whose
    // failure would cost a client an error.
    bool alive();
    // Reconnects (one attempt); throws Error if the server is still unreachable.
    void reset();
    int socket() const { return conn_ ? PQsocket(conn_) : -1; }
    // Reads what arrived on the socket and returns pending NOTIFY channel names.
    std::vector<std::string> notifications();
    int backend_pid() const { return conn_ ? PQbackendPID(conn_) : 0; }
    PGconn* native() { return conn_; }
    CancelHandle cancel_handle() const { return CancelHandle(cancel_); }

private:
    void connect();
    Result check(PGresult* r, std::string_view what);

    std::string conninfo_;
    std::string application_name_;
    PGconn* conn_ = nullptr;
    std::shared_ptr<PGcancel> cancel_;
    std::vector<std::string> prepared_;
};

// A transaction scope: rolls back unless commit() ran.
class Transaction {
public:
    explicit Transaction(Connection& c) : c_(c) { c_.begin(); }
    ~Transaction() {
        if (!done_) c_.rollback();
    }
    void commit() {
        c_.commit();
        done_ = true;
    }

private:
    Connection& c_;
    bool done_ = false;
};

// A fixed-size pool of connections. `acquire` waits up to `timeout` and returns nullopt when
// none frees up, so callers can answer 503 instead of queueing without bound.
class Pool {
public:
    Pool(std::string conninfo, int size, std::string application_name = "outboxd");
    ~Pool();

    class Lease {
    public:
        Lease(Pool* p, std::unique_ptr<Connection> c) : pool_(p), conn_(std::move(c)) {}
        Lease(Lease&&) = default;
        ~Lease();
        Connection& operator*() { return *conn_; }
        Connection* operator->() { return conn_.get(); }

    private:
        Pool* pool_;
        std::unique_ptr<Connection> conn_;
    };

    std::optional<Lease> acquire(std::chrono::milliseconds timeout);
    const std::string& conninfo() const { return conninfo_; }

private:
    struct State;
    std::string conninfo_;
    std::string application_name_;
    std::unique_ptr<State> state_;
    void give_back(std::unique_ptr<Connection> c);
};

}  // namespace outboxd::db
