#include "outboxd/common/log_throttle.hpp"

namespace outboxd {

std::optional<std::uint64_t> LogThrottle::admit(std::string_view key, std::chrono::steady_clock::time_point now) {
    std::lock_guard lk(mu_);
    auto it = slots_.find(key);
    if (it == slots_.end()) {
        // Keys come from requests (provider labels are bounded, but be safe): start afresh
        // rather than grow without bound.
        if (slots_.size() >= max_keys_) slots_.clear();
        it = slots_.emplace(std::string(key), Slot{}).first;
    }
    auto& s = it->second;
    if (s.last != std::chrono::steady_clock::time_point{} && now - s.last < interval_) {
        ++s.held;
        return std::nullopt;
    }
    s.last = now;
    auto held = s.held;
    s.held = 0;
    return held;
}

}  // namespace outboxd
