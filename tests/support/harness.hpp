// Test support for integration and fault tests: a migrated database per test on the throw-away
// cluster that scripts/run-tests.sh starts (pg_virtualenv sets PGHOST/PGPORT/PGUSER/PGPASSWORD),
// real HTTP receivers on 127.0.0.1, outboxd processes with generated configs, and wait_until().
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "outboxd/db/connection.hpp"

namespace testsupport {

using namespace std::chrono_literals;

// Polls `pred` every 20 ms until it holds or `timeout` passes; returns its last value.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// "postgresql://user:pass@host:port/DB" for the cluster of this test run.
std::string conninfo(const std::string& db);

// A fresh database (dropped first if it exists), migrated with outboxd's schema.
class TestDatabase {
public:
    // `empty`: a fresh database without outboxd's schema, for tests of the migrations themselves.
    enum class Schema { migrated, empty };
    explicit TestDatabase(std::string name, Schema schema = Schema::migrated);
    ~TestDatabase();
    const std::string& url() const { return url_; }
    const std::string& name() const { return name_; }
    outboxd::db::Connection& conn() { return *conn_; }
    outboxd::db::Result sql(const std::string& q, const outboxd::db::Params& p = {}) { return conn_->exec(q, p); }
    std::string scalar(const std::string& q) {
        auto r = conn_->exec(q);
        return r.rows() ? r.text(0, 0) : "";
    }
    // integration(id, 'github', external_id) + organizations in the given regions (one each).
    void seed_integration(std::int64_t id, const std::string& provider, const std::string& external_id,
                          const std::vector<std::string>& org_regions, const std::string& metadata = "{}");

private:
    std::string name_, url_;
    std::unique_ptr<outboxd::db::Connection> conn_;
};

struct ReceivedRequest {
    std::chrono::steady_clock::time_point at;
    std::string method, target, body;
    std::map<std::string, std::string> headers;  // lower-case names
    int status = 0;                              // what the receiver answered
};

// HTTPS mode for a Receiver: a PEM certificate chain and its key. url() then names `host`
// (https://localhost:PORT by default, so the client's host name verification applies).
struct ReceiverTls {
    std::string cert_file, key_file;
    std::string host = "localhost";
    bool tls12_only = false;  // offer TLS 1.2 at most (session-id/ticket resumption of 1.2)
};

// A region or app receiver: a blocking HTTP/1.1 server (keep-alive) on 127.0.0.1 with one thread
// per connection, plain or (with ReceiverTls) TLS. `respond` picks the status (and may sleep to
// simulate a hang).
class Receiver {
public:
    using Responder = std::function<int(const ReceivedRequest&)>;
    explicit Receiver(Responder respond = {});
    Receiver(Responder respond, const ReceiverTls& tls);
    ~Receiver();
    unsigned short port() const { return port_; }
    std::string url() const {
        return (tls_host_.empty() ? "http://127.0.0.1:" : "https://" + tls_host_ + ":") + std::to_string(port_);
    }
    std::vector<ReceivedRequest> requests();
    std::vector<ReceivedRequest> ok();  // answered 2xx
    std::size_t connections() const { return connections_.load(); }  // TCP connections accepted
    std::size_t handshakes() const;          // TLS handshakes completed (0 in plain mode)
    std::size_t resumed_handshakes() const;  // of which resumed a session
    void set_responder(Responder r);
    // Extra response headers (e.g. Retry-After).
    void set_header(const std::string& name, const std::string& value);
    // false: answer `Connection: close` and close after each response.
    void set_keep_alive(bool on);
    // Closes every open connection from the receiver's side (as an idle timeout would), no close_notify.
    void drop_connections();
    // TLS mode: new connections use this certificate from now on.
    void set_certificate(const std::string& cert_file, const std::string& key_file);

private:
    struct Impl;
    void start();
    std::unique_ptr<Impl> impl_;
    unsigned short port_ = 0;
    std::atomic<std::size_t> connections_{0};
    std::string tls_host_;
};

unsigned short free_port();

// How often `needle` occurs in `text` (log lines in a daemon's log, say).
std::size_t count_of(const std::string& text, const std::string& needle);

// build/outboxd with a config written from `toml` (the [database] url is filled in).
class Daemon {
public:
    Daemon(const std::string& config_toml, const std::string& name);
    ~Daemon();
    // Starts and waits for /readyz on the metrics listener; false on timeout.
    bool start(std::chrono::milliseconds timeout = 20s);
    void kill9();
    // SIGTERM; returns the exit code (or -1 on timeout, after which it is killed).
    int terminate(std::chrono::milliseconds timeout = 20s);
    // Waits for an exit without signalling; the exit code, or -1 on timeout (then it is killed).
    int wait_exit(std::chrono::milliseconds timeout = 20s);
    bool running();
    // Sends a signal (SIGHUP to reload).
    void signal(int sig);
    // Rewrites the config file (then signal(SIGHUP) to apply).
    void rewrite_config(const std::string& toml);
    const std::string& config_path() const { return config_path_; }
    int pid() const { return pid_; }
    // RLIMIT_NOFILE for the next start() (0: inherited).
    void set_open_file_limit(unsigned long n) { open_files_ = n; }
    std::string log();

private:
    std::string config_path_, log_path_;
    int pid_ = -1;
    unsigned long open_files_ = 0;
};

// Plain HTTP client for tests (no keep-alive): returns status and body; status 0 on failure.
struct HttpResult {
    int status = 0;
    std::string body;
};
HttpResult http_request(const std::string& method, const std::string& host, unsigned short port,
                        const std::string& target, const std::string& body = {},
                        const std::vector<std::pair<std::string, std::string>>& headers = {});

std::string binary_dir();  // where outboxd and outboxctl were built

// A daemon config: database, fresh listen ports, the given regions (secret "{name}-secret"),
// then `extra` TOML appended verbatim (drain/retry tables and such).
struct DaemonConfig {
    std::string toml;
    unsigned short ingress = 0;
    unsigned short metrics = 0;
};
DaemonConfig daemon_config(const std::string& db_url, const std::vector<std::pair<std::string, std::string>>& regions,
                           const std::string& extra = "");

// Value of one sample line of /metrics (sum over series whose labels include `labels`), or -1.
double metric_value(unsigned short metrics_port, const std::string& name, const std::string& labels = "");
// Value of exactly one series, written as on /metrics ("name{a=\"x\",b=\"y\"}"); 0 when absent.
double metric_series(unsigned short metrics_port, const std::string& series);

// Runs a command, returns (exit code, stdout+stderr).
std::pair<int, std::string> run_command(const std::string& cmd);

}  // namespace testsupport
