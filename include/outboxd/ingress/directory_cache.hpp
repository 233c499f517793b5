// In-memory cache of the lookups every webhook makes (integration by external id or id, an
// organization's region, an integration's active regions), so a webhook of a known integration
// needs no database round trip before its commit.
//
// Freshness: sql/007_directory_notify.sql NOTIFYs outboxd_directory on any change to the tables
// behind these lookups; DirectoryListener drops the whole cache when one arrives, and keeps the
// cache switched off while its session is down (notices could be missed then). Every entry also
// expires after `ttl` at most: its life is drawn from [ttl/2, ttl], so that entries filled together
// (a start, an invalidation, a burst of new installations) do not all miss together and send every
// webhook of that moment to the database at once. A lookup that raced with a change is not
// stored: entries carry the generation they were read in, and an invalidation bumps the
// generation first.
#pragma once
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "outboxd/db/connection.hpp"
#include "outboxd/ingress/parser.hpp"
#include "outboxd/metrics/registry.hpp"

namespace outboxd::ingress {

class DirectoryCache {
public:
    using Clock = std::chrono::steady_clock;
    explicit DirectoryCache(std::chrono::milliseconds ttl) : ttl_(ttl) {}

    // Found (possibly a cached "no such row") or nullopt when not cached.
    std::optional<std::optional<Integration>> integration_by_external_id(const std::string& provider,
                                                                         const std::string& external_id) const;
    std::optional<std::optional<Integration>> integration_by_id(std::int64_t id) const;
    std::optional<std::optional<std::string>> organization_region(std::int64_t organization_id) const;
    std::optional<std::vector<std::string>> active_regions(std::int64_t integration_id) const;

    // Read a generation before the database lookup and store with it: a store whose generation
    // is no longer current is dropped (the database changed in between).
    std::uint64_t generation() const { return generation_.load(); }
    void store_integration(std::uint64_t gen, const std::string& provider, const std::string& external_id,
                           const std::optional<Integration>& value);
    void store_integration(std::uint64_t gen, std::int64_t id, const std::optional<Integration>& value);
    void store_organization_region(std::uint64_t gen, std::int64_t organization_id,
                                   const std::optional<std::string>& value);
    void store_active_regions(std::uint64_t gen, std::int64_t integration_id, const std::vector<std::string>& value);

    // Drops everything; `usable` false keeps the cache empty and refusing stores until true again.
    void invalidate(bool usable = true);
    bool enabled() const { return ttl_.count() > 0 && usable_.load(); }

    // Entries per lookup kind; reaching it drops the expired ones, or all when none has expired.
    static constexpr std::size_t kMaxEntriesPerMap = 50'000;
    std::size_t size() const;

private:
    template <class V>
    struct Entry {
        V value;
        Clock::time_point expires;
    };
    template <class K, class V>
    std::optional<V> find(const std::map<K, Entry<V>>& m, const K& k) const;
    template <class K, class V>
    void store(std::map<K, Entry<V>>& m, std::uint64_t gen, const K& k, const V& v);

    std::chrono::milliseconds ttl_;
    std::atomic<std::uint64_t> generation_{1};
    std::atomic<bool> usable_{false};
    mutable std::mutex mu_;
    std::minstd_rand rng_{std::random_device{}()};  // entry lives, under mu_
    std::map<std::pair<std::string, std::string>, Entry<std::optional<Integration>>> by_external_id_;
    std::map<std::int64_t, Entry<std::optional<Integration>>> by_id_;
    std::map<std::int64_t, Entry<std::optional<std::string>>> org_region_;
    std::map<std::int64_t, Entry<std::vector<std::string>>> active_regions_;
};

// Keeps one session LISTENing on outboxd_directory and invalidates `cache` on every notice, on
// connect (whatever changed while it was away) and while disconnected.
class DirectoryListener {
public:
    DirectoryListener(std::string conninfo, DirectoryCache& cache, metrics::Counter* invalidations = nullptr);
    ~DirectoryListener();
    void stop();

private:
    void run();
    std::string conninfo_;
    DirectoryCache& cache_;
    metrics::Counter* invalidations_;
    std::atomic<bool> stopping_{false};
    int wake_fd_ = -1;
    std::thread thread_;
};

// A Directory that answers from the cache only, and throws CacheMiss for anything not cached:
// the ingress then takes the slow path (database lookups on the blocking pool). It remembers
// whether it was consulted, so a refusal that rests on cached data can be checked again.
struct CacheMiss {};
class CachedOnlyDirectory : public Directory {
public:
    explicit CachedOnlyDirectory(const DirectoryCache& cache) : cache_(cache) {}
    bool consulted() const { return consulted_; }
    std::optional<Integration> integration_by_external_id(const std::string& provider,
                                                          const std::string& external_id) override;
    std::optional<Integration> integration_by_id(std::int64_t id) override;
    std::optional<std::string> organization_region(std::int64_t organization_id) override;

private:
    const DirectoryCache& cache_;
    bool consulted_ = false;
};

// A Directory over a database session that always reads the database and fills the cache with
// what it read (the slow path, which also re-checks refusals the cache would have given).
class CachingDirectory : public Directory {
public:
    CachingDirectory(Directory& db, DirectoryCache& cache) : db_(db), cache_(cache) {}
    std::optional<Integration> integration_by_external_id(const std::string& provider,
                                                          const std::string& external_id) override;
    std::optional<Integration> integration_by_id(std::int64_t id) override;
    std::optional<std::string> organization_region(std::int64_t organization_id) override;

private:
    Directory& db_;
    DirectoryCache& cache_;
};

}  // namespace outboxd::ingress
