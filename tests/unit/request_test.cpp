// Header cleaning for replay, query parsing, and the request a claimed row becomes (URL,
// idempotency headers, region signature checked against an RFC 4231 vector, app headers).
#include <gtest/gtest.h>

#include "outboxd/db/connection.hpp"
#include "outboxd/drain/deliverer.hpp"
#include "outboxd/http/client.hpp"
#include "outboxd/ingress/parser.hpp"
#include "outboxd/ingress/request.hpp"
#include "outboxd/outbox/outbox_writer.hpp"

#include <boost/json.hpp>

using namespace outboxd;

namespace {
std::optional<std::string> find(const ingress::Headers& h, const std::string& name) {
    for (const auto& [k, v] : h)
        if (k == name) return v;
    return std::nullopt;
}
// What goes on the wire: the row's stored headers (borrowed, not copied), then the additions.
ingress::Headers sent_headers(const http::OutboundRequest& req) {
    ingress::Headers all = req.stored_headers ? *req.stored_headers : ingress::Headers{};
    all.insert(all.end(), req.headers.begin(), req.headers.end());
    return all;
}
}  // namespace

TEST(HeaderCleaning, DropsHopByHopHostAndLengthKeepsTheRestInOrder) {
    ingress::Headers in = {{"Host", "outboxd.example"},        {"Content-Length", "12"},
                           {"Connection", "keep-alive, X-Trace"}, {"Keep-Alive", "timeout=5"},
                           {"Transfer-Encoding", "chunked"},      {"TE", "trailers"},
                           {"Upgrade", "h2c"},                    {"Proxy-Authorization", "secret"},
                           {"X-Trace", "named by Connection"},    {"X-GitHub-Event", "push"},
                           {"x-hub-signature-256", "sha256=ab"},  {"X-GitHub-Event", "duplicate kept"},
                           {"X-Outbox-Id", "spoofed"},            {"User-Agent", "GitHub-Hookshot/1"}};
    auto out = ingress::forwardable_headers(in);
    ingress::Headers want = {{"X-GitHub-Event", "push"},
                             {"x-hub-signature-256", "sha256=ab"},
                             {"X-GitHub-Event", "duplicate kept"},
                             {"User-Agent", "GitHub-Hookshot/1"}};
    EXPECT_EQ(out, want);
}

TEST(HeaderCleaning, StoredHeadersAreJsonPairsThatRoundTripAwkwardBytes) {
    ingress::Headers in = {{"X-Quote", "say \"hi\""},
                           {"X-Backslash", "C:\\path\\"},
                           {"X-Control", std::string("tab\there\x01\x1f end")},
                           {"X-Utf8", "caf\xc3\xa9 \xe2\x9c\x93"},
                           {"X-Empty", ""}};
    auto text = outbox::headers_json(in);
    auto doc = boost::json::parse(text);
    ASSERT_TRUE(doc.is_array());
    const auto& arr = doc.as_array();
    ASSERT_EQ(arr.size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const auto& pair = arr[i].as_array();
        ASSERT_EQ(pair.size(), 2u);
        EXPECT_EQ(std::string(pair[0].as_string()), in[i].first);
        EXPECT_EQ(std::string(pair[1].as_string()), in[i].second);
    }
    EXPECT_EQ(text.find('\t'), std::string::npos) << "control characters are escaped";
    EXPECT_EQ(outbox::headers_json({}), "[]");
}

TEST(HeaderCleaning, HopByHopNamesMatchInAnyCase) {
    ingress::Headers in = {{"CONNECTION", "X-Secret-Hop"}, {"x-secret-hop", "1"}, {"HOST", "h"}, {"Keep-ALIVE", "5"},
                           {"X-Kept", "yes"}};
    ingress::Headers want = {{"X-Kept", "yes"}};
    EXPECT_EQ(ingress::forwardable_headers(in), want);
}

TEST(HeaderCleaning, LookupIsCaseInsensitive) {
    ingress::Request r;
    r.headers = {{"x-github-event", "issues"}};
    EXPECT_EQ(r.header("X-GitHub-Event").value_or(""), "issues");
    EXPECT_FALSE(r.header("X-Missing").has_value());
    r.target = "/extensions/github/webhook/?a=1&b=2";
    EXPECT_EQ(r.path(), "/extensions/github/webhook/");
    EXPECT_EQ(r.query(), "a=1&b=2");
}

TEST(QueryParsing, DecodesPercentAndFormPlus) {
    auto q = ingress::parse_query("a=1&b=x%20y&c=p+q&flag&=v&d=%zz", false);
    ASSERT_EQ(q.size(), 6u);
    EXPECT_EQ(q[1], (std::pair<std::string, std::string>{"b", "x y"}));
    EXPECT_EQ(q[2], (std::pair<std::string, std::string>{"c", "p+q"}));
    EXPECT_EQ(q[3], (std::pair<std::string, std::string>{"flag", ""}));
    EXPECT_EQ(q[4].second, "v");
    EXPECT_EQ(q[5], (std::pair<std::string, std::string>{"d", "%zz"}));
    EXPECT_EQ(ingress::parse_query("c=p+q", true)[0].second, "p q");
    EXPECT_EQ(ingress::percent_decode("%zz%4"), "%zz%4") << "malformed escapes stay as they are";
}

TEST(Signature, HmacSha256MatchesRfc4231) {
    // RFC 4231 test case 2.
    EXPECT_EQ(ingress::hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    EXPECT_TRUE(ingress::constant_time_equal("abc", "abc"));
    EXPECT_FALSE(ingress::constant_time_equal("abc", "abd"));
    EXPECT_FALSE(ingress::constant_time_equal("abc", "abcd"));
}

TEST(BuildRequest, RegionRowGetsUrlIdempotencyKeyAttemptAndSignature) {
    config::Config cfg;
    cfg.regions.push_back({"us", "https://us.example.com/base", "Jefe"});
    cfg.drain.request_timeout = std::chrono::milliseconds(2500);
    drain::ClaimedRow row;
    row.id = 42;
    row.region = "us";
    row.mailbox = "github:7";
    row.category = "webhook_proxy";
    row.attempts = 2;
    row.method = "POST";
    row.path = "/extensions/github/webhook/?x=1";
    row.headers = {{"X-GitHub-Event", "push"}};
    row.body = "what do ya want for nothing?";
    auto req = drain::build_request(row, cfg, std::chrono::system_clock::now());
    ASSERT_TRUE(req.has_value());
    EXPECT_EQ(req->url, "https://us.example.com/base/extensions/github/webhook/?x=1");
    EXPECT_EQ(req->payload(), row.body);
    EXPECT_EQ(&req->payload(), &row.body) << "the stored body is sent without a copy";
    EXPECT_EQ(req->timeout, std::chrono::milliseconds(2500));
    auto sent = sent_headers(*req);
    EXPECT_EQ(sent.front().first, "X-GitHub-Event") << "stored headers go first, in order";
    EXPECT_EQ(find(sent, "X-GitHub-Event").value_or(""), "push");
    EXPECT_EQ(find(sent, "X-Outbox-Id").value_or(""), "42");
    EXPECT_EQ(find(sent, "X-Outbox-Attempt").value_or(""), "3");
    EXPECT_EQ(find(sent, "X-Outbox-Signature").value_or(""),
              "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(BuildRequest, UnknownRegionHasNoRequest) {
    config::Config cfg;
    drain::ClaimedRow row;
    row.region = "mars";
    EXPECT_FALSE(drain::build_request(row, cfg, std::chrono::system_clock::now()).has_value());
}

TEST(BuildRequest, AppRowGoesToItsUrlWithTimestampAndAppLimits) {
    config::Config cfg;
    cfg.apps.request_timeout = std::chrono::milliseconds(1000);
    cfg.apps.allow_private_urls = false;
    drain::ClaimedRow row;
    row.id = 9;
    row.category = "app_webhook";
    row.target_url = "https://app.example/hook";
    row.method = "POST";
    row.headers = {{"Sentry-Hook-Signature", "abc"}, {"Request-ID", "r-1"}};
    row.body = "{}";
    auto now = std::chrono::system_clock::from_time_t(1'700'000'123);
    auto req = drain::build_request(row, cfg, now);
    ASSERT_TRUE(req.has_value());
    EXPECT_EQ(req->url, "https://app.example/hook");
    EXPECT_EQ(req->timeout, std::chrono::milliseconds(1000));
    EXPECT_FALSE(req->allow_private);
    auto sent = sent_headers(*req);
    EXPECT_EQ(find(sent, "Sentry-Hook-Timestamp").value_or(""), "1700000123");
    EXPECT_EQ(find(sent, "Request-ID").value_or(""), "r-1");
    EXPECT_FALSE(find(sent, "X-Outbox-Id").has_value()) << "third-party apps key on Request-ID";
}

TEST(ArrayLiteral, QuotesAndEscapesElements) {
    EXPECT_EQ(db::array_literal(std::vector<std::string>{}), "{}");
    EXPECT_EQ(db::array_literal(std::vector<std::string>{"github:1", "a\"b", "c\\d", "x,y"}),
              R"({"github:1","a\"b","c\\d","x,y"})");
    EXPECT_EQ(db::array_literal(std::vector<std::int64_t>{1, -2, 30}), "{1,-2,30}");
}

TEST(OutboundRequestHead, StoredHeadersInOrderClientOwnsFramingAndHost) {
    ingress::Headers h = {{"X-GitHub-Event", "push"},  {"Host", "provider.example"}, {"content-length", "999"},
                          {"Transfer-Encoding", "chunked"}, {"Connection", "close"}, {"X-Outbox-Id", "42"},
                          {"User-Agent", "GitHub-Hookshot/1"}};
    auto head = http::request_head("POST", "/extensions/github/webhook/?a=1", "us.example:8443", h, {}, 17);
    ASSERT_TRUE(head);
    EXPECT_EQ(*head,
              "POST /extensions/github/webhook/?a=1 HTTP/1.1\r\n"
              "X-GitHub-Event: push\r\n"
              "X-Outbox-Id: 42\r\n"
              "User-Agent: GitHub-Hookshot/1\r\n"
              "Host: us.example:8443\r\n"
              "Content-Length: 17\r\n\r\n");
    // An empty POST still says its length; a GET without a body does not.
    EXPECT_NE(http::request_head("POST", "/", "h", {}, {}, 0)->find("Content-Length: 0\r\n"), std::string::npos);
    EXPECT_EQ(http::request_head("GET", "/", "h", {}, {}, 0)->find("Content-Length"), std::string::npos);
}

TEST(OutboundRequestHead, NothingCanSmuggleASecondRequest) {
    ingress::Headers h = {{"X-Evil", "a\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1"},
                          {"X-Nul", std::string("a\0b", 3)},
                          {"Bad Name", "x"},
                          {"X-Fine", "ok"}};
    auto head = http::request_head("POST", "/", "h", h, {{"X-Outbox-Attempt", "1"}}, 2);
    ASSERT_TRUE(head);
    EXPECT_EQ(*head, "POST / HTTP/1.1\r\nX-Fine: ok\r\nX-Outbox-Attempt: 1\r\nHost: h\r\nContent-Length: 2\r\n\r\n");
    EXPECT_FALSE(http::request_head("POST /x HTTP/1.1\r\n", "/", "h", {}, {}, 0));
    EXPECT_FALSE(http::request_head("POST", "/a b", "h", {}, {}, 0));
    EXPECT_FALSE(http::request_head("POST", "/a\r\nX: y", "h", {}, {}, 0));
    EXPECT_FALSE(http::request_head("", "/", "h", {}, {}, 0));
}

// libpq's messages span lines and double-quote names; the daemon logs them as error="…", which
// they broke in two. Errors carry them as one line, quotes made single.
TEST(DbError, MessagesAreOneLogfmtSafeLine) {
    try {
        outboxd::db::Connection c("postgresql://127.0.0.1:1/nowhere", "test");
        FAIL() << "connected to port 1";
    } catch (const outboxd::db::Error& e) {
        std::string m = e.what();
        EXPECT_NE(m.find("database connection failed"), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        EXPECT_EQ(m.find('\t'), std::string::npos) << m;
        EXPECT_EQ(m.find('"'), std::string::npos) << m;
        EXPECT_TRUE(e.connection_lost());
    }
}
