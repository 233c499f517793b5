// The delivery policy as units: classification of every kind of answer, Retry-After, backoff
// bounds, dead-letter decisions, and the region circuit breaker's state machine.
#include <gtest/gtest.h>

#include "outboxd/drain/circuit_breaker.hpp"
#include "outboxd/drain/retry_policy.hpp"

using namespace outboxd;
using namespace outboxd::drain;
using namespace std::chrono_literals;

namespace {
http::OutboundResult status(int s, std::optional<std::string> retry_after = {}) {
    http::OutboundResult r;
    r.status = s;
    r.retry_after = std::move(retry_after);
    return r;
}
http::OutboundResult failure(http::FailureKind k) {
    http::OutboundResult r;
    r.failure = k;
    r.error = "x";
    return r;
}
const auto now = std::chrono::system_clock::from_time_t(1'700'000'000);
}  // namespace

TEST(Classify, SuccessIsDelivered) {
    for (int s : {200, 201, 202, 204, 299}) EXPECT_EQ(classify(status(s), now).verdict, Verdict::delivered) << s;
}

TEST(Classify, ServerErrorsTimeoutsAndConnectionErrorsRetry) {
    for (int s : {500, 502, 503, 504, 599}) {
        auto c = classify(status(s), now);
        EXPECT_EQ(c.verdict, Verdict::retry) << s;
        EXPECT_TRUE(c.region_failure) << s;
    }
    for (auto k : {http::FailureKind::timeout, http::FailureKind::connect, http::FailureKind::tls, http::FailureKind::protocol}) {
        EXPECT_EQ(classify(failure(k), now).verdict, Verdict::retry);
        EXPECT_TRUE(classify(failure(k), now).region_failure);
    }
}

TEST(Classify, RequestTimeoutAndTooManyRequestsRetryWithoutBlamingTheRegion) {
    EXPECT_EQ(classify(status(408), now).verdict, Verdict::retry);
    EXPECT_EQ(classify(status(429), now).verdict, Verdict::retry);
    EXPECT_FALSE(classify(status(429), now).region_failure);
}

TEST(Classify, RedirectsAreNotFollowedButRetried) {
    for (int s : {301, 302, 307, 308}) EXPECT_EQ(classify(status(s), now).verdict, Verdict::retry) << s;
}

TEST(Classify, OtherClientErrorsArePermanent) {
    for (int s : {400, 401, 403, 404, 409, 410, 413, 422}) EXPECT_EQ(classify(status(s), now).verdict, Verdict::permanent) << s;
}

TEST(Classify, RefusedDestinationIsPermanent) {
    EXPECT_EQ(classify(failure(http::FailureKind::refused_address), now).verdict, Verdict::permanent);
    EXPECT_EQ(classify(failure(http::FailureKind::bad_url), now).verdict, Verdict::permanent);
}

TEST(Classify, RetryAfterIsReadOn429And503) {
    EXPECT_EQ(classify(status(429, "7"), now).retry_after, ms(7000));
    EXPECT_EQ(classify(status(503, "2"), now).retry_after, ms(2000));
    EXPECT_FALSE(classify(status(500, "2"), now).retry_after.has_value());
}

TEST(RetryAfter, SecondsAndHttpDates) {
    EXPECT_EQ(parse_retry_after("120", now), ms(120000));
    EXPECT_EQ(parse_retry_after(" 3 ", now), ms(3000));
    // 1'700'000'000 is Tue, 14 Nov 2023 22:13:20 GMT.
    EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now), ms(30000));
    EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now), ms(0));
    EXPECT_FALSE(parse_retry_after("soon", now).has_value());
    EXPECT_FALSE(parse_retry_after("", now).has_value());
}

TEST(Backoff, CeilingDoublesUpToTheCap) {
    RetryPolicy p{ms(1000), ms(60000), 10, ms(3600000)};
    EXPECT_EQ(p.ceiling(1), ms(1000));
    EXPECT_EQ(p.ceiling(2), ms(2000));
    EXPECT_EQ(p.ceiling(3), ms(4000));
    EXPECT_EQ(p.ceiling(6), ms(32000));
    EXPECT_EQ(p.ceiling(7), ms(60000));
    EXPECT_EQ(p.ceiling(500), ms(60000)) << "no overflow for large attempt counts";
}

TEST(Backoff, FullJitterStaysWithinBoundsAndSpreads) {
    RetryPolicy p{ms(100), ms(10000), 10, ms(3600000)};
    std::mt19937_64 rng(42);
    for (int attempt = 1; attempt <= 12; ++attempt) {
        ms lo = ms::max(), hi = ms::zero();
        for (int i = 0; i < 500; ++i) {
            auto d = p.backoff(attempt, std::nullopt, rng);
            ASSERT_GE(d, ms(0));
            ASSERT_LE(d, p.ceiling(attempt)) << "attempt " << attempt;
            lo = std::min(lo, d);
            hi = std::max(hi, d);
        }
        // Jitter really spreads the delays over the window (no thundering herd).
        EXPECT_LT(lo, p.ceiling(attempt) / 4) << attempt;
        EXPECT_GT(hi, p.ceiling(attempt) * 3 / 4) << attempt;
    }
}

TEST(Backoff, RetryAfterIsAFloor) {
    RetryPolicy p{ms(100), ms(1000), 10, ms(3600000)};
    std::mt19937_64 rng(1);
    for (int i = 0; i < 100; ++i) EXPECT_GE(p.backoff(1, ms(5000), rng), ms(5000));
}

TEST(Backoff, DeadAfterMaxAttemptsOrMaxAge) {
    RetryPolicy p{ms(100), ms(1000), 3, ms(60000)};
    EXPECT_EQ(p.after_failure(1, ms(0)), Next::retry);
    EXPECT_EQ(p.after_failure(2, ms(0)), Next::retry);
    EXPECT_EQ(p.after_failure(3, ms(0)), Next::dead_max_attempts);
    EXPECT_EQ(p.after_failure(1, ms(60000)), Next::dead_max_age);
}

TEST(CircuitBreaker, OpensAfterConsecutiveFailuresAndProbesOnce) {
    CircuitBreakers b({3, 1000ms, 8000ms});
    auto t = std::chrono::steady_clock::now();
    for (int i = 0; i < 2; ++i) b.record("us", true, t);
    EXPECT_TRUE(b.admit("us", t));
    b.record("us", false, t);  // a success resets the count
    for (int i = 0; i < 3; ++i) b.record("us", true, t);
    EXPECT_FALSE(b.admit("us", t));
    EXPECT_EQ(b.blocked(t), std::vector<std::string>{"us"});
    EXPECT_TRUE(b.admit("eu", t)) << "regions are independent";
    // After the open period one probe goes through; a second is held while it is in flight.
    t += 1001ms;
    EXPECT_TRUE(b.admit("us", t));
    EXPECT_FALSE(b.admit("us", t));
    // The probe fails: open again for twice as long.
    b.record("us", true, t);
    EXPECT_FALSE(b.admit("us", t + 1500ms));
    EXPECT_TRUE(b.admit("us", t + 2001ms));
    b.record("us", false, t + 2001ms);
    EXPECT_TRUE(b.admit("us", t + 2002ms));
    EXPECT_TRUE(b.blocked(t + 2002ms).empty());
}

TEST(CircuitBreaker, OpenPeriodIsCapped) {
    CircuitBreakers b({1, 1000ms, 3000ms});
    auto t = std::chrono::steady_clock::now();
    b.record("us", true, t);
    for (int i = 0; i < 6; ++i) {
        t += 10000ms;
        ASSERT_TRUE(b.admit("us", t));
        b.record("us", true, t);
    }
    EXPECT_FALSE(b.admit("us", t + 2999ms));
    EXPECT_TRUE(b.admit("us", t + 3001ms));
}

// The gauge behind the OutboxdRegionCircuitOpen alert: open while deliveries are held back or a
// probe is out, but not forever on a daemon that has nothing left to probe with (another
// daemon delivered the region's rows meanwhile).
TEST(CircuitBreaker, ReportedOpenEndsWhenNothingWasLeftToProbe) {
    CircuitBreakers b({1, 1000ms, 8000ms});
    auto t = std::chrono::steady_clock::now();
    EXPECT_FALSE(b.reported_open("us", t, 5000ms)) << "never used";
    b.record("us", true, t);
    EXPECT_TRUE(b.reported_open("us", t + 500ms, 5000ms)) << "open period";
    EXPECT_TRUE(b.reported_open("us", t + 5999ms, 5000ms)) << "within the grace for a probe";
    EXPECT_FALSE(b.reported_open("us", t + 6001ms, 5000ms)) << "no probe came: nothing to deliver here";
    ASSERT_TRUE(b.admit("us", t + 7000ms)) << "a row arrives later: it is the probe";
    EXPECT_TRUE(b.reported_open("us", t + 7000ms, 5000ms)) << "half-open while the probe is out";
    b.record("us", false, t + 7100ms);
    EXPECT_FALSE(b.reported_open("us", t + 7100ms, 5000ms)) << "closed";
}
