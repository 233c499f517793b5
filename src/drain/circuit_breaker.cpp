// Closed → open after consecutive failures → half-open after the open period (one probe) →
// closed on success, or open again for twice as long on failure.
#include "outboxd/drain/circuit_breaker.hpp"

#include <algorithm>

namespace outboxd::drain {

void CircuitBreakers::set_options(Options o) {
    std::lock_guard lk(mu_);
    opts_ = o;
}

bool CircuitBreakers::admit(const std::string& region, clock::time_point now) {
    std::lock_guard lk(mu_);
    auto& b = breakers_[region];
    switch (b.state) {
        case State::closed:
            return true;
        case State::open:
            if (now < b.open_until) return false;
            b.state = State::half_open;
            b.probe_in_flight = true;
            return true;
        case State::half_open:
            if (b.probe_in_flight) return false;
            b.probe_in_flight = true;
            return true;
    }
    return true;
}

CircuitBreakers::Change CircuitBreakers::record(const std::string& region, bool region_failure, clock::time_point now) {
    std::lock_guard lk(mu_);
    auto& b = breakers_[region];
    if (!region_failure) {
        bool was_closed = b.state == State::closed;
        b = Breaker{};
        return was_closed ? Change::none : Change::closed;
    }
    if (b.state == State::half_open) {
        b.open_for = std::min(b.open_for * 2, opts_.max_open);
        b.state = State::open;
        b.open_until = now + b.open_for;
        b.probe_in_flight = false;
        return Change::reopened;
    }
    if (b.state == State::open) return Change::none;  // a straggler that started before the circuit opened
    if (++b.consecutive >= opts_.failures_to_open) {
        b.state = State::open;
        b.open_for = opts_.first_open;
        b.open_until = now + b.open_for;
        return Change::opened;
    }
    return Change::none;
}

std::vector<std::string> CircuitBreakers::blocked(clock::time_point now) {
    std::lock_guard lk(mu_);
    std::vector<std::string> out;
    for (const auto& [name, b] : breakers_) {
        if ((b.state == State::open && now < b.open_until) || (b.state == State::half_open && b.probe_in_flight))
            out.push_back(name);
    }
    return out;
}

bool CircuitBreakers::reported_open(const std::string& region, clock::time_point now, std::chrono::milliseconds grace) {
    std::lock_guard lk(mu_);
    auto it = breakers_.find(region);
    if (it == breakers_.end()) return false;
    switch (it->second.state) {
        case State::closed:
            return false;
        case State::half_open:
            return true;
        case State::open:
            return now < it->second.open_until + grace;
    }
    return false;
}

}  // namespace outboxd::drain
