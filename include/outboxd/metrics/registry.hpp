// A small Prometheus registry: counter, gauge and histogram families with labels, exposed in text
// format 0.0.4. The hot path (inc/observe on a series reference) is a few relaxed atomics; the
// map lookup of a label set happens once per caller and is cached by it where it is hot.
#pragma once
#include <algorithm>
#include <atomic>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace outboxd::metrics {

class Counter {
public:
    void inc(double v = 1.0) { value_.fetch_add(v, std::memory_order_relaxed); }
    double value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> value_{0.0};
};

class Gauge {
public:
    void set(double v) { value_.store(v, std::memory_order_relaxed); }
    void add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
    double value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> value_{0.0};
};

class Histogram {
public:
    explicit Histogram(const std::vector<double>& bounds);
    void observe(double v);
    const std::vector<double>& bounds() const { return bounds_; }
    // Non-cumulative count of bucket i (i == bounds().size() is +Inf).
    std::uint64_t bucket(std::size_t i) const { return counts_[i].load(std::memory_order_relaxed); }
    std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
    double sum() const { return sum_.load(std::memory_order_relaxed); }

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
    std::atomic<std::uint64_t> count_{0};
    std::atomic<double> sum_{0.0};
};

enum class Kind { counter, gauge, histogram };

template <class T>
class Family;

class Registry {
public:
    Family<Counter>& counter(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
    Family<Gauge>& gauge(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
    Family<Histogram>& histogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                                 std::vector<double> bounds);
    // Text exposition format 0.0.4.
    std::string expose() const;

    struct FamilyBase {
        virtual ~FamilyBase() = default;
        virtual void write(std::string& out) const = 0;
    };

private:
    mutable std::mutex mu_;
    std::vector<std::unique_ptr<FamilyBase>> families_;
};

std::string escape_label_value(const std::string& v);
std::string format_value(double v);

template <class T>
class Family : public Registry::FamilyBase {
public:
    Family(std::string name, std::string help, std::vector<std::string> labels, Kind kind,
           std::vector<double> bounds = {})
        : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)), kind_(kind), bounds_(std::move(bounds)) {}

    // The series for these label values (in the family's label order); created on first use,
    // and its address never changes afterwards.
    // Finding an existing series allocates nothing (the delivery path calls this per request).
    T& with(std::initializer_list<std::string_view> values) {
        std::lock_guard lk(mu_);
        auto it = series_.find(values);
        if (it == series_.end()) {
            std::unique_ptr<T> s;
            if constexpr (std::is_same_v<T, Histogram>) s = std::make_unique<T>(bounds_);
            else s = std::make_unique<T>();
            it = series_.emplace(std::vector<std::string>(values.begin(), values.end()), std::move(s)).first;
        }
        return *it->second;
    }
    T& get() { return with({}); }
    void write(std::string& out) const override;

private:
    std::string labelset(const std::vector<std::string>& values, const std::string& extra = {}) const;
    std::string name_, help_;
    std::vector<std::string> labels_;
    Kind kind_;
    std::vector<double> bounds_;
    mutable std::mutex mu_;
    // Ordered by label values; transparent, so a list of string_views finds a series directly.
    struct LabelsLess {
        using is_transparent = void;
        template <class A, class B>
        bool operator()(const A& a, const B& b) const {
            return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
                return std::string_view(x) < std::string_view(y);
            });
        }
    };
    std::map<std::vector<std::string>, std::unique_ptr<T>, LabelsLess> series_;
};

// Buckets for durations in seconds: 1 ms .. 60 s.
std::vector<double> latency_buckets();

}  // namespace outboxd::metrics
