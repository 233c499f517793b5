// What the ingress knows of one HTTP request: transport-free, so parsers and the router are
// unit-testable without sockets.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace outboxd::ingress {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
    std::string method;  // "POST"
    std::string target;  // path with query, as received
    Headers headers;     // in arrival order
    std::string body;    // bytes

    std::string_view path() const;   // target without the query
    std::string_view query() const;  // after '?', or empty
    // First header of that name (case-insensitive), or nullopt.
    std::optional<std::string_view> header(std::string_view name) const;
};

struct Response {
    int status = 202;
    std::string body;
    std::string content_type;  // empty: no Content-Type
};

// Header names compared as RFC 9110 says: ASCII, case-insensitively (no locale).
bool same_header_name(std::string_view a, std::string_view b);

// Headers worth replaying at the region: all but hop-by-hop ones, Host, Content-Length and
// those named by Connection.
Headers forwardable_headers(const Headers& in);

// UTF-8 as PostgreSQL accepts it in text and jsonb: no overlong forms, no surrogates, nothing past
// U+10FFFF. What passes here must not fail the insert (that answers 503, and the provider retries).
bool valid_utf8(std::string_view s);
// Text a PostgreSQL text parameter can carry as it is: valid UTF-8 without NUL (libpq sends
// parameters as C strings, so a NUL would cut the value short and match another key).
bool storable_text(std::string_view s);

// Percent-decodes a URL component ('+' stays '+').
std::string percent_decode(std::string_view s);
// Splits "a=1&b=2" into decoded pairs ('+' in form bodies is a space when form == true).
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view q, bool form = false);

}  // namespace outboxd::ingress
