// The contract of a provider parser: given a request under /extensions/{provider}/, say how to
// answer and, when the webhook must be stored, which integration (or organization) owns it and
// how to fan out. Parsers never touch the outbox; the router resolves regions and stores.
#pragma once
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "outboxd/config/config.hpp"
#include "outboxd/ingress/request.hpp"

namespace outboxd::ingress {

struct Integration {
    std::int64_t id = 0;
    std::string provider;
    std::string external_id;
    std::string status;  // active | disabled
    boost::json::object metadata;
};

// Read access to the domain tables a parser needs. Implemented over Postgres by the resolver
// (src/ingress/resolver.cpp) and by an in-memory map in unit tests.
class Directory {
public:
    virtual ~Directory() = default;
    // The integration with (provider, external_id), whatever its status.
    virtual std::optional<Integration> integration_by_external_id(const std::string& provider,
                                                                  const std::string& external_id) = 0;
    virtual std::optional<Integration> integration_by_id(std::int64_t id) = 0;
    // The region of an organization (organization_mapping), for providers whose URL names the
    // organization instead of an integration (bitbucket). The default knows no organization, so
    // directories that predate this lookup (test fakes) keep compiling and refuse such webhooks.
    virtual std::optional<std::string> organization_region(std::int64_t /*organization_id*/) { return std::nullopt; }
};

enum class Fanout {
    every_region,  // one row per distinct region of the integration's active organizations
    first_region,  // one row: alphabetically first of those regions
};

// What to do with one request.
struct Decision {
    Response response;  // the answer when stored (default 202) or when not stored
    // Why it was not stored, or "stored"/"control": the `reason` label of the metrics and logs
    // (bad_json, no_integration, bad_signature, not_found, method_not_allowed, ...).
    std::string reason = "stored";
    bool store = false;
    std::string mailbox;                        // e.g. github:42
    std::optional<std::int64_t> integration_id; // regions come from its active organizations
    std::optional<std::string> region;          // or a fixed region (bitbucket)
    Fanout fanout = Fanout::every_region;

    static Decision reply(int status, std::string reason, std::string body = {}, std::string content_type = {});
    static Decision json_reply(int status, std::string reason, std::string json_body);
    static Decision store_for(const Integration& integ, std::string provider, Fanout fanout = Fanout::every_region,
                              Response response = {202, {}, {}});
};

// Everything a parser may consult besides the request.
struct Context {
    Directory& directory;
    const config::Config& config;
    std::function<std::chrono::system_clock::time_point()> now = [] { return std::chrono::system_clock::now(); };
};

// A provider: its name as in the URL (after '-' → '_' mapping) and its parse function, which
// receives the path below /extensions/{segment}/ (e.g. "webhook/"). Unknown subpath → 404;
// known path but not POST → 405 (see `route_guard`).
struct Provider {
    std::string name;
    Decision (*parse)(const Request& req, std::string_view subpath, Context& ctx);
};

// All providers (src/ingress/parsers/registry.cpp: adding one is one line there + one file).
const std::vector<Provider>& providers();
const Provider* find_provider(std::string_view name);

// Shared answers for the common refusals.
Decision not_found();
Decision method_not_allowed();
// nullopt when the request is a POST; else the 405 decision.
std::optional<Decision> require_post(const Request& req);
// For "no integration found" (unknown, disabled): 400.
Decision no_integration(const std::string& what);

// Verification helpers (src/ingress/crypto.cpp).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);
std::string hmac_sha256_raw(std::string_view key, std::string_view data);
std::string sha256_hex(std::string_view data);
bool constant_time_equal(std::string_view a, std::string_view b);
// base64url without padding → bytes; nullopt if invalid.
std::optional<std::string> base64url_decode(std::string_view in);
std::optional<std::string> hex_decode(std::string_view in);
bool ed25519_verify(std::string_view public_key_raw32, std::string_view message, std::string_view signature_raw64);

}  // namespace outboxd::ingress
