// At most one log line per key and interval; the lines held back are counted and reported with
// the next one (`suppressed=N`). For events that can come thousands of times a second (refused
// requests, retries of a failing region): the first of a kind is seen at once, and the journal
// (journald rate-limits a unit as a whole) keeps the lines that matter.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace outboxd {

class LogThrottle {
public:
    explicit LogThrottle(std::chrono::milliseconds interval = std::chrono::seconds(1), std::size_t max_keys = 10000)
        : interval_(interval), max_keys_(max_keys) {}

    // The number of lines held back since the last one for `key` when a line may be written now;
    // nullopt when it is to be held back (and counted).
    std::optional<std::uint64_t> admit(std::string_view key,
                                       std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

private:
    struct Slot {
        std::chrono::steady_clock::time_point last{};
        std::uint64_t held = 0;
    };
    std::chrono::milliseconds interval_;
    std::size_t max_keys_;
    std::mutex mu_;
    std::map<std::string, Slot, std::less<>> slots_;
};

}  // namespace outboxd
