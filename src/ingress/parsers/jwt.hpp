// Compact HS256 JWTs as Jira (Atlassian Connect) and Jira Server webhooks carry them: decoding is
// separate from verifying because the key is only known once a claim has named the integration.
#pragma once
#include <boost/json/object.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace outboxd::ingress::jwt {

struct Token {
    std::string signing_input;  // "header.payload" exactly as received: what the MAC covers
    std::string signature_b64;  // third segment, as received
    boost::json::object header;
    boost::json::object claims;
};

// Splits and decodes a compact JWT without verifying it: nullopt unless it has three segments,
// the first two base64url-encoded JSON objects.
std::optional<Token> decode(std::string_view compact);

// True when the header says HS256 and the signature is HMAC-SHA256(key, signing input). Any other
// algorithm is refused: accepting "none" or letting the token pick would let it sign itself.
bool verify_hs256(const Token& token, std::string_view key);

// The claim as a string: strings as is, integers in decimal; nullopt for anything else.
std::optional<std::string> string_claim(const Token& token, std::string_view name);

// What `exp` says at `now`: fresh when the token has none or it (seconds since the epoch) is after
// `now`; malformed when it is not a finite number (null, a string, ...), which RFC 7519 does not
// allow and whose intent cannot be honoured, so it is refused like an expired token but told
// apart in the answer and the metric.
enum class Expiry { fresh, expired, malformed };
Expiry check_expiry(const Token& token, std::chrono::system_clock::time_point now);

// Unpadded base64url, the encoding of every JWT segment.
std::string base64url_encode(std::string_view bytes);

}  // namespace outboxd::ingress::jwt
