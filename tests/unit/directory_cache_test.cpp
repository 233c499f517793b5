// The lookup cache's freshness rules, without a database: nothing is served or stored until the
// listener says it is listening, an invalidation drops everything, a lookup that raced with an
// invalidation is not stored, entries expire, and negative answers are cached too.
#include "outboxd/ingress/directory_cache.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace outboxd::ingress;
using namespace std::chrono_literals;

namespace {
Integration integration(std::int64_t id, const std::string& status = "active") {
    Integration i;
    i.id = id;
    i.provider = "github";
    i.external_id = std::to_string(id * 10);
    i.status = status;
    return i;
}

// A database stand-in that counts lookups.
struct CountingDirectory : Directory {
    int calls = 0;
    std::optional<Integration> answer = integration(1);
    std::optional<Integration> integration_by_external_id(const std::string&, const std::string&) override {
        ++calls;
        return answer;
    }
    std::optional<Integration> integration_by_id(std::int64_t) override {
        ++calls;
        return answer;
    }
    std::optional<std::string> organization_region(std::int64_t) override {
        ++calls;
        return "eu";
    }
};
}  // namespace

TEST(DirectoryCache, ServesNothingUntilItsListenerIsListening) {
    DirectoryCache cache(30s);
    cache.store_integration(cache.generation(), "github", "10", integration(1));
    EXPECT_FALSE(cache.integration_by_external_id("github", "10")) << "stores before LISTEN are dropped";
    cache.invalidate(true);
    cache.store_integration(cache.generation(), "github", "10", integration(1));
    ASSERT_TRUE(cache.integration_by_external_id("github", "10"));
    EXPECT_EQ((*cache.integration_by_external_id("github", "10"))->id, 1);
    cache.invalidate(false);  // the listening session went away
    EXPECT_FALSE(cache.enabled());
    EXPECT_FALSE(cache.integration_by_external_id("github", "10"));
}

TEST(DirectoryCache, InvalidationDropsEveryKindOfEntry) {
    DirectoryCache cache(30s);
    cache.invalidate(true);
    auto g = cache.generation();
    cache.store_integration(g, "github", "10", integration(1));
    cache.store_integration(g, 1, integration(1));
    cache.store_organization_region(g, 5, std::string("us"));
    cache.store_active_regions(g, 1, {"eu", "us"});
    ASSERT_TRUE(cache.integration_by_id(1));
    ASSERT_TRUE(cache.organization_region(5));
    ASSERT_EQ(*cache.active_regions(1), (std::vector<std::string>{"eu", "us"}));
    cache.invalidate(true);
    EXPECT_FALSE(cache.integration_by_external_id("github", "10"));
    EXPECT_FALSE(cache.integration_by_id(1));
    EXPECT_FALSE(cache.organization_region(5));
    EXPECT_FALSE(cache.active_regions(1));
}

TEST(DirectoryCache, ALookupThatRacedWithAChangeIsNotStored) {
    DirectoryCache cache(30s);
    cache.invalidate(true);
    auto before = cache.generation();  // read before the database lookup
    cache.invalidate(true);            // a change committed while the lookup ran
    cache.store_active_regions(before, 1, {"us"});
    EXPECT_FALSE(cache.active_regions(1)) << "the stale answer must not outlive the invalidation";
}

TEST(DirectoryCache, EntriesExpire) {
    DirectoryCache cache(50ms);
    cache.invalidate(true);
    cache.store_active_regions(cache.generation(), 1, {"us"});
    ASSERT_TRUE(cache.active_regions(1));
    std::this_thread::sleep_for(80ms);  // the entry's own clock is what is under test
    EXPECT_FALSE(cache.active_regions(1));
}

// Anyone can send made-up installation or team ids, and "no such integration" is cached too:
// the cache stays bounded whatever comes, and keeps serving.
TEST(DirectoryCache, MadeUpKeysDoNotGrowItWithoutBound) {
    DirectoryCache cache(1h);
    cache.invalidate(true);
    const auto n = DirectoryCache::kMaxEntriesPerMap * 3;
    for (std::size_t i = 0; i < n; ++i)
        cache.store_integration(cache.generation(), "github", "unknown-" + std::to_string(i), std::nullopt);
    EXPECT_LE(cache.size(), DirectoryCache::kMaxEntriesPerMap);
    EXPECT_GT(cache.size(), 0u);
    ASSERT_TRUE(cache.integration_by_external_id("github", "unknown-" + std::to_string(n - 1)))
        << "the newest answer is served";
    cache.store_integration(cache.generation(), "github", "10", integration(1));
    ASSERT_TRUE(cache.integration_by_external_id("github", "10"));
}

TEST(DirectoryCache, ZeroTtlTurnsItOff) {
    DirectoryCache cache(0ms);
    cache.invalidate(true);
    EXPECT_FALSE(cache.enabled());
    cache.store_active_regions(cache.generation(), 1, {"us"});
    EXPECT_FALSE(cache.active_regions(1));
}

TEST(DirectoryCache, CachingDirectoryReadsTheDatabaseAndFillsTheCacheWithNegativeAnswersToo) {
    DirectoryCache cache(30s);
    cache.invalidate(true);
    CountingDirectory db;
    db.answer = std::nullopt;  // unknown installation
    CachingDirectory caching(db, cache);
    EXPECT_FALSE(caching.integration_by_external_id("github", "99"));
    EXPECT_FALSE(caching.integration_by_external_id("github", "99"));
    EXPECT_EQ(db.calls, 2) << "the slow path always asks the database (it re-checks refusals)";
    EXPECT_EQ(caching.organization_region(5), "eu");
    EXPECT_EQ(db.calls, 3);

    CachedOnlyDirectory only(cache);
    EXPECT_FALSE(only.consulted());
    EXPECT_FALSE(only.integration_by_external_id("github", "99")) << "a cached 'no such integration'";
    EXPECT_TRUE(only.consulted());
    EXPECT_EQ(only.organization_region(5), "eu");
    EXPECT_THROW(only.integration_by_id(7), CacheMiss);
    cache.invalidate(true);
    EXPECT_THROW(only.organization_region(5), CacheMiss);
}

// Entries stored together must not expire together: in the end-to-end bench the 1,000
// installations' entries, filled within a second, all missed within the same second 30 s later
// (2,000 lookups at once through the ingress's pool), and so would every entry after a restart
// or an invalidation. Lives are spread over [ttl/2, ttl].
TEST(DirectoryCache, EntriesStoredTogetherExpireSpreadOutWithinTheTtl) {
    constexpr int n = 1000;
    DirectoryCache cache(600ms);
    cache.invalidate(true);
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) cache.store_active_regions(cache.generation(), i, {"us"});
    auto cached = [&] {
        int hits = 0;
        for (int i = 0; i < n; ++i) hits += cache.active_regions(i).has_value();
        return hits;
    };
    // The entries' own clock is what is under test, so the test sleeps to points in it.
    std::this_thread::sleep_until(start + 200ms);
    ASSERT_LT(std::chrono::steady_clock::now() - start, 300ms) << "the machine is too slow for this check";
    EXPECT_EQ(cached(), n) << "no entry lives less than half the ttl";
    std::this_thread::sleep_until(start + 450ms);
    int middle = cached();
    EXPECT_GT(middle, n / 10) << "some entries live longer than 450 ms";
    EXPECT_LT(middle, n - n / 10) << "some entries expired before 450 ms";
    std::this_thread::sleep_until(start + 610ms);
    EXPECT_EQ(cached(), 0) << "no entry outlives the ttl";
}
