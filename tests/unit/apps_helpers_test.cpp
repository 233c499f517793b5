// Pure helpers of the Sentry-App side: UTF-8 cleaning and outcome selection for the request log,
// and the SMTP address and line-ending helpers.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "outboxd/apps/outcome_log.hpp"
#include "outboxd/apps/smtp.hpp"

using namespace outboxd;
using apps::clean_text;

TEST(AppsCleanText, KeepsValidUtf8) {
    EXPECT_EQ(clean_text("plain ascii"), "plain ascii");
    EXPECT_EQ(clean_text("naïve 日本語 🚀"), "naïve 日本語 🚀");
    EXPECT_EQ(clean_text(""), "");
}

TEST(AppsCleanText, DropsNulAndReplacesInvalidBytes) {
    EXPECT_EQ(clean_text(std::string("a\0b", 3)), "ab");
    EXPECT_EQ(clean_text("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
    EXPECT_EQ(clean_text("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD") << "overlong encoding";
    EXPECT_EQ(clean_text("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD") << "UTF-16 surrogate";
    EXPECT_EQ(clean_text("\xF4\x90\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD") << "above U+10FFFF";
    EXPECT_EQ(clean_text("\xE6\x97" "x"), "\xEF\xBF\xBD\xEF\xBF\xBD" "x") << "truncated inside the text";
}

TEST(AppsCleanText, DropsACharacterCutAtTheEnd) {
    std::string s = "ok 日";  // 日 = E6 97 A5
    EXPECT_EQ(clean_text(s.substr(0, s.size() - 1)), "ok ");
    EXPECT_EQ(clean_text(s.substr(0, s.size() - 2)), "ok ");
    EXPECT_EQ(clean_text("🚀" + std::string("\xF0\x9F\x9A")), "🚀");
}

namespace {
drain::Outcome outcome(drain::Outcome::Kind k, std::string category, std::int64_t id) {
    drain::Outcome o{};
    o.kind = k;
    o.id = id;
    o.category = std::move(category);
    o.mailbox = "app:" + std::to_string(id);
    return o;
}
}  // namespace

TEST(AppsOutcomesJson, NoneWithoutAppWebhooks) {
    using K = drain::Outcome::Kind;
    EXPECT_FALSE(apps::app_outcomes_json({}));
    EXPECT_FALSE(apps::app_outcomes_json({outcome(K::delivered, "webhook_proxy", 1), outcome(K::dead, "email", 2),
                                          outcome(K::release, "app_webhook", 3)}));
}

TEST(AppsOutcomesJson, AppWebhooksOfEveryKindButRelease) {
    using K = drain::Outcome::Kind;
    auto failed = outcome(K::retry, "app_webhook", 5);
    failed.status = 503;
    failed.url = "http://app.example/hook";
    failed.error = "HTTP 503";
    failed.request_head = std::string("{\"a\":\"\xE6\x97", 8);  // cut inside a character
    failed.response_head = std::string("bad\0gateway", 11);
    auto json = apps::app_outcomes_json({outcome(K::delivered, "app_webhook", 4), failed,
                                         outcome(K::release, "app_webhook", 6), outcome(K::dead, "app_webhook", 7),
                                         outcome(K::delivered, "webhook_proxy", 8)});
    ASSERT_TRUE(json);
    auto arr = boost::json::parse(*json).as_array();
    ASSERT_EQ(arr.size(), 3u);
    EXPECT_EQ(arr[0].at("id").as_int64(), 4);
    EXPECT_EQ(arr[0].at("kind").as_string(), "delivered");
    EXPECT_EQ(arr[1].at("kind").as_string(), "retry");
    EXPECT_EQ(arr[1].at("status").as_int64(), 503);
    EXPECT_EQ(arr[1].at("mailbox").as_string(), "app:5");
    EXPECT_EQ(arr[1].at("url").as_string(), "http://app.example/hook");
    EXPECT_EQ(arr[1].at("error").as_string(), "HTTP 503");
    EXPECT_EQ(arr[1].at("request_head").as_string(), "{\"a\":\"");
    EXPECT_EQ(arr[1].at("response_head").as_string(), "badgateway");
    EXPECT_EQ(arr[2].at("id").as_int64(), 7);
    EXPECT_EQ(arr[2].at("kind").as_string(), "dead");
}

TEST(AppsSmtp, EnvelopeAddress) {
    EXPECT_EQ(apps::envelope_address("outboxd@localhost"), "outboxd@localhost");
    EXPECT_EQ(apps::envelope_address("  outboxd@localhost "), "outboxd@localhost");
    EXPECT_EQ(apps::envelope_address("Outbox Daemon <noreply@example.com>"), "noreply@example.com");
    EXPECT_EQ(apps::envelope_address("\"a <b>\" <c@d.example>"), "c@d.example");
}

TEST(AppsSmtp, PlausibleAddress) {
    EXPECT_TRUE(apps::plausible_address("owner@example.com"));
    EXPECT_TRUE(apps::plausible_address("o+tag@sub.example.com"));
    EXPECT_FALSE(apps::plausible_address(""));
    EXPECT_FALSE(apps::plausible_address("no-at-sign"));
    EXPECT_FALSE(apps::plausible_address("@example.com"));
    EXPECT_FALSE(apps::plausible_address("owner@"));
    EXPECT_FALSE(apps::plausible_address("a b@example.com"));
    EXPECT_FALSE(apps::plausible_address("a@example.com\r\nRCPT TO:<x@y>"));
    EXPECT_FALSE(apps::plausible_address("a@example.com>"));
}

TEST(AppsSmtp, ToCrlf) {
    EXPECT_EQ(apps::to_crlf("a\nb\r\nc\rd"), "a\r\nb\r\nc\r\nd\r\n");
    EXPECT_EQ(apps::to_crlf("x\r\n"), "x\r\n");
    EXPECT_EQ(apps::to_crlf(""), "\r\n");
    EXPECT_EQ(apps::to_crlf("a\n\nb"), "a\r\n\r\nb\r\n");
}

TEST(AppsSmtp, UnusableRecipientIsNotSent) {
    apps::SmtpSettings s;
    s.url = "smtp://127.0.0.1:1";
    s.from = "outboxd@localhost";
    auto r = apps::send_mail(s, "bad\r\naddress", "Subject: x\r\n\r\nbody");
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.failure, http::FailureKind::bad_url);
    EXPECT_NE(r.error.find("recipient"), std::string::npos);
}

TEST(AppsSmtp, UnreachableRelayIsARetryableError) {
    apps::SmtpSettings s;
    s.url = "smtp://127.0.0.1:1";  // nothing listens on port 1
    s.from = "outboxd@localhost";
    s.timeout = std::chrono::seconds(5);
    auto r = apps::send_mail(s, "owner@example.com", "Subject: x\r\n\r\nbody");
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.failure, http::FailureKind::connect);
    EXPECT_FALSE(r.error.empty());
}
