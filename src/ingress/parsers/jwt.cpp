// Decoding and HS256 verification of compact JWTs, shared by the jira and jira_server parsers.
#include "jwt.hpp"

#include <boost/json.hpp>
#include <cmath>

#include "outboxd/ingress/parser.hpp"

namespace outboxd::ingress::jwt {
namespace {
// The shared decoder also takes '+', '/' and '=' (plain base64); a JWT segment must not, so the
// same token cannot be spelled several ways.
bool is_base64url(std::string_view s) {
    for (char c : s) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok) return false;
    }
    return true;
}

std::optional<boost::json::object> decode_object(std::string_view segment) {
    if (segment.empty() || !is_base64url(segment)) return std::nullopt;
    auto raw = base64url_decode(segment);
    if (!raw) return std::nullopt;
    boost::system::error_code ec;
    auto v = boost::json::parse(*raw, ec);
    if (ec || !v.is_object()) return std::nullopt;
    return std::move(v.as_object());
}
}  // namespace

std::string base64url_encode(std::string_view bytes) {
    static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    unsigned int buf = 0;
    int bits = 0;
    for (char c : bytes) {
        buf = (buf << 8) | static_cast<unsigned char>(c);
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(digits[(buf >> bits) & 63]);
        }
    }
    if (bits > 0) out.push_back(digits[(buf << (6 - bits)) & 63]);
    return out;
}

std::optional<Token> decode(std::string_view compact) {
    auto first = compact.find('.');
    if (first == std::string_view::npos) return std::nullopt;
    auto second = compact.find('.', first + 1);
    if (second == std::string_view::npos || compact.find('.', second + 1) != std::string_view::npos)
        return std::nullopt;
    auto signature = compact.substr(second + 1);
    if (!is_base64url(signature)) return std::nullopt;
    auto header = decode_object(compact.substr(0, first));
    auto claims = decode_object(compact.substr(first + 1, second - first - 1));
    if (!header || !claims) return std::nullopt;
    Token t;
    t.signing_input = std::string(compact.substr(0, second));
    t.signature_b64 = std::string(signature);
    t.header = std::move(*header);
    t.claims = std::move(*claims);
    return t;
}

bool verify_hs256(const Token& token, std::string_view key) {
    const auto* alg = token.header.if_contains("alg");
    if (!alg || !alg->is_string() || alg->as_string() != "HS256") return false;
    // Comparing the canonical encodings also refuses non-canonical trailing bits.
    auto want = base64url_encode(hmac_sha256_raw(key, token.signing_input));
    return constant_time_equal(token.signature_b64, want);
}

std::optional<std::string> string_claim(const Token& token, std::string_view name) {
    const auto* v = token.claims.if_contains(name);
    if (!v) return std::nullopt;
    if (v->is_string()) return std::string(v->as_string());
    if (v->is_int64()) return std::to_string(v->as_int64());
    if (v->is_uint64()) return std::to_string(v->as_uint64());
    return std::nullopt;
}

Expiry check_expiry(const Token& token, std::chrono::system_clock::time_point now) {
    const auto* exp = token.claims.if_contains("exp");
    if (!exp) return Expiry::fresh;
    double seconds;
    if (exp->is_int64()) seconds = static_cast<double>(exp->as_int64());
    else if (exp->is_uint64()) seconds = static_cast<double>(exp->as_uint64());
    else if (exp->is_double()) seconds = exp->as_double();
    else return Expiry::malformed;
    if (!std::isfinite(seconds)) return Expiry::malformed;
    double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
    return seconds > now_s ? Expiry::fresh : Expiry::expired;
}

}  // namespace outboxd::ingress::jwt
