// One delivery attempt: request construction (signatures, idempotency headers), the send, and the
// mapping of its result to an outcome through classify() and the retry policy.
#include "outboxd/drain/deliverer.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>

#include "outboxd/ingress/parser.hpp"

namespace outboxd::drain {

namespace asio = boost::asio;

std::optional<http::OutboundRequest> build_request(const ClaimedRow& row, const config::Config& cfg,
                                                   std::chrono::system_clock::time_point now) {
    http::OutboundRequest req;
    req.method = row.method;
    // The row outlives the send (deliver() awaits it): its headers and body are not copied.
    req.stored_headers = &row.headers;
    req.stored_body = &row.body;
    if (row.region) {
        const auto* region = cfg.region(*row.region);
        if (!region) return std::nullopt;
        req.url = region->url + row.path;
        req.timeout = cfg.drain.request_timeout;
        req.headers.emplace_back("X-Outbox-Id", std::to_string(row.id));
        req.headers.emplace_back("X-Outbox-Attempt", std::to_string(row.attempts + 1));
        req.headers.emplace_back("X-Outbox-Signature", "sha256=" + ingress::hmac_sha256_hex(region->secret, row.body));
        return req;
    }
    req.url = row.target_url.value_or("");
    if (row.category == "app_webhook") {
        req.timeout = cfg.apps.request_timeout;
        req.allow_private = cfg.apps.allow_private_urls;
        auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
        req.headers.emplace_back("Sentry-Hook-Timestamp", std::to_string(secs));
    } else {
        req.timeout = cfg.drain.request_timeout;
    }
    return req;
}

Outcome Deliverer::failed(const ClaimedRow& row, const RetryPolicy& policy, const http::OutboundResult& res,
                          const Classification& c) {
    Outcome o;
    o.id = row.id;
    o.region = row.region;
    o.mailbox = row.mailbox;
    o.category = row.category;
    o.attempts = row.attempts + 1;
    o.status = res.status;
    o.error = res.error.empty() ? ("HTTP " + std::to_string(res.status)) : res.error;
    o.timed_out = res.failure == http::FailureKind::timeout;
    o.region_failure = c.region_failure;
    o.response_head = res.body_head;
    if (c.verdict == Verdict::permanent) {
        o.kind = Outcome::Kind::dead;
        o.reason = res.status == 0 ? "refused_url" : "permanent_status";
        return o;
    }
    auto age = std::chrono::duration_cast<ms>(std::chrono::system_clock::now() - row.date_added);
    switch (policy.after_failure(o.attempts, age)) {
        case Next::dead_max_attempts:
            o.kind = Outcome::Kind::dead;
            o.reason = "max_attempts";
            return o;
        case Next::dead_max_age:
            o.kind = Outcome::Kind::dead;
            o.reason = "max_age";
            return o;
        case Next::retry:
            break;
    }
    o.kind = Outcome::Kind::retry;
    std::lock_guard lk(rng_mu_);
    o.delay = policy.backoff(o.attempts, c.retry_after, rng_);
    return o;
}

namespace {
// Runs a blocking sender on the pool (a plain coroutine: GCC 12 miscompiles capturing ones).
asio::awaitable<http::OutboundResult> run_blocking(Deliverer::BlockingSender* sender, const ClaimedRow* row) {
    co_return (*sender)(*row);
}
asio::awaitable<CurrentTarget> run_check(Deliverer::SendTimeCheck* check, const ClaimedRow* row) {
    co_return (*check)(*row);
}
}  // namespace

asio::awaitable<Outcome> Deliverer::deliver(const ClaimedRow& row, const RetryPolicy& policy,
                                           std::shared_ptr<const config::Config> cfg) {
    auto now = std::chrono::system_clock::now();
    std::string region_label = row.region.value_or("none");
    Outcome o;
    o.id = row.id;
    o.region = row.region;
    o.mailbox = row.mailbox;
    o.category = row.category;
    o.attempts = row.attempts;

    auto age = std::chrono::duration_cast<ms>(now - row.date_added);
    if (age >= policy.max_age) {
        o.kind = Outcome::Kind::dead;
        o.reason = "max_age";
        o.error = "older than retry.max_age before it could be delivered";
        co_return o;
    }

    http::OutboundResult res;
    std::string url;
    BlockingSender* custom = nullptr;
    for (auto& [cat, s] : senders_)
        if (cat == row.category) custom = &s;
    if (custom && pool_) {
        res = co_await asio::co_spawn(*pool_, run_blocking(custom, &row), asio::use_awaitable);
        url = row.target_url.value_or("");
    } else {
        SendTimeCheck* check = nullptr;
        for (auto& [cat, c] : checks_)
            if (cat == row.category) check = &c;
        CurrentTarget target;
        if (check && pool_) target = co_await asio::co_spawn(*pool_, run_check(check, &row), asio::use_awaitable);
        if (target.verdict == CurrentTarget::Verdict::drop) {
            o.kind = Outcome::Kind::dead;
            o.reason = target.reason;
            o.error = "not sent: " + target.reason;
            spdlog::info("deliver: id={} mailbox={} dead reason={} (checked when sent)", row.id, row.mailbox, target.reason);
            co_return o;
        }
        if (target.verdict == CurrentTarget::Verdict::unknown) {
            // Nothing was sent and nothing is counted: the row stays for the next claim.
            o.kind = Outcome::Kind::release;
            spdlog::warn("deliver: id={} mailbox={} not sent, destination not checked error=\"{}\"", row.id,
                         row.mailbox, target.reason);
            co_return o;
        }
        auto req = build_request(row, *cfg, now);
        ingress::Headers current_headers;  // outlives the send: the request refers to it
        if (req && target.url) req->url = *target.url;
        if (req && target.header) {
            for (const auto& h : row.headers)
                if (!ingress::same_header_name(h.first, target.header->first)) current_headers.push_back(h);
            current_headers.push_back(*target.header);
            req->stored_headers = &current_headers;
        }
        if (!req) {
            o.kind = Outcome::Kind::dead;
            o.reason = "unknown_region";
            o.error = "region '" + region_label + "' is not in this daemon's configuration";
            spdlog::warn("deliver: id={} mailbox={} region={} dead reason=unknown_region", row.id, row.mailbox,
                         region_label);
            co_return o;
        }
        url = req->url;
        res = co_await client_.send(std::move(*req));
    }
    double secs = std::chrono::duration<double>(res.elapsed).count();
    metrics_.delivery_duration.with({region_label}).observe(secs);
    static constexpr std::string_view kClasses[] = {"error", "1xx", "2xx", "3xx", "4xx", "5xx"};
    auto klass = res.status >= 100 && res.status < 600 ? kClasses[res.status / 100] : kClasses[0];
    metrics_.delivery_status.with({region_label, klass}).inc();

    auto c = classify(res, std::chrono::system_clock::now());
    if (c.verdict == Verdict::delivered) {
        o.kind = Outcome::Kind::delivered;
        o.status = res.status;
        o.attempts = row.attempts + 1;
        o.url = url;
        o.response_head = res.body_head;
        metrics_.delivery_age.with({region_label})
            .observe(std::chrono::duration<double>(std::chrono::system_clock::now() - row.date_added).count());
        co_return o;
    }
    o = failed(row, policy, res, c);
    o.url = url;
    o.request_head = row.body.substr(0, 1024);
    if (o.kind == Outcome::Kind::dead)
        spdlog::warn("deliver: id={} mailbox={} region={} dead reason={} attempts={} status={} error=\"{}\"", row.id,
                     row.mailbox, region_label, o.reason, o.attempts, o.status, o.error);
    else {
        auto suppressed = retry_log_.admit(region_label);
        bool log = suppressed.has_value();
        if (log)
            spdlog::info("deliver: id={} mailbox={} region={} retry attempts={} status={} delay_ms={} suppressed={} "
                         "error=\"{}\"",
                         row.id, row.mailbox, region_label, o.attempts, o.status, o.delay.count(), *suppressed, o.error);
        else
            spdlog::debug("deliver: id={} mailbox={} region={} retry attempts={} status={} delay_ms={} error=\"{}\"",
                          row.id, row.mailbox, region_label, o.attempts, o.status, o.delay.count(), o.error);
    }
    co_return o;
}

}  // namespace outboxd::drain
