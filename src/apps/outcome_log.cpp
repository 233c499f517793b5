// The outcome → JSON step of the app request log, and the UTF-8 cleaning it needs.
#include "outboxd/apps/outcome_log.hpp"

#include <boost/json.hpp>

namespace outboxd::apps {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length of the valid UTF-8 sequence at s[i], 0 when invalid, -1 when it is valid so far but the
// input ends inside it.
int sequence_length(std::string_view s, std::size_t i) {
    auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = b(i);
    if (c < 0x80) return 1;
    int n;
    unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte (no overlongs or surrogates)
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    for (int k = 1; k < n; ++k) {
        if (i + k >= s.size()) return -1;
        unsigned char x = b(i + k);
        unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (x < l || x > h) return 0;
    }
    return n;
}

}  // namespace

std::string clean_text(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    std::size_t i = 0;
    while (i < in.size()) {
        int n = sequence_length(in, i);
        if (n == -1) break;  // cut inside the last character
        if (n == 0) {
            out += kReplacement;
            ++i;
            continue;
        }
        if (!(n == 1 && in[i] == '\0')) out.append(in.substr(i, static_cast<std::size_t>(n)));
        i += static_cast<std::size_t>(n);
    }
    return out;
}

std::optional<std::string> app_outcomes_json(const std::vector<drain::Outcome>& batch) {
    boost::json::array rows;
    for (const auto& o : batch) {
        if (o.category != "app_webhook") continue;
        const char* kind = nullptr;
        switch (o.kind) {
            case drain::Outcome::Kind::delivered: kind = "delivered"; break;
            case drain::Outcome::Kind::retry: kind = "retry"; break;
            case drain::Outcome::Kind::dead: kind = "dead"; break;
            case drain::Outcome::Kind::release: break;
        }
        if (!kind) continue;
        rows.push_back(boost::json::object{{"id", o.id},
                                           {"mailbox", clean_text(o.mailbox)},
                                           {"kind", kind},
                                           {"status", o.status},
                                           {"url", clean_text(o.url)},
                                           {"error", clean_text(o.error)},
                                           {"request_head", clean_text(o.request_head)},
                                           {"response_head", clean_text(o.response_head)}});
    }
    if (rows.empty()) return std::nullopt;
    return boost::json::serialize(rows);
}

}  // namespace outboxd::apps
