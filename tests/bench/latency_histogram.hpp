// Lock-free latency histogram shared by the bench load generator and receiver: log-linear buckets
// (64 sub-buckets per power of two, so quantiles are exact to ~1.6 %) over microseconds, with
// relaxed atomic counters so every I/O thread can record without a lock.
#pragma once
#include <atomic>
#include <bit>
#include <cstdint>
#include <string>

namespace bench {

class Histogram {
public:
    static constexpr int kSubBits = 6;                       // 64 sub-buckets per octave
    static constexpr int kOctaves = 40;                      // up to 2^40 us (~12 days)
    static constexpr int kBuckets = (kOctaves + 1) << kSubBits;

    void record(std::uint64_t us) {
        counts_[index(us)].fetch_add(1, std::memory_order_relaxed);
        total_.fetch_add(1, std::memory_order_relaxed);
        std::uint64_t m = max_.load(std::memory_order_relaxed);
        while (us > m && !max_.compare_exchange_weak(m, us, std::memory_order_relaxed)) {
        }
    }
    void reset() {
        for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
        total_.store(0);
        max_.store(0);
    }
    std::uint64_t count() const { return total_.load(std::memory_order_relaxed); }
    std::uint64_t max() const { return max_.load(std::memory_order_relaxed); }

    // Value (us) at quantile q in [0, 1]: the upper edge of the bucket holding that rank.
    double quantile(double q) const {
        std::uint64_t n = count();
        if (n == 0) return 0;
        auto rank = static_cast<std::uint64_t>(q * static_cast<double>(n - 1)) + 1;
        std::uint64_t seen = 0;
        for (int i = 0; i < kBuckets; ++i) {
            seen += counts_[i].load(std::memory_order_relaxed);
            if (seen >= rank) return static_cast<double>(std::min<std::uint64_t>(upper(i), max()));
        }
        return static_cast<double>(max());
    }

    // "p50_ms=… p90_ms=… p99_ms=… p999_ms=… max_ms=…" (prefix added to each key).
    std::string summary(const std::string& prefix) const {
        auto ms = [](double us) { return std::to_string(us / 1000.0); };
        return prefix + "count=" + std::to_string(count()) + " " + prefix + "p50_ms=" + ms(quantile(0.50)) + " " +
               prefix + "p90_ms=" + ms(quantile(0.90)) + " " + prefix + "p99_ms=" + ms(quantile(0.99)) + " " +
               prefix + "p999_ms=" + ms(quantile(0.999)) + " " + prefix + "max_ms=" + ms(static_cast<double>(max()));
    }

private:
    static int index(std::uint64_t v) {
        if (v < (1u << kSubBits)) return static_cast<int>(v);
        int octave = 63 - std::countl_zero(v) - kSubBits + 1;  // >= 1
        if (octave > kOctaves) return kBuckets - 1;
        auto sub = static_cast<int>((v >> (octave - 1)) & ((1u << kSubBits) - 1));
        return (octave << kSubBits) + sub;
    }
    static std::uint64_t upper(int i) {
        int octave = i >> kSubBits, sub = i & ((1 << kSubBits) - 1);
        if (octave == 0) return static_cast<std::uint64_t>(sub);
        return ((static_cast<std::uint64_t>(sub) + (1u << kSubBits) + 1) << (octave - 1)) - 1;
    }

    std::atomic<std::uint64_t> counts_[kBuckets]{};
    std::atomic<std::uint64_t> total_{0};
    std::atomic<std::uint64_t> max_{0};
};

}  // namespace bench
