// Prometheus text exposition of our own registry (prometheus-cpp is not packaged in Debian 12).
#include "outboxd/metrics/registry.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace outboxd::metrics {

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), counts_(new std::atomic<std::uint64_t>[bounds.size() + 1]) {
    for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::observe(double v) {
    std::size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
}

std::string escape_label_value(const std::string& v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string format_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
    // The shortest text that reads back as the same double: le="0.1", not "0.10000000000000001",
    // which a query for {le="0.1"} would not match.
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

template <class T>
std::string Family<T>::labelset(const std::vector<std::string>& values, const std::string& extra) const {
    std::string s;
    for (std::size_t i = 0; i < labels_.size() && i < values.size(); ++i) {
        if (!s.empty()) s += ',';
        s += labels_[i] + "=\"" + escape_label_value(values[i]) + "\"";
    }
    if (!extra.empty()) {
        if (!s.empty()) s += ',';
        s += extra;
    }
    return s.empty() ? s : "{" + s + "}";
}

template <class T>
void Family<T>::write(std::string& out) const {
    const char* type = kind_ == Kind::counter ? "counter" : kind_ == Kind::gauge ? "gauge" : "histogram";
    out += "# HELP " + name_ + " " + help_ + "\n";
    out += "# TYPE " + name_ + " " + type + "\n";
    std::lock_guard lk(mu_);
    for (const auto& [values, s] : series_) {
        if constexpr (std::is_same_v<T, Histogram>) {
            std::uint64_t cum = 0;
            for (std::size_t i = 0; i <= s->bounds().size(); ++i) {
                cum += s->bucket(i);
                std::string le = i < s->bounds().size() ? format_value(s->bounds()[i]) : "+Inf";
                out += name_ + "_bucket" + labelset(values, "le=\"" + le + "\"") + " " + std::to_string(cum) + "\n";
            }
            out += name_ + "_sum" + labelset(values) + " " + format_value(s->sum()) + "\n";
            out += name_ + "_count" + labelset(values) + " " + std::to_string(s->count()) + "\n";
        } else {
            out += name_ + labelset(values) + " " + format_value(s->value()) + "\n";
        }
    }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Family<Counter>& Registry::counter(const std::string& name, const std::string& help, std::vector<std::string> labels) {
    std::lock_guard lk(mu_);
    auto f = std::make_unique<Family<Counter>>(name, help, std::move(labels), Kind::counter);
    auto& ref = *f;
    families_.push_back(std::move(f));
    return ref;
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help, std::vector<std::string> labels) {
    std::lock_guard lk(mu_);
    auto f = std::make_unique<Family<Gauge>>(name, help, std::move(labels), Kind::gauge);
    auto& ref = *f;
    families_.push_back(std::move(f));
    return ref;
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> labels, std::vector<double> bounds) {
    std::lock_guard lk(mu_);
    auto f = std::make_unique<Family<Histogram>>(name, help, std::move(labels), Kind::histogram, std::move(bounds));
    auto& ref = *f;
    families_.push_back(std::move(f));
    return ref;
}

std::string Registry::expose() const {
    std::string out;
    std::lock_guard lk(mu_);
    for (const auto& f : families_) f->write(out);
    return out;
}

std::vector<double> latency_buckets() {
    return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

}  // namespace outboxd::metrics
