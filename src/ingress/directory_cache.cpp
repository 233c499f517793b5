// See directory_cache.hpp for the freshness rules.
#include "outboxd/ingress/directory_cache.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace outboxd::ingress {

template <class K, class V>
std::optional<V> DirectoryCache::find(const std::map<K, Entry<V>>& m, const K& k) const {
    if (!enabled()) return std::nullopt;
    std::lock_guard lk(mu_);
    auto it = m.find(k);
    if (it == m.end() || it->second.expires <= Clock::now()) return std::nullopt;
    return it->second.value;
}

template <class K, class V>
void DirectoryCache::store(std::map<K, Entry<V>>& m, std::uint64_t gen, const K& k, const V& v) {
    if (!enabled()) return;
    std::lock_guard lk(mu_);
    // Checked under the lock that invalidate() takes after bumping the generation: a store either
    // lands before the clear (and is cleared) or sees the new generation (and is dropped).
    if (gen != generation_.load()) return;
    // Lookups of keys that do not exist are cached too, and anyone can send those: without a bound
    // the maps would grow with every made-up installation id until the next directory change.
    if (m.size() >= kMaxEntriesPerMap && !m.contains(k)) {
        auto now = Clock::now();
        std::erase_if(m, [now](const auto& kv) { return kv.second.expires <= now; });
        if (m.size() >= kMaxEntriesPerMap) m.clear();  // every entry fresh: start over, they come back as used
    }
    std::uniform_int_distribution<std::chrono::milliseconds::rep> shorten(0, ttl_.count() / 2);
    auto life = ttl_ - std::chrono::milliseconds(shorten(rng_));
    m.insert_or_assign(k, Entry<V>{v, Clock::now() + life});
}

std::optional<std::optional<Integration>> DirectoryCache::integration_by_external_id(
    const std::string& provider, const std::string& external_id) const {
    return find(by_external_id_, std::pair{provider, external_id});
}

std::optional<std::optional<Integration>> DirectoryCache::integration_by_id(std::int64_t id) const {
    return find(by_id_, id);
}

std::optional<std::optional<std::string>> DirectoryCache::organization_region(std::int64_t organization_id) const {
    return find(org_region_, organization_id);
}

std::optional<std::vector<std::string>> DirectoryCache::active_regions(std::int64_t integration_id) const {
    return find(active_regions_, integration_id);
}

void DirectoryCache::store_integration(std::uint64_t gen, const std::string& provider, const std::string& external_id,
                                       const std::optional<Integration>& value) {
    store(by_external_id_, gen, std::pair{provider, external_id}, value);
}

void DirectoryCache::store_integration(std::uint64_t gen, std::int64_t id, const std::optional<Integration>& value) {
    store(by_id_, gen, id, value);
}

void DirectoryCache::store_organization_region(std::uint64_t gen, std::int64_t organization_id,
                                               const std::optional<std::string>& value) {
    store(org_region_, gen, organization_id, value);
}

void DirectoryCache::store_active_regions(std::uint64_t gen, std::int64_t integration_id,
                                          const std::vector<std::string>& value) {
    store(active_regions_, gen, integration_id, value);
}

std::size_t DirectoryCache::size() const {
    std::lock_guard lk(mu_);
    return by_external_id_.size() + by_id_.size() + org_region_.size() + active_regions_.size();
}

void DirectoryCache::invalidate(bool usable) {
    ++generation_;
    std::lock_guard lk(mu_);
    by_external_id_.clear();
    by_id_.clear();
    org_region_.clear();
    active_regions_.clear();
    usable_ = usable;
}

// --------------------------------------------------------------------------------------------

std::optional<Integration> CachedOnlyDirectory::integration_by_external_id(const std::string& provider,
                                                                         const std::string& external_id) {
    consulted_ = true;
    if (auto hit = cache_.integration_by_external_id(provider, external_id)) return *hit;
    throw CacheMiss{};
}

std::optional<Integration> CachedOnlyDirectory::integration_by_id(std::int64_t id) {
    consulted_ = true;
    if (auto hit = cache_.integration_by_id(id)) return *hit;
    throw CacheMiss{};
}

std::optional<std::string> CachedOnlyDirectory::organization_region(std::int64_t organization_id) {
    consulted_ = true;
    if (auto hit = cache_.organization_region(organization_id)) return *hit;
    throw CacheMiss{};
}

std::optional<Integration> CachingDirectory::integration_by_external_id(const std::string& provider,
                                                                      const std::string& external_id) {
    auto gen = cache_.generation();
    auto v = db_.integration_by_external_id(provider, external_id);
    cache_.store_integration(gen, provider, external_id, v);
    return v;
}

std::optional<Integration> CachingDirectory::integration_by_id(std::int64_t id) {
    auto gen = cache_.generation();
    auto v = db_.integration_by_id(id);
    cache_.store_integration(gen, id, v);
    return v;
}

std::optional<std::string> CachingDirectory::organization_region(std::int64_t organization_id) {
    auto gen = cache_.generation();
    auto v = db_.organization_region(organization_id);
    cache_.store_organization_region(gen, organization_id, v);
    return v;
}

// --------------------------------------------------------------------------------------------

DirectoryListener::DirectoryListener(std::string conninfo, DirectoryCache& cache, metrics::Counter* invalidations)
    : conninfo_(std::move(conninfo)), cache_(cache), invalidations_(invalidations) {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    thread_ = std::thread([this] { run(); });
}

DirectoryListener::~DirectoryListener() {
    stop();
    if (wake_fd_ >= 0) close(wake_fd_);
}

void DirectoryListener::stop() {
    if (!thread_.joinable()) return;
    stopping_ = true;
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
    thread_.join();
}

void DirectoryListener::run() {
    std::optional<db::Connection> conn;
    auto backoff = std::chrono::milliseconds(100);
    bool down = false;
    while (!stopping_) {
        try {
            if (!conn || !conn->ok()) {
                conn.emplace(conninfo_, "outboxd-directory");
                conn->exec("LISTEN outboxd_directory");
                // Listening now: whatever changed before is dropped, whatever changes next is heard.
                cache_.invalidate(true);
                if (invalidations_) invalidations_->inc();
                if (down) spdlog::info("ingress: directory cache on again (listening for changes)");
                down = false;
                backoff = std::chrono::milliseconds(100);
            }
            pollfd fds[2] = {{conn->socket(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
            if (::poll(fds, 2, 1000) > 0 && (fds[0].revents & (POLLIN | POLLERR | POLLHUP))) {
                if (!conn->notifications().empty()) {
                    cache_.invalidate(true);
                    if (invalidations_) invalidations_->inc();
                }
            }
        } catch (const std::exception& e) {
            cache_.invalidate(false);
            if (!down)
                spdlog::warn("ingress: directory cache off while its listening session is down error=\"{}\"", e.what());
            down = true;
            conn.reset();
            pollfd wake{wake_fd_, POLLIN, 0};
            ::poll(&wake, 1, static_cast<int>(backoff.count()));
            backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        }
    }
}

}  // namespace outboxd::ingress
