// Per-region circuit breaker: after N consecutive region failures the region is not claimed for
// an open period (doubling up to a cap while probes fail), so a dead region costs a few requests
// a minute instead of one per row.
#pragma once
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace outboxd::drain {

class CircuitBreakers {
public:
    using clock = std::chrono::steady_clock;
    struct Options {
        int failures_to_open = 10;
        std::chrono::milliseconds first_open{2000};
        std::chrono::milliseconds max_open{60000};
    };
    explicit CircuitBreakers(Options o) : opts_(o) {}

    // May a delivery to `region` start now? In half-open state only one probe is let through.
    bool admit(const std::string& region, clock::time_point now);
    // What an outcome did to the region's circuit, for the log: operators grep a region's lines.
    enum class Change { none, opened, reopened, closed };
    Change record(const std::string& region, bool region_failure, clock::time_point now);
    // Regions the claimer must skip now (open, or half-open with its probe in flight).
    std::vector<std::string> blocked(clock::time_point now);
    // What outboxd_region_circuit_open reports: half-open (a probe may go or is out), or open
    // until `grace` after its open period. A breaker whose open period passed long ago has had
    // nothing to probe with: this daemon has no rows for the region (another daemon may have
    // delivered them all), so it holds nothing back and must not keep the alert firing.
    bool reported_open(const std::string& region, clock::time_point now, std::chrono::milliseconds grace);
    void set_options(Options o);

private:
    enum class State { closed, open, half_open };
    struct Breaker {
        State state = State::closed;
        int consecutive = 0;
        clock::time_point open_until{};
        std::chrono::milliseconds open_for{0};
        bool probe_in_flight = false;
    };
    Options opts_;
    std::mutex mu_;
    std::map<std::string, Breaker> breakers_;
};

}  // namespace outboxd::drain
