// The daemon's configuration: one struct filled from TOML through one table of keys
// (src/config/config.cpp), so parsing, `outboxctl config show` and the docs check agree.
#pragma once
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace outboxd::config {

using Duration = std::chrono::milliseconds;

struct Region {
    std::string name;
    std::string url;     // scheme://host[:port][/base]; the stored request path is appended
    std::string secret;  // key of X-Outbox-Signature
};

struct Config {
    struct {
        std::string url = "postgresql:///outboxd";
        int pool_size = 8;
    } database;
    struct {
        std::string listen = "127.0.0.1:8080";
        std::int64_t max_body_bytes = 1048576;
        Duration read_timeout{std::chrono::seconds(30)};
        Duration directory_cache_ttl{std::chrono::seconds(30)};
        std::string tls_cert;
        std::string tls_key;
    } ingress;
    struct {
        std::string listen = "127.0.0.1:9464";
    } metrics;
    struct {
        int concurrency = 64;
        int batch_size = 100;
        int rows_per_mailbox = 20;
        Duration request_timeout{std::chrono::seconds(10)};
        Duration lease{std::chrono::seconds(30)};
        Duration poll_interval{std::chrono::seconds(1)};
        Duration claim_interval{std::chrono::milliseconds(2)};
        Duration shutdown_timeout{std::chrono::seconds(10)};
        int circuit_failures = 10;
        Duration circuit_open{std::chrono::seconds(2)};
        Duration circuit_max_open{std::chrono::seconds(60)};
    } drain;
    struct {
        Duration base_delay{std::chrono::seconds(1)};
        Duration max_delay{std::chrono::hours(1)};
        int max_attempts = 10;
        Duration max_age{std::chrono::hours(72)};
    } retry;
    std::vector<Region> regions;
    struct {
        std::string github_webhook_secret;
        std::string slack_signing_secret;
        std::string discord_public_key;
    } provider;
    struct {
        std::string ca_file;
    } tls;
    struct {
        Duration request_timeout{std::chrono::seconds(1)};
        bool allow_private_urls = false;
        int broken_timeout_threshold = 1000;
    } apps;
    struct {
        std::string url = "smtp://127.0.0.1:25";
        std::string from = "outboxd@localhost";
    } smtp;
    struct {
        std::string level = "info";
        std::string format = "logfmt";  // logfmt | json
    } log;

    const Region* region(std::string_view name) const;
};

// A bad file, an unknown key or a bad value: the message names the key.
struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Loads FILE, then applies OUTBOXD_DATABASE_URL. Throws ConfigError.
Config load_file(const std::string& path);
// Parses TOML text (for tests); `origin` names it in messages.
Config load_string(const std::string& text, const std::string& origin = "config");

// "250ms", "5s", "3m", "1h", "3d" → milliseconds; throws std::invalid_argument otherwise.
Duration parse_duration(std::string_view text);
std::string format_duration(Duration d);

struct KeyInfo {
    std::string path;  // e.g. "drain.batch_size"; "region[].url" for array tables
    std::string type;  // string | int | bool | duration
    std::string default_value;
    bool reloadable;
    std::string doc;
};
// Every key the file may hold, in documentation order.
const std::vector<KeyInfo>& known_keys();
// key = value lines of the effective configuration, secrets masked.
std::vector<std::pair<std::string, std::string>> describe(const Config& cfg);

}  // namespace outboxd::config

#include <memory>
#include <mutex>

namespace outboxd::config {

// The configuration in force, replaceable on SIGHUP. Readers take a snapshot per unit of work (a
// request, a claim, a shard run), so a reload never changes a value under a running operation.
class LiveConfig {
public:
    explicit LiveConfig(Config initial) : current_(std::make_shared<const Config>(std::move(initial))) {}
    std::shared_ptr<const Config> get() const {
        std::lock_guard lk(mu_);
        return current_;
    }
    // Takes the reloadable keys of `next` (see known_keys()); keys that need a restart keep their
    // value. Returns the paths of those that differed, for the log.
    std::vector<std::string> reload(const Config& next);

private:
    mutable std::mutex mu_;
    std::shared_ptr<const Config> current_;
};

}  // namespace outboxd::config
