// Field-value helpers shared by the bench's hand-written HTTP/1.1 reader sides (loadgen reads
// answers, the receiver reads requests): enough of RFC 9110's list syntax to find framing.
#pragma once
#include <string_view>

namespace bench_http {

// ASCII case-insensitive equality against a name already in lower case.
inline bool iequals(std::string_view a, std::string_view lower) {
    if (a.size() != lower.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != lower[i]) return false;
    }
    return true;
}

// Without the optional whitespace around a field value or list element.
inline std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Whether a comma-separated list (a Connection value) holds `token`, case-insensitively.
inline bool has_token(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        auto comma = list.find(',');
        if (iequals(trim(list.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

// The last element of a comma-separated list (a Transfer-Encoding value is chunked when it ends so).
inline std::string_view last_token(std::string_view list) {
    auto comma = list.rfind(',');
    return trim(comma == std::string_view::npos ? list : list.substr(comma + 1));
}

}  // namespace bench_http
