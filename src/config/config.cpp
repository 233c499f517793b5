// Config loading driven by one table of keys: each row says the TOML path, the type, the default,
// whether SIGHUP may change it, and its one-line doc. An unknown key or a bad value is fatal.
#include "outboxd/config/config.hpp"

#include <libpq-fe.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/url/parse.hpp>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <toml.hpp>

namespace outboxd::config {
namespace {

using Setter = std::function<void(Config&, const toml::value&, const std::string& key)>;
using Getter = std::function<std::string(const Config&)>;

struct KeyRow {
    KeyInfo info;
    Setter set;
    Getter get;
    bool secret = false;
};

[[noreturn]] void bad(const std::string& key, const std::string& why) {
    throw ConfigError("config: " + key + ": " + why);
}

std::string as_string(const toml::value& v, const std::string& key) {
    if (!v.is_string()) bad(key, "expected a string");
    return v.as_string().str;
}
std::int64_t as_int(const toml::value& v, const std::string& key, std::int64_t lo, std::int64_t hi) {
    if (!v.is_integer()) bad(key, "expected an integer");
    auto n = v.as_integer();
    if (n < lo || n > hi) bad(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    return n;
}
bool as_bool(const toml::value& v, const std::string& key) {
    if (!v.is_boolean()) bad(key, "expected true or false");
    return v.as_boolean();
}
Duration as_duration(const toml::value& v, const std::string& key) {
    if (!v.is_string()) bad(key, "expected a duration string such as \"5s\"");
    try {
        return parse_duration(v.as_string().str);
    } catch (const std::invalid_argument& e) {
        bad(key, e.what());
    }
}

#define OUTBOXD_STR(path, member, reload, doc)                                                  \
    KeyRow{{path, "string", Config{}.member, reload, doc},                                      \
           [](Config& c, const toml::value& v, const std::string& k) { c.member = as_string(v, k); }, \
           [](const Config& c) { return c.member; }}
#define OUTBOXD_SECRET(path, member, reload, doc)                                               \
    KeyRow{{path, "string", Config{}.member, reload, doc},                                      \
           [](Config& c, const toml::value& v, const std::string& k) { c.member = as_string(v, k); }, \
           [](const Config& c) { return c.member.empty() ? std::string() : std::string("********"); }, true}
#define OUTBOXD_INT(path, member, lo, hi, reload, doc)                                          \
    KeyRow{{path, "int", std::to_string(Config{}.member), reload, doc},                         \
           [](Config& c, const toml::value& v, const std::string& k) {                          \
               c.member = static_cast<decltype(c.member)>(as_int(v, k, lo, hi));                \
           },                                                                                   \
           [](const Config& c) { return std::to_string(c.member); }}
#define OUTBOXD_BOOL(path, member, reload, doc)                                                 \
    KeyRow{{path, "bool", Config{}.member ? "true" : "false", reload, doc},                     \
           [](Config& c, const toml::value& v, const std::string& k) { c.member = as_bool(v, k); }, \
           [](const Config& c) { return std::string(c.member ? "true" : "false"); }}
#define OUTBOXD_DUR(path, member, reload, doc)                                                  \
    KeyRow{{path, "duration", format_duration(Config{}.member), reload, doc},                   \
           [](Config& c, const toml::value& v, const std::string& k) {                          \
               c.member = as_duration(v, k);                                                    \
               if (c.member.count() <= 0) bad(k, "must be positive");                           \
           },                                                                                   \
           [](const Config& c) { return format_duration(c.member); }}
// A duration where 0 means "off".
#define OUTBOXD_DUR_OR_OFF(path, member, reload, doc)                                           \
    KeyRow{{path, "duration", format_duration(Config{}.member), reload, doc},                   \
           [](Config& c, const toml::value& v, const std::string& k) {                          \
               c.member = as_duration(v, k);                                                    \
               if (c.member.count() < 0) bad(k, "must not be negative");                        \
           },                                                                                   \
           [](const Config& c) { return format_duration(c.member); }}

const std::vector<KeyRow>& rows() {
    static const std::vector<KeyRow> table = {
        OUTBOXD_SECRET("database.url", database.url, false,
                       "libpq connection URI; OUTBOXD_DATABASE_URL overrides it"),
        OUTBOXD_INT("database.pool_size", database.pool_size, 1, 1000, false,
                    "connections used by the ingress (lookups and group commits)"),
        OUTBOXD_STR("ingress.listen", ingress.listen, false, "host:port of the webhook endpoint"),
        OUTBOXD_INT("ingress.max_body_bytes", ingress.max_body_bytes, 1, 1LL << 30, false,
                    "larger bodies are answered 413 without being read"),
        OUTBOXD_DUR("ingress.read_timeout", ingress.read_timeout, false,
                    "time a client has to send one whole request (slowloris guard)"),
        OUTBOXD_DUR_OR_OFF("ingress.directory_cache_ttl", ingress.directory_cache_ttl, false,
                    "how long a cached integration or region lookup may serve webhooks; 0s turns the cache off"),
        OUTBOXD_STR("ingress.tls_cert", ingress.tls_cert, false, "PEM certificate chain: serve HTTPS"),
        OUTBOXD_STR("ingress.tls_key", ingress.tls_key, false, "PEM private key for ingress.tls_cert"),
        OUTBOXD_STR("metrics.listen", metrics.listen, false, "host:port of /metrics, /healthz, /readyz"),
        OUTBOXD_INT("drain.concurrency", drain.concurrency, 1, 100000, true,
                    "deliveries in flight per daemon (one per mailbox at a time)"),
        OUTBOXD_INT("drain.batch_size", drain.batch_size, 1, 10000, true, "rows claimed per query"),
        OUTBOXD_INT("drain.rows_per_mailbox", drain.rows_per_mailbox, 1, 1000, true,
                    "consecutive rows of one mailbox taken in one claim"),
        OUTBOXD_DUR("drain.request_timeout", drain.request_timeout, true,
                    "whole-request deadline of one delivery to a region"),
        OUTBOXD_DUR("drain.lease", drain.lease, false,
                    "claims of a daemon that stopped answering are taken over after this"),
        OUTBOXD_DUR("drain.poll_interval", drain.poll_interval, true,
                    "claim at least this often when no NOTIFY arrives"),
        OUTBOXD_DUR_OR_OFF("drain.claim_interval", drain.claim_interval, true,
                           "least time between two claims that wake-ups ask for (0ms: claim at every wake-up)"),
        OUTBOXD_DUR("drain.shutdown_timeout", drain.shutdown_timeout, false,
                    "on SIGTERM, in-flight deliveries get this long before they are released"),
        OUTBOXD_INT("drain.circuit_failures", drain.circuit_failures, 1, 100000, true,
                    "consecutive failures that open a region's circuit"),
        OUTBOXD_DUR("drain.circuit_open", drain.circuit_open, true, "first open period of a circuit"),
        OUTBOXD_DUR("drain.circuit_max_open", drain.circuit_max_open, true,
                    "longest open period (it doubles while probes fail)"),
        OUTBOXD_DUR("retry.base_delay", retry.base_delay, true, "first backoff step"),
        OUTBOXD_DUR("retry.max_delay", retry.max_delay, true, "backoff cap"),
        OUTBOXD_INT("retry.max_attempts", retry.max_attempts, 1, 1000000, true,
                    "attempts before a row is dead-lettered"),
        OUTBOXD_DUR("retry.max_age", retry.max_age, true, "rows older than this are dead-lettered"),
        OUTBOXD_SECRET("provider.github.webhook_secret", provider.github_webhook_secret, true,
                       "verify X-Hub-Signature-256 (401 if wrong)"),
        OUTBOXD_SECRET("provider.slack.signing_secret", provider.slack_signing_secret, true,
                       "verify X-Slack-Signature v0 with a 5-minute window (401 if wrong)"),
        OUTBOXD_STR("provider.discord.public_key", provider.discord_public_key, true,
                    "hex Ed25519 key: verify X-Signature-Ed25519 (401 if wrong)"),
        OUTBOXD_STR("tls.ca_file", tls.ca_file, false, "PEM CA bundle; empty: the system trust store"),
        OUTBOXD_DUR("apps.request_timeout", apps.request_timeout, true, "deadline of one app webhook"),
        OUTBOXD_BOOL("apps.allow_private_urls", apps.allow_private_urls, true,
                     "let app webhooks reach loopback/private addresses"),
        OUTBOXD_INT("apps.broken_timeout_threshold", apps.broken_timeout_threshold, 1, 100000000, true,
                    "timeouts in one day that make an app broken"),
        OUTBOXD_STR("smtp.url", smtp.url, true, "SMTP relay for 'integration disabled' mail"),
        OUTBOXD_STR("smtp.from", smtp.from, true, "sender address of those mails"),
        OUTBOXD_STR("log.level", log.level, true, "trace | debug | info | warn | error"),
        OUTBOXD_STR("log.format", log.format, true, "logfmt | json"),
    };
    return table;
}

struct RegionKey {
    const char* name;
    std::string Region::*member;
    const char* doc;
};
const RegionKey kRegionKeys[] = {
    {"name", &Region::name, "region name, as in organization_mapping.region_name"},
    {"url", &Region::url, "base URL (http:// or https://) the stored path is appended to"},
    {"secret", &Region::secret, "HMAC key of X-Outbox-Signature"},
};

// A URL a delivery can be sent to: an allowed scheme and a host. Query and fragment are refused
// because the stored request path is appended to a region's URL.
// A decimal port from 1 to 65535, digits only.
bool valid_port(std::string_view port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    return !port.empty() && ec == std::errc() && end == port.data() + port.size() && value >= 1 && value <= 65535;
}

void check_url(const std::string& key, const std::string& url, std::initializer_list<std::string_view> schemes) {
    std::string names;
    for (auto sc : schemes) names += (names.empty() ? "" : " or ") + std::string(sc) + "://";
    auto u = boost::urls::parse_uri(url);
    bool scheme_ok = false;
    if (u)
        for (auto sc : schemes) {
            // Schemes are case-insensitive (RFC 3986 3.1).
            auto given = u->scheme();
            scheme_ok = scheme_ok || std::equal(given.begin(), given.end(), sc.begin(), sc.end(), [](char a, char b) {
                            return std::tolower(static_cast<unsigned char>(a)) == b;
                        });
        }
    if (!scheme_ok) bad(key, "must start with " + names);
    if (!u->has_authority() || u->encoded_host().empty()) bad(key, "'" + url + "' names no host");
    if (u->has_query() || u->has_fragment()) bad(key, "'" + url + "' must not carry a query or fragment");
    if (u->has_port() && !valid_port(u->port())) bad(key, "bad port in '" + url + "' (1-65535)");
}

// host:port, where host may be empty (all interfaces), a name, an IPv4 or a bracketed IPv6 address.
void check_listen(const std::string& key, const std::string& listen) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) bad(key, "expected host:port, got '" + listen + "'");
    if (!valid_port(std::string_view(listen.c_str() + colon + 1)))
        bad(key, "bad port in '" + listen + "' (expected host:port, port 1-65535)");
    std::string_view host(listen.data(), colon);
    bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
    if (!bracketed && host.find(':') != std::string_view::npos)
        bad(key, "'" + listen + "': write an IPv6 address in brackets, [::1]:port");
}

void apply_region(Config& cfg, const toml::value& v, std::size_t index) {
    std::string where = "region[" + std::to_string(index) + "]";
    if (!v.is_table()) bad(where, "expected a [[region]] table");
    Region r;
    for (const auto& [k, val] : v.as_table()) {
        bool found = false;
        for (const auto& rk : kRegionKeys) {
            if (k == rk.name) {
                r.*(rk.member) = as_string(val, where + "." + k);
                found = true;
            }
        }
        if (!found) bad(where + "." + k, "unknown key");
    }
    if (r.name.empty()) bad(where + ".name", "missing");
    if (r.name == "none") bad(where + ".name", "'none' is reserved: it labels rows without a region");
    check_url(where + ".url", r.url, {"http", "https"});
    while (!r.url.empty() && r.url.back() == '/') r.url.pop_back();
    if (r.secret.empty()) bad(where + ".secret", "missing");
    for (const auto& other : cfg.regions)
        if (other.name == r.name) bad(where + ".name", "duplicate region '" + r.name + "'");
    cfg.regions.push_back(std::move(r));
}

void walk(Config& cfg, const toml::value& table, const std::string& prefix) {
    for (const auto& [k, v] : table.as_table()) {
        std::string key = prefix.empty() ? k : prefix + "." + k;
        if (key == "region") {
            if (!v.is_array()) bad(key, "expected [[region]] tables");
            std::size_t i = 0;
            for (const auto& item : v.as_array()) apply_region(cfg, item, i++);
            continue;
        }
        if (v.is_table()) {
            // Keys inside an unknown table are refused one by one below; an empty one (a
            // misspelt [drian]) has none, so its name is checked here.
            bool known = false;
            for (const auto& row : rows()) known = known || row.info.path.rfind(key + ".", 0) == 0;
            if (!known && v.as_table().empty()) bad(key, "unknown table");
            walk(cfg, v, key);
            continue;
        }
        bool found = false;
        for (const auto& row : rows()) {
            if (row.info.path == key) {
                row.set(cfg, v, key);
                found = true;
                break;
            }
        }
        if (!found) bad(key, "unknown key");
    }
}

// The ingress certificate chain and key load, and belong together: checked here so that
// `outboxctl config show` fails on them as start-up does. OpenSSL directly, as the server does
// through Asio; no passphrase is ever given (an encrypted key is refused, not prompted for).
std::string openssl_error() {
    char buf[256] = "unknown error";
    if (auto e = ERR_get_error()) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

void check_tls_pair(const std::string& cert, const std::string& key) {
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
    if (!ctx) bad("ingress.tls_cert", "OpenSSL: " + openssl_error());
    SSL_CTX_set_default_passwd_cb(ctx.get(), [](char*, int, int, void* asked) {
        *static_cast<bool*>(asked) = true;
        return 0;
    });
    bool asked = false;
    SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), &asked);
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()) != 1)
        bad("ingress.tls_cert", "cannot load '" + cert + "': " + openssl_error());
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
        std::string why = openssl_error();
        if (why.find("key values mismatch") != std::string::npos)
            bad("ingress.tls_key", "'" + key + "' does not belong to the certificate in '" + cert + "'");
        bad("ingress.tls_key", "cannot load '" + key + "': " +
                                   (asked ? std::string("the key is encrypted; give an unencrypted key (readable by the "
                                                        "service user only)")
                                          : why));
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
        bad("ingress.tls_key", "'" + key + "' does not belong to the certificate in '" + cert + "'");
}

void validate(const Config& cfg) {
    if (cfg.log.format != "logfmt" && cfg.log.format != "json") bad("log.format", "must be logfmt or json");
    static const char* levels[] = {"trace", "debug", "info", "warn", "error"};
    bool ok = false;
    for (auto* l : levels) ok = ok || cfg.log.level == l;
    if (!ok) bad("log.level", "must be one of trace, debug, info, warn, error");
    if (cfg.retry.max_delay < cfg.retry.base_delay) bad("retry.max_delay", "must be >= retry.base_delay");
    // A run starts no row after half its lease, so a request must end within the other half, or
    // the shard can be claimed again while its request is still out.
    if (cfg.drain.request_timeout * 2 >= cfg.drain.lease)
        bad("drain.request_timeout", "must be less than half of drain.lease");
    if (cfg.apps.request_timeout * 2 >= cfg.drain.lease)
        bad("apps.request_timeout", "must be less than half of drain.lease");
    if (cfg.ingress.tls_cert.empty() != cfg.ingress.tls_key.empty())
        bad(cfg.ingress.tls_cert.empty() ? "ingress.tls_cert" : "ingress.tls_key",
            "tls_cert and tls_key go together");
    if (!cfg.ingress.tls_cert.empty() && !cfg.ingress.tls_key.empty()) check_tls_pair(cfg.ingress.tls_cert, cfg.ingress.tls_key);
    if (!cfg.ingress.listen.empty()) check_listen("ingress.listen", cfg.ingress.listen);
    // Every role serves metrics.listen; ingress.listen may stay empty for a daemon that only drains.
    if (cfg.metrics.listen.empty()) bad("metrics.listen", "must not be empty");
    check_listen("metrics.listen", cfg.metrics.listen);
    if (!cfg.tls.ca_file.empty()) {
        // Whether it holds certificates is checked when the client loads it; here, that it is there.
        std::FILE* f = std::fopen(cfg.tls.ca_file.c_str(), "r");
        if (!f) bad("tls.ca_file", "cannot read '" + cfg.tls.ca_file + "': " + std::strerror(errno));
        std::fclose(f);
    }
    if (!cfg.smtp.url.empty()) check_url("smtp.url", cfg.smtp.url, {"smtp", "smtps"});
    {
        // Only the syntax: whether the server answers is a start-up question, not a config one.
        char* err = nullptr;
        PQconninfoOption* opts = PQconninfoParse(cfg.database.url.c_str(), &err);
        if (opts) PQconninfoFree(opts);
        if (err) {
            std::string why = err;
            PQfreemem(err);
            while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
            bad(std::getenv("OUTBOXD_DATABASE_URL") && *std::getenv("OUTBOXD_DATABASE_URL")
                    ? "database.url (from OUTBOXD_DATABASE_URL)"
                    : "database.url",
                "not a connection string or URI: " + why);
        }
    }
    if (!cfg.provider.discord_public_key.empty()) {
        const auto& k = cfg.provider.discord_public_key;
        bool hex = k.size() == 64 && k.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
        if (!hex) bad("provider.discord.public_key", "must be 64 hex digits (an Ed25519 public key)");
    }
}

Config finish(const toml::value& root) {
    Config cfg;
    if (!root.is_table()) bad("(root)", "not a table");
    walk(cfg, root, "");
    if (const char* env = std::getenv("OUTBOXD_DATABASE_URL"); env && *env) cfg.database.url = env;
    validate(cfg);
    return cfg;
}

}  // namespace

const Region* Config::region(std::string_view name) const {
    for (const auto& r : regions)
        if (r.name == name) return &r;
    return nullptr;
}

Duration parse_duration(std::string_view text) {
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || p == text.data() || n < 0)
        throw std::invalid_argument("bad duration '" + std::string(text) + "' (use 250ms, 5s, 3m, 1h, 3d)");
    std::string_view unit(p, text.data() + text.size() - p);
    std::int64_t ms;
    if (unit == "ms") ms = 1;
    else if (unit == "s") ms = 1000;
    else if (unit == "m") ms = 60'000;
    else if (unit == "h") ms = 3'600'000;
    else if (unit == "d") ms = 86'400'000;
    else throw std::invalid_argument("bad duration unit in '" + std::string(text) + "' (use ms, s, m, h, d)");
    // Ten years is beyond any sensible setting and keeps every deadline computed from one (a
    // time_point in nanoseconds plus it) far from overflow, which wrapped a huge value silently.
    constexpr std::int64_t kMaxMs = 3650LL * 86'400'000;
    if (n > kMaxMs / ms) throw std::invalid_argument("duration '" + std::string(text) + "' out of range (at most 3650d)");
    return Duration(n * ms);
}

std::string format_duration(Duration d) {
    auto ms = d.count();
    struct U { std::int64_t n; const char* s; } units[] = {
        {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
    for (auto u : units)
        if (ms != 0 && ms % u.n == 0) return std::to_string(ms / u.n) + u.s;
    return std::to_string(ms) + "ms";
}

Config load_string(const std::string& text, const std::string& origin) {
    std::istringstream in(text);
    toml::value root;
    try {
        root = toml::parse(in, origin);
    } catch (const std::exception& e) {
        throw ConfigError(std::string("config: cannot parse ") + origin + ": " + e.what());
    }
    return finish(root);
}

Config load_file(const std::string& path) {
    toml::value root;
    try {
        root = toml::parse(path);
    } catch (const std::exception& e) {
        throw ConfigError("config: cannot read " + path + ": " + e.what());
    }
    return finish(root);
}

const std::vector<KeyInfo>& known_keys() {
    static const std::vector<KeyInfo> keys = [] {
        std::vector<KeyInfo> out;
        for (const auto& r : rows()) out.push_back(r.info);
        for (const auto& rk : kRegionKeys)
            out.push_back({std::string("region[].") + rk.name, "string", "", false, rk.doc});
        return out;
    }();
    return keys;
}

std::vector<std::pair<std::string, std::string>> describe(const Config& cfg) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& r : rows()) out.emplace_back(r.info.path, r.get(cfg));
    for (std::size_t i = 0; i < cfg.regions.size(); ++i) {
        std::string p = "region[" + std::to_string(i) + "].";
        out.emplace_back(p + "name", cfg.regions[i].name);
        out.emplace_back(p + "url", cfg.regions[i].url);
        out.emplace_back(p + "secret", "********");
    }
    return out;
}

}  // namespace outboxd::config

namespace outboxd::config {

std::vector<std::string> LiveConfig::reload(const Config& next) {
    auto old = get();
    Config merged = next;
    // What a restart would need: listeners, the database, TLS material, regions, lease timing.
    merged.database = old->database;
    merged.ingress = old->ingress;
    merged.metrics = old->metrics;
    merged.tls = old->tls;
    merged.regions = old->regions;
    merged.drain.lease = old->drain.lease;
    merged.drain.shutdown_timeout = old->drain.shutdown_timeout;
    // The new file may be consistent on its own and not with the values kept from the running
    // one: a longer request_timeout with the longer lease it needs, say, would otherwise run
    // against the old lease, and a shard could be claimed again while its request is still out.
    try {
        validate(merged);
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string(e.what()) +
                                 " with the values that need a restart kept from the running configuration "
                                 "(drain.lease, listeners, database, TLS, regions); restart to apply them together");
    }
    std::vector<std::string> kept;
    auto before = describe(*old), wanted = describe(next), after = describe(merged);
    for (std::size_t i = 0; i < wanted.size(); ++i) {
        bool differs_from_file = i >= after.size() || wanted[i] != after[i];
        if (differs_from_file) kept.push_back(wanted[i].first);
    }
    if (wanted.size() != after.size()) kept.push_back("region");
    // Secrets are masked in describe(), so their changes are looked for here.
    for (std::size_t i = 0; i < next.regions.size() && i < old->regions.size(); ++i)
        if (next.regions[i].name == old->regions[i].name && next.regions[i].secret != old->regions[i].secret)
            kept.push_back("region[" + std::to_string(i) + "].secret");
    if (next.database.url != old->database.url) kept.push_back("database.url");
    {
        std::lock_guard lk(mu_);
        current_ = std::make_shared<const Config>(std::move(merged));
    }
    return kept;
}

}  // namespace outboxd::config
