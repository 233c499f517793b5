// The primitives provider verification needs (HMAC, SHA-256, Ed25519, base64url), over OpenSSL.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "outboxd/ingress/parser.hpp"

namespace outboxd::ingress {
namespace {
std::string to_hex(const unsigned char* p, std::size_t n) {
    static const char* d = "0123456789abcdef";
    std::string out(n * 2, '0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    return out;
}
}  // namespace

std::string hmac_sha256_raw(std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
         data.size(), out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
    auto raw = hmac_sha256_raw(key, data);
    return to_hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

std::string sha256_hex(std::string_view data) {
    unsigned char out[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
    return to_hex(out, sizeof out);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<std::string> base64url_decode(std::string_view in) {
    std::string out;
    unsigned int buf = 0;
    int bits = 0;
    for (char c : in) {
        int v;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '-' || c == '+') v = 62;
        else if (c == '_' || c == '/') v = 63;
        else if (c == '=') break;
        else return std::nullopt;
        buf = (buf << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((buf >> bits) & 0xff));
        }
    }
    return out;
}

std::optional<std::string> hex_decode(std::string_view in) {
    if (in.size() % 2) return std::nullopt;
    auto val = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    for (std::size_t i = 0; i < in.size(); i += 2) {
        int h = val(in[i]), l = val(in[i + 1]);
        if (h < 0 || l < 0) return std::nullopt;
        out.push_back(static_cast<char>(h * 16 + l));
    }
    return out;
}

bool ed25519_verify(std::string_view public_key_raw32, std::string_view message, std::string_view signature_raw64) {
    if (public_key_raw32.size() != 32 || signature_raw64.size() != 64) return false;
    EVP_PKEY* key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                                reinterpret_cast<const unsigned char*>(public_key_raw32.data()), 32);
    if (!key) return false;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
              EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature_raw64.data()), 64,
                               reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

}  // namespace outboxd::ingress
