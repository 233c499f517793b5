#include "outboxd/common/scratch_json.hpp"

#include <string>

namespace outboxd {
namespace {

int hex4(std::string_view s, std::size_t at) {
    if (at + 4 > s.size()) return -1;
    int v = 0;
    for (std::size_t i = at; i < at + 4; ++i) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

// The text with every \u escape of an unpaired surrogate replaced by \uFFFD (Boost 1.81 has no
// allow_invalid_utf16). Backslashes occur only inside strings in JSON, so no string state is kept;
// anything else malformed is left for the parser to refuse.
std::string replace_lone_surrogates(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        if (s[i] != '\\' || i + 1 >= s.size()) {
            out.push_back(s[i++]);
            continue;
        }
        if (s[i + 1] != 'u') {
            out.append(s.substr(i, 2));
            i += 2;
            continue;
        }
        int cp = hex4(s, i + 2);
        bool high = cp >= 0xD800 && cp <= 0xDBFF, low = cp >= 0xDC00 && cp <= 0xDFFF;
        if (high && i + 7 < s.size() && s[i + 6] == '\\' && s[i + 7] == 'u') {
            int next = hex4(s, i + 8);
            if (next >= 0xDC00 && next <= 0xDFFF) {  // a pair: keep both
                out.append(s.substr(i, 12));
                i += 12;
                continue;
            }
        }
        if (high || low) {
            out.append("\\uFFFD");
            i += 6;
        } else {
            out.append(s.substr(i, 2));
            i += 2;
        }
    }
    return out;
}

}  // namespace

boost::json::value ScratchJson::parse(std::string_view text, boost::system::error_code& ec) {
    boost::json::parse_options opts;
    opts.max_depth = 1000;
    auto v = boost::json::parse(text, ec, boost::json::storage_ptr(&arena_), opts);
    // A lone high surrogate before a quote is reported as a syntax error, not as a surrogate
    // error: retry whenever the text has any unpaired surrogate to replace.
    if (ec && text.find("\\u") != std::string_view::npos) {
        if (auto fixed = replace_lone_surrogates(text); fixed != text) {
            boost::system::error_code again;
            auto w = boost::json::parse(fixed, again, boost::json::storage_ptr(&arena_), opts);
            if (!again) {
                ec = {};
                return w;
            }
        }
    }
    return v;
}

}  // namespace outboxd
