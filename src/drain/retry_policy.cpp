// Outcome classification and backoff, pure functions so they are tested as units.
#include "outboxd/drain/retry_policy.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>

namespace outboxd::drain {

std::optional<ms> parse_retry_after(const std::string& value, std::chrono::system_clock::time_point now) {
    std::string v = value;
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.erase(v.begin());
    if (v.empty()) return std::nullopt;
    if (std::all_of(v.begin(), v.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
        if (v.size() > 9) return ms(999999999LL * 1000);
        return ms(std::stoll(v) * 1000);
    }
    std::tm tm{};
    // IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT".
    if (!strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm)) return std::nullopt;
    auto when = std::chrono::system_clock::from_time_t(timegm(&tm));
    if (when <= now) return ms(0);
    return std::chrono::duration_cast<ms>(when - now);
}

Classification classify(const http::OutboundResult& r, std::chrono::system_clock::time_point now) {
    using http::FailureKind;
    if (r.status == 0) {
        if (r.failure == FailureKind::refused_address || r.failure == FailureKind::bad_url)
            return {Verdict::permanent, std::nullopt, false};
        return {Verdict::retry, std::nullopt, true};
    }
    if (r.status >= 200 && r.status < 300) return {Verdict::delivered, std::nullopt, false};
    std::optional<ms> after;
    if (r.retry_after && (r.status == 429 || r.status == 503)) after = parse_retry_after(*r.retry_after, now);
    if (r.status >= 500) return {Verdict::retry, after, true};
    if (r.status == 408 || r.status == 429) return {Verdict::retry, after, false};
    if (r.status >= 300 && r.status < 400) return {Verdict::retry, std::nullopt, true};
    if (r.status >= 400 && r.status < 500) return {Verdict::permanent, std::nullopt, false};
    return {Verdict::retry, std::nullopt, true};  // 1xx or nonsense: try again later
}

RetryPolicy RetryPolicy::from(const config::Config& cfg) {
    return RetryPolicy{cfg.retry.base_delay, cfg.retry.max_delay, cfg.retry.max_attempts, cfg.retry.max_age};
}

ms RetryPolicy::ceiling(int attempts) const {
    if (attempts < 1) attempts = 1;
    double d = static_cast<double>(base_delay.count());
    for (int i = 1; i < attempts && d < static_cast<double>(max_delay.count()); ++i) d *= 2;
    return ms(static_cast<std::int64_t>(std::min(d, static_cast<double>(max_delay.count()))));
}

ms RetryPolicy::backoff(int attempts, std::optional<ms> retry_after, std::mt19937_64& rng) const {
    auto top = ceiling(attempts).count();
    std::uniform_int_distribution<std::int64_t> dist(0, std::max<std::int64_t>(top, 0));
    ms d(dist(rng));
    if (retry_after && *retry_after > d) d = std::min(*retry_after, max_age);
    return d;
}

Next RetryPolicy::after_failure(int attempts, ms age) const {
    if (attempts >= max_attempts) return Next::dead_max_attempts;
    if (age >= max_age) return Next::dead_max_age;
    return Next::retry;
}

}  // namespace outboxd::drain
