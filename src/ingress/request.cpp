// Request helpers shared by every parser: header lookup, header cleaning for replay, query parsing.
#include "outboxd/ingress/request.hpp"

#include <algorithm>

namespace outboxd::ingress {
namespace {
// ASCII-only folding: header names are tokens, and std::tolower consults the locale per byte.
char fold(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace

std::string_view Request::path() const {
    std::string_view t = target;
    return t.substr(0, t.find('?'));
}

std::string_view Request::query() const {
    std::string_view t = target;
    auto q = t.find('?');
    return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

bool same_header_name(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return fold(x) == fold(y); });
}

std::optional<std::string_view> Request::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (same_header_name(k, name)) return std::string_view(v);
    return std::nullopt;
}

Headers forwardable_headers(const Headers& in) {
    // RFC 9110 §7.6.1 hop-by-hop headers, plus what the delivery client sets itself. Compared in
    // place, case-insensitively: this runs for every webhook, and lower-cased copies cost more
    // than the comparisons.
    static constexpr std::string_view drop[] = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                                                "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
                                                "host", "content-length", "expect", "x-outbox-id", "x-outbox-attempt",
                                                "x-outbox-signature"};
    std::vector<std::string_view> named;  // headers listed in Connection are hop-by-hop too
    for (const auto& [k, v] : in) {
        if (!same_header_name(k, "connection")) continue;
        std::string_view s = v;
        while (!s.empty()) {
            auto comma = s.find(',');
            auto tok = s.substr(0, comma);
            while (!tok.empty() && tok.front() == ' ') tok.remove_prefix(1);
            while (!tok.empty() && tok.back() == ' ') tok.remove_suffix(1);
            if (!tok.empty()) named.push_back(tok);
            if (comma == std::string_view::npos) break;
            s.remove_prefix(comma + 1);
        }
    }
    Headers out;
    out.reserve(in.size());
    for (const auto& [k, v] : in) {
        auto same = [&k = k](std::string_view d) { return same_header_name(k, d); };
        if (std::any_of(std::begin(drop), std::end(drop), same) || std::any_of(named.begin(), named.end(), same))
            continue;
        out.emplace_back(k, v);
    }
    return out;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            int h = hexval(s[i + 1]);
            int l = hexval(s[i + 2]);
            if (h >= 0 && l >= 0) {
                out.push_back(static_cast<char>(h * 16 + l));
                i += 2;
                continue;
            }
        }
        out.push_back(s[i]);
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view q, bool form) {
    std::vector<std::pair<std::string, std::string>> out;
    while (!q.empty()) {
        auto amp = q.find('&');
        auto part = q.substr(0, amp);
        if (!part.empty()) {
            auto eq = part.find('=');
            std::string k(part.substr(0, eq));
            std::string v(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1));
            if (form) {
                std::replace(k.begin(), k.end(), '+', ' ');
                std::replace(v.begin(), v.end(), '+', ' ');
            }
            out.emplace_back(percent_decode(k), percent_decode(v));
        }
        if (amp == std::string_view::npos) break;
        q.remove_prefix(amp + 1);
    }
    return out;
}

bool valid_utf8(std::string_view s) {
    static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        char32_t cp = n == 1 ? c : c & (0x7F >> n);
        for (std::size_t k = 1; k < n; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc >> 6) != 2) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n;
    }
    return true;
}

bool storable_text(std::string_view s) { return s.find('\0') == std::string_view::npos && valid_utf8(s); }

}  // namespace outboxd::ingress
