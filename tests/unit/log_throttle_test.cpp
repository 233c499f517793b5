#include "outboxd/common/log_throttle.hpp"

#include <gtest/gtest.h>

using namespace std::chrono_literals;

TEST(LogThrottle, OneLinePerKeyAndIntervalWithTheHeldBackCounted) {
    outboxd::LogThrottle t(1000ms);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(t.admit("github/bad_signature", t0), 0u) << "the first is written at once";
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(t.admit("github/bad_signature", t0 + 100ms * i).has_value());
    EXPECT_EQ(t.admit("slack/bad_json", t0 + 500ms), 0u) << "keys are independent";
    EXPECT_EQ(t.admit("github/bad_signature", t0 + 1000ms), 5u) << "the next line tells how many were held back";
    EXPECT_FALSE(t.admit("github/bad_signature", t0 + 1500ms).has_value());
    EXPECT_EQ(t.admit("github/bad_signature", t0 + 2100ms), 1u);
}

TEST(LogThrottle, KeysAreBounded) {
    outboxd::LogThrottle t(1000ms, 3);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(t.admit("k" + std::to_string(i), t0).has_value()) << "new keys pass";
    EXPECT_FALSE(t.admit("k9", t0 + 1ms).has_value()) << "the newest key is still remembered";
}
