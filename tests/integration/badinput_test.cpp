// The bad-input matrix of the ingress, against a real daemon: each kind of abuse gets its status
// (or the connection is closed), nothing is stored, the labelled counter moves, and afterwards a
// good webhook is still accepted (202). Transport-level abuse (Content-Length games, header
// floods, slowloris) goes through raw sockets, since a well-behaved HTTP client cannot send it.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "support/harness.hpp"

using namespace testsupport;

namespace {

using Clock = std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

const std::string kGoodBody = R"({"action":"opened","installation":{"id":4242},"issue":{"id":1,"title":"naïve 🚀"}})";
const Headers kGithubHeaders = {{"X-GitHub-Event", "issues"}, {"Content-Type", "application/json"}};

// A blocking TCP client whose reads are bounded by a deadline.
class RawConn {
public:
    explicit RawConn(unsigned short port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            int e = errno;
            ::close(fd_);
            throw std::runtime_error(std::string("connect: ") + std::strerror(e));
        }
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    ~RawConn() {
        if (fd_ >= 0) ::close(fd_);
    }
    RawConn(const RawConn&) = delete;
    RawConn& operator=(const RawConn&) = delete;

    // False once the peer has closed or reset the connection.
    bool send(std::string_view data) {
        while (!data.empty()) {
            auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    enum class End { done, eof, reset, timeout };

    // Appends what arrives to `in_` until `done(in_)`, EOF, a reset or the deadline.
    End read_until(const std::function<bool(const std::string&)>& done, Clock::time_point deadline) {
        while (!done(in_)) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
            if (left <= 0) return End::timeout;
            pollfd p{fd_, POLLIN, 0};
            int r = ::poll(&p, 1, static_cast<int>(left));
            if (r < 0 && errno == EINTR) continue;
            if (r == 0) return End::timeout;
            char buf[16384];
            auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return End::reset;
            if (n == 0) return End::eof;
            in_.append(buf, static_cast<std::size_t>(n));
        }
        return End::done;
    }

    // Reads one whole response (head + Content-Length body) or until the connection ends.
    End read_response(std::chrono::milliseconds timeout) {
        return read_until(
            [](const std::string& s) {
                auto end = s.find("\r\n\r\n");
                if (end == std::string::npos) return false;
                auto head = s.substr(0, end);
                for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                auto cl = head.find("\r\ncontent-length:");
                std::size_t len = cl == std::string::npos ? 0 : std::stoul(head.substr(cl + 17));
                return s.size() >= end + 4 + len;
            },
            Clock::now() + timeout);
    }

    // Waits for the server to close the connection, discarding anything it sends first.
    End wait_closed(Clock::time_point deadline) {
        return read_until([](const std::string&) { return false; }, deadline);
    }

    // True while the connection is open and nothing has arrived.
    bool silent() {
        pollfd p{fd_, POLLIN, 0};
        return ::poll(&p, 1, 0) == 0;
    }

    // Status of the first response received, 0 if none.
    int status() const {
        if (in_.compare(0, 9, "HTTP/1.1 ") != 0 || in_.size() < 12) return 0;
        return std::atoi(in_.c_str() + 9);
    }
    const std::string& received() const { return in_; }

private:
    int fd_ = -1;
    std::string in_;
};

std::ostream& operator<<(std::ostream& os, RawConn::End e) {
    static const char* names[] = {"done", "eof", "reset", "timeout"};
    return os << names[static_cast<int>(e)];
}

std::string raw_request(const std::string& head_lines, const std::string& body = {}) {
    return "POST /extensions/github/webhook/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-GitHub-Event: issues\r\n"
           "Content-Type: application/json\r\n" +
           head_lines + "\r\n" + body;
}

class BadInput : public ::testing::Test {
protected:
    void SetUp() override {
        std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        std::string db_name = "bad_";
        for (char c : name) db_name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        db_ = std::make_unique<TestDatabase>(db_name);
        db_->seed_integration(7, "github", "4242", {"us"});
        ingress_ = free_port();
        metrics_ = free_port();
        // No GitHub secret: the bodies below reach the JSON parser unsigned.
        std::string c = "[database]\nurl = \"" + db_->url() + "\"\n\n[ingress]\nlisten = \"127.0.0.1:" +
                        std::to_string(ingress_) + "\"\nmax_body_bytes = " + std::to_string(kMaxBody) +
                        "\nread_timeout = \"1s\"\n\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_) +
                        "\"\n\n[drain]\nrequest_timeout = \"2s\"\n\n[retry]\nbase_delay = \"50ms\"\nmax_delay = \"200ms\"\n\n"
                        "[[region]]\nname = \"us\"\nurl = \"" + us_.url() + "\"\nsecret = \"us-secret\"\n";
        daemon_ = std::make_unique<Daemon>(c, "badinput");
        ASSERT_TRUE(daemon_->start()) << daemon_->log();
    }

    void TearDown() override {
        if (daemon_) {
            EXPECT_TRUE(daemon_->running()) << "the daemon died:\n" << daemon_->log();
        }
    }

    HttpResult post(const std::string& target, const std::string& body, const Headers& headers = kGithubHeaders) {
        return http_request("POST", "127.0.0.1", ingress_, target, body, headers);
    }

    double metric(const std::string& series) { return metric_series(metrics_, series); }
    static std::string rejected(const std::string& provider, const std::string& reason) {
        return "outboxd_ingress_rejected_total{provider=\"" + provider + "\",reason=\"" + reason + "\"}";
    }
    static std::string requests(const std::string& provider, int code) {
        return "outboxd_ingress_requests_total{provider=\"" + provider + "\",code=\"" + std::to_string(code) + "\"}";
    }

    // Nothing reached the outbox (no row was ever committed: ids start at 1) and no region was called.
    void expect_nothing_stored() {
        EXPECT_EQ(db_->scalar("SELECT count(*) FROM control_outbox"), "0");
        EXPECT_EQ(db_->scalar("SELECT coalesce(nextval('control_outbox_id_seq'), 0)"), "1")
            << "no insert was attempted";
        EXPECT_TRUE(us_.requests().empty());
    }

    // After the abuse, a good webhook is still accepted and delivered.
    void expect_still_serving() {
        auto res = post("/extensions/github/webhook/", kGoodBody);
        EXPECT_EQ(res.status, 202) << res.body;
        EXPECT_TRUE(wait_until([&] { return !us_.ok().empty() && us_.ok().back().body == kGoodBody; }, 10s))
            << daemon_->log();
    }

    static constexpr int kMaxBody = 4096;
    std::unique_ptr<TestDatabase> db_;
    Receiver us_;
    std::unique_ptr<Daemon> daemon_;
    unsigned short ingress_ = 0, metrics_ = 0;
};

}  // namespace

TEST_F(BadInput, UnknownProviderIs404) {
    auto before = metric(rejected("unknown", "unknown_provider"));
    auto res = post("/extensions/gitbucket/webhook/", kGoodBody);
    EXPECT_EQ(res.status, 404) << res.body;
    EXPECT_EQ(metric(rejected("unknown", "unknown_provider")), before + 1);
    // A known provider's path the table does not name, and a path outside /extensions/.
    EXPECT_EQ(post("/extensions/github/webhooks/", kGoodBody).status, 404);
    EXPECT_EQ(metric(rejected("github", "not_found")), 1);
    EXPECT_EQ(post("/extensions/", kGoodBody).status, 404);
    EXPECT_EQ(post("/webhook/", kGoodBody).status, 404);
    EXPECT_EQ(metric(rejected("unknown", "not_found")), 1);
    expect_nothing_stored();
    expect_still_serving();
}

TEST_F(BadInput, WrongMethodIs405) {
    for (const char* method : {"GET", "PUT", "DELETE", "PATCH"}) {
        SCOPED_TRACE(method);
        auto res = http_request(method, "127.0.0.1", ingress_, "/extensions/github/webhook/", kGoodBody, kGithubHeaders);
        EXPECT_EQ(res.status, 405) << res.body;
    }
    EXPECT_EQ(metric(rejected("github", "method_not_allowed")), 4);
    EXPECT_EQ(metric(requests("github", 405)), 4);
    expect_nothing_stored();
    expect_still_serving();
}

// The limit is enforced on the announced length: the 413 comes before the body is read, so a
// client announcing a gigabyte and sending 100 bytes is answered at once, not after a timeout.
TEST_F(BadInput, BodyOverLimitIs413WithoutReadingIt) {
    auto before = metric(rejected("github", "body_too_large"));
    {
        RawConn c(ingress_);
        auto t0 = Clock::now();
        ASSERT_TRUE(c.send(raw_request("Content-Length: 1000000000\r\n", std::string(100, 'x'))));
        auto end = c.read_response(3s);
        auto took = Clock::now() - t0;
        EXPECT_EQ(end, RawConn::End::done) << c.received();
        EXPECT_EQ(c.status(), 413) << c.received();
        EXPECT_LT(took, 500ms) << "answered before the (1 s) read timeout, i.e. without waiting for the body";
        EXPECT_NE(c.received().find("Connection: close"), std::string::npos) << c.received();
        EXPECT_EQ(c.wait_closed(Clock::now() + 2s), RawConn::End::eof) << "the connection is closed after a 413";
    }
    {
        // One byte over, announced honestly and sent whole.
        RawConn c(ingress_);
        std::string body(kMaxBody + 1, ' ');
        c.send(raw_request("Content-Length: " + std::to_string(body.size()) + "\r\n", body));
        c.read_response(3s);
        EXPECT_EQ(c.status(), 413) << c.received();
    }
    EXPECT_EQ(metric(rejected("github", "body_too_large")), before + 2) << "counted under the provider its path names";
    EXPECT_EQ(metric(requests("github", 413)), 2);
    {
        // A path that names no provider is counted as "unknown".
        RawConn c(ingress_);
        std::string req = raw_request("Content-Length: 1000000000\r\n");
        req.replace(req.find("/extensions/github/"), 19, "/extensions/nosuch/");
        ASSERT_TRUE(c.send(req));
        c.read_response(3s);
        EXPECT_EQ(c.status(), 413) << c.received();
    }
    EXPECT_EQ(metric(requests("unknown", 413)), 1);
    // Exactly at the limit is fine (valid JSON padded with spaces).
    std::string padded = kGoodBody + std::string(kMaxBody - kGoodBody.size(), ' ');
    expect_nothing_stored();
    EXPECT_EQ(post("/extensions/github/webhook/", padded).status, 202);
    expect_still_serving();
}

// A client that sends the whole oversized body before reading (as webhook senders do) must still
// read the 413, not a connection reset.
TEST_F(BadInput, BodyOverLimitSentWholeStillGets413) {
    RawConn c(ingress_);
    std::string body(256 * 1024, 'x');
    c.send(raw_request("Content-Length: " + std::to_string(body.size()) + "\r\n", body));
    auto end = c.read_response(3s);
    EXPECT_EQ(end, RawConn::End::done) << c.received();
    EXPECT_EQ(c.status(), 413) << c.received();
    expect_nothing_stored();
    expect_still_serving();
}

// A client that sends Expect: 100-continue (curl, for bodies over 1 KiB) waits for the 100 before
// it sends the body; without it, it waited out its own timer or the read timeout.
TEST_F(BadInput, ExpectContinueGets100ThenTheAnswer) {
    RawConn c(ingress_);
    ASSERT_TRUE(c.send(raw_request("Expect: 100-continue\r\nContent-Length: " + std::to_string(kGoodBody.size()) + "\r\n")));
    auto end = c.read_until([](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; },
                            Clock::now() + 500ms);
    ASSERT_EQ(end, RawConn::End::done) << "no 100 Continue: " << c.received();
    EXPECT_EQ(c.received(), "HTTP/1.1 100 Continue\r\n\r\n");
    ASSERT_TRUE(c.send(kGoodBody));
    EXPECT_EQ(c.read_until([](const std::string& s) { return s.find("HTTP/1.1 202") != std::string::npos; },
                           Clock::now() + 3s),
              RawConn::End::done)
        << c.received();
}

// HEAD gets the answer's head only (RFC 9110 §9.3.2), and a 405 names what is allowed; stray body
// bytes would be read as the start of the next answer on a kept-alive connection.
TEST_F(BadInput, HeadAnswersCarryNoBodyAnd405NamesPost) {
    RawConn c(ingress_);
    ASSERT_TRUE(c.send("HEAD /extensions/github/webhook/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                       "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    c.read_until([](const std::string& s) { return s.find("ok\n") != std::string::npos; }, Clock::now() + 3s);
    const auto& got = c.received();
    EXPECT_EQ(c.status(), 405) << got;
    EXPECT_NE(got.find("Allow: POST\r\n"), std::string::npos) << got;
    auto second = got.find("HTTP/1.1 ", 1);
    ASSERT_NE(second, std::string::npos) << got;
    EXPECT_EQ(got.substr(got.find("\r\n\r\n") + 4, 9), "HTTP/1.1 ") << "the HEAD answer had a body: " << got;
    EXPECT_EQ(got.substr(second, 15), "HTTP/1.1 200 OK") << got;
}

// RFC 9112 §3.2: HTTP/1.1 needs Host (400 without it); a request in absolute form is served
// like its path.
TEST_F(BadInput, HostIsRequiredAndTheAbsoluteFormIsServed) {
    {
        RawConn c(ingress_);
        ASSERT_TRUE(c.send("POST /extensions/github/webhook/ HTTP/1.1\r\nX-GitHub-Event: issues\r\nContent-Length: " +
                           std::to_string(kGoodBody.size()) + "\r\n\r\n" + kGoodBody));
        c.read_response(3s);
        EXPECT_EQ(c.status(), 400) << c.received();
    }
    expect_nothing_stored();
    RawConn c(ingress_);
    ASSERT_TRUE(c.send("POST http://127.0.0.1/extensions/github/webhook/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "X-GitHub-Event: issues\r\nContent-Length: " +
                       std::to_string(kGoodBody.size()) + "\r\n\r\n" + kGoodBody));
    c.read_response(3s);
    EXPECT_EQ(c.status(), 202) << c.received();
}

TEST_F(BadInput, InvalidContentLengthIs400) {
    auto before = metric(rejected("github", "malformed_request"));
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"not a number", "Content-Length: abc\r\n"},
        {"negative", "Content-Length: -5\r\n"},
        {"two different values", "Content-Length: 5\r\nContent-Length: 6\r\n"},
        {"two values in one field", "Content-Length: 5, 6\r\n"},
        {"overflows 64 bits", "Content-Length: 99999999999999999999999\r\n"},
        {"empty", "Content-Length: \r\n"},
        // Request smuggling: both framings at once, in either order.
        {"with chunked after it", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"},
        {"after chunked", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"},
    };
    for (const auto& [what, field] : cases) {
        SCOPED_TRACE(what);
        RawConn c(ingress_);
        ASSERT_TRUE(c.send(raw_request(field, "hello")));
        EXPECT_EQ(c.read_response(3s), RawConn::End::done) << c.received();
        EXPECT_EQ(c.status(), 400) << c.received();
        EXPECT_EQ(c.wait_closed(Clock::now() + 2s), RawConn::End::eof);
    }
    EXPECT_EQ(metric(rejected("github", "malformed_request")), before + static_cast<double>(cases.size()));
    expect_nothing_stored();
    expect_still_serving();
}

// Chunked bodies are framed and limited like the others: bad chunk syntax 400, a chunked body
// growing past max_body_bytes 413 as soon as it does, a well-formed one accepted and forwarded
// de-chunked.
TEST_F(BadInput, ChunkedBodies) {
    const std::string chunked = "Transfer-Encoding: chunked\r\n";
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"chunk size not hex", "zz\r\n{}\r\n0\r\n\r\n"},
        {"chunk longer than announced", "2\r\n{}}\r\n0\r\n\r\n"},
        {"bad chunk extension", "2;=\r\n{}\r\n0\r\n\r\n"},
    };
    for (const auto& [what, body] : bad) {
        SCOPED_TRACE(what);
        RawConn c(ingress_);
        ASSERT_TRUE(c.send(raw_request(chunked, body)));
        EXPECT_EQ(c.read_response(3s), RawConn::End::done) << c.received();
        EXPECT_EQ(c.status(), 400) << c.received();
    }
    {
        RawConn c(ingress_);
        auto t0 = Clock::now();
        std::string chunk(kMaxBody, ' ');
        std::ostringstream hexlen;
        hexlen << std::hex << chunk.size();
        // Two chunks of the limit each, and the stream never ends: refused once past the limit.
        ASSERT_TRUE(c.send(raw_request(chunked, hexlen.str() + "\r\n" + chunk + "\r\n" + hexlen.str() + "\r\n" + chunk)));
        c.read_response(3s);
        EXPECT_EQ(c.status(), 413) << c.received().substr(0, 200);
        EXPECT_LT(Clock::now() - t0, 500ms);
    }
    EXPECT_EQ(metric(requests("github", 400)), 3);
    EXPECT_EQ(metric(requests("github", 413)), 1);
    expect_nothing_stored();

    RawConn c(ingress_);
    std::string first = kGoodBody.substr(0, 10), rest = kGoodBody.substr(10);
    std::ostringstream body;
    body << std::hex << first.size() << "\r\n" << first << "\r\n" << rest.size() << ";ext=1\r\n" << rest << "\r\n0\r\n\r\n";
    ASSERT_TRUE(c.send(raw_request(chunked, body.str())));
    EXPECT_EQ(c.read_response(3s), RawConn::End::done) << c.received();
    EXPECT_EQ(c.status(), 202) << c.received();
    ASSERT_TRUE(wait_until([&] { return us_.ok().size() == 1; }, 10s)) << daemon_->log();
    auto got = us_.requests().at(0);
    EXPECT_EQ(got.body, kGoodBody) << "forwarded de-chunked";
    EXPECT_EQ(got.headers.count("transfer-encoding"), 0u) << "hop-by-hop framing not replayed";
    expect_still_serving();
}

// RFC 9112 §6.3: a Transfer-Encoding that does not end in chunked leaves the length unknown: 400
// and close. Read as bodiless, its body was taken for the next request (smuggled: stored, sent).
TEST_F(BadInput, TransferEncodingNotEndingInChunkedIs400AndCloses) {
    const std::string smuggled = "POST /extensions/github/webhook/ HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: issues\r\n"
                                 "Content-Length: " + std::to_string(kGoodBody.size()) + "\r\n\r\n" + kGoodBody;
    for (const std::string te : {"gzip", "identity", "chunked, identity", "xchunked"}) {
        SCOPED_TRACE(te);
        RawConn c(ingress_);
        ASSERT_TRUE(c.send(raw_request("Transfer-Encoding: " + te + "\r\n", "") + smuggled));
        EXPECT_EQ(c.read_response(3s), RawConn::End::done) << c.received();
        EXPECT_EQ(c.status(), 400) << c.received();
        EXPECT_NE(c.wait_closed(Clock::now() + 3s), RawConn::End::timeout) << c.received();
        EXPECT_EQ(c.received().find("HTTP/1.1 202"), std::string::npos) << "the smuggled request was served";
    }
    expect_nothing_stored();
    expect_still_serving();
}

// A chunk-extension or trailer line that never ends is refused; it used to grow the connection's
// buffer for as long as the client sent (hundreds of megabytes from one connection).
TEST_F(BadInput, EndlessChunkLinesAreRefused) {
    for (const std::string tail : {"1;ext=", "1\r\nx\r\n0\r\nX-Trailer: "}) {
        SCOPED_TRACE(tail);
        RawConn c(ingress_);
        ASSERT_TRUE(c.send(raw_request("Transfer-Encoding: chunked\r\n", tail)));
        const std::string filler(64 * 1024, 'a');
        bool cut = false;
        for (int i = 0; i < 4 && !cut; ++i) cut = !c.send(filler);  // 256 KiB of one line
        auto end = c.read_response(5s);
        // Refused: a 400, or a reset because the server stopped reading and closed. Not an
        // orderly end at read_timeout after taking it all in, which is what it did before.
        EXPECT_TRUE(cut || c.status() == 400 || end == RawConn::End::reset)
            << "still reading after 256 KiB of one line: " << c.received().substr(0, 200);
    }
    expect_nothing_stored();
    expect_still_serving();
}

// HTTP/1.1 without Content-Length or chunking has no body: the JSON that follows is not the body
// (GitHub's parser sees an empty one, 400) and, read as the next request, is refused too.
TEST_F(BadInput, MissingContentLengthMeansNoBody) {
    RawConn c(ingress_);
    ASSERT_TRUE(c.send(raw_request("", kGoodBody)));
    EXPECT_EQ(c.read_response(3s), RawConn::End::done) << c.received();
    EXPECT_EQ(c.status(), 400) << c.received();
    EXPECT_NE(c.received().find("body is not valid JSON"), std::string::npos) << c.received();
    EXPECT_EQ(metric(rejected("github", "bad_json")), 1);
    // The leftover bytes are a malformed request: answered 400 and the connection closed.
    EXPECT_EQ(c.wait_closed(Clock::now() + 3s), RawConn::End::eof);
    EXPECT_EQ(c.received().find("HTTP/1.1 2"), std::string::npos) << c.received();
    expect_nothing_stored();
    expect_still_serving();
}

TEST_F(BadInput, InvalidUtf8InJsonIs400) {
    std::string body = R"({"installation":{"id":4242},"issue":{"title":")" + std::string("\xff\xfe\xc3\x28") + "\"}}";
    auto res = post("/extensions/github/webhook/", body);
    EXPECT_EQ(res.status, 400) << res.body;
    // Overlong encoding of '/' and a lone surrogate (CESU) are not UTF-8 either.
    EXPECT_EQ(post("/extensions/github/webhook/", "{\"installation\":{\"id\":4242},\"x\":\"\xc0\xaf\"}").status, 400);
    EXPECT_EQ(post("/extensions/github/webhook/", "{\"installation\":{\"id\":4242},\"x\":\"\xed\xa0\x80\"}").status, 400);
    EXPECT_EQ(metric(rejected("github", "bad_json")), 3);
    // Not UTF-8 in a header: refused before it could reach the database as JSON text.
    EXPECT_EQ(post("/extensions/github/webhook/", kGoodBody, {{"X-GitHub-Event", "issues\xff"}}).status, 400);
    // Well-formed bytes that are still not UTF-8 (PostgreSQL refuses them: that answered 503,
    // which a provider retries for ever): a surrogate, an overlong NUL, a code point past U+10FFFF.
    EXPECT_EQ(post("/extensions/github/webhook/", kGoodBody, {{"X-Note", "a\xed\xa0\x80"}}).status, 400);
    EXPECT_EQ(post("/extensions/github/webhook/", kGoodBody, {{"X-Note", "a\xc0\x80"}}).status, 400);
    EXPECT_EQ(post("/extensions/github/webhook/?q=\xf5\x80\x80\x80", kGoodBody).status, 400);
    EXPECT_EQ(metric(rejected("github", "bad_encoding")), 4);
    expect_nothing_stored();
    expect_still_serving();
}

TEST_F(BadInput, MalformedJsonIs400) {
    for (const std::string body : {R"({"installation":{"id":4242})", R"({"installation":{"id":4242}}})", "",
                                   "{'installation': {'id': 4242}}", R"({"installation":{"id":4242},})", "nul"}) {
        SCOPED_TRACE(body);
        EXPECT_EQ(post("/extensions/github/webhook/", body).status, 400);
    }
    EXPECT_EQ(metric(rejected("github", "bad_json")), 6);
    expect_nothing_stored();
    expect_still_serving();
}

TEST_F(BadInput, WrongShapeIs400) {
    for (const std::string body : {"[1,2,3]", "\"4242\"", "4242", "null", R"({"installation":4242})",
                                   R"({"installation":{"id":true}})", R"({"installation":{}})", "{}"}) {
        SCOPED_TRACE(body);
        EXPECT_EQ(post("/extensions/github/webhook/", body).status, 400);
    }
    EXPECT_EQ(metric(rejected("github", "bad_shape")), 8);
    expect_nothing_stored();
    expect_still_serving();
}

TEST_F(BadInput, UnknownIntegrationIs400) {
    auto res = post("/extensions/github/webhook/", R"({"installation":{"id":999}})");
    EXPECT_EQ(res.status, 400) << res.body;
    // The integration exists, but for another provider.
    EXPECT_EQ(post("/extensions/vsts/issue-updated/", R"({"resourceContainers":{"collection":{"id":"4242"}}})").status, 400);
    EXPECT_EQ(metric(rejected("github", "no_integration")), 1);
    EXPECT_EQ(metric(rejected("vsts", "no_integration")), 1);
    expect_nothing_stored();
    expect_still_serving();
}

// Lookup keys come from decoded forms and JSON strings and may hold any bytes. One PostgreSQL
// cannot hold is a key no integration has: 400, not a 503 the provider retries for ever (invalid
// UTF-8) and not another integration's webhook (a NUL cut the key short on its way to libpq).
TEST_F(BadInput, KeysNoIntegrationCanHaveAre400) {
    db_->seed_integration(8, "slack", "T123", {"us"});
    const Headers form = {{"Content-Type", "application/x-www-form-urlencoded"}};
    for (const std::string body : {"team_id=%FF&command=%2Fsentry", "team_id=%C3%28", "team_id=T123%00x"}) {
        SCOPED_TRACE(body);
        auto res = post("/extensions/slack/commands/", body, form);
        EXPECT_EQ(res.status, 400) << res.body;
    }
    auto res = post("/extensions/github/webhook/", R"({"installation":{"id":"4242\u0000x"}})");
    EXPECT_EQ(res.status, 400) << res.body;
    EXPECT_EQ(metric(rejected("slack", "no_integration")), 3);
    EXPECT_EQ(metric(rejected("github", "no_integration")), 1);
    EXPECT_EQ(metric("outboxd_db_errors_total{component=\"ingress\"}"), 0) << daemon_->log();
    expect_nothing_stored();
    EXPECT_EQ(post("/extensions/slack/commands/", "team_id=T123&command=%2Fsentry", form).status, 202)
        << "the real team still gets through";
}

TEST_F(BadInput, DisabledIntegrationIs400) {
    db_->sql("UPDATE integration SET status = 'disabled' WHERE id = 7");
    auto res = post("/extensions/github/webhook/", kGoodBody);
    EXPECT_EQ(res.status, 400) << res.body;
    EXPECT_EQ(metric(rejected("github", "no_integration")), 1);
    expect_nothing_stored();
    db_->sql("UPDATE integration SET status = 'active' WHERE id = 7");
    expect_still_serving();
}

// More than 16 KiB of headers, as many small fields or one huge one: 431 (or the connection is
// cut while the client is still sending), and other clients are unaffected.
TEST_F(BadInput, HeaderFloodIs431) {
    std::string many;
    for (int i = 0; i < 2000; ++i) many += "X-Flood-" + std::to_string(i) + ": " + std::string(40, 'a') + "\r\n";
    std::string huge = "X-Huge: " + std::string(64 * 1024, 'b') + "\r\n";
    for (const auto& flood : {many, huge}) {
        RawConn c(ingress_);
        c.send(raw_request(flood + "Content-Length: 2\r\n", "{}"));  // may fail once the server gives up
        auto end = c.read_response(3s);
        EXPECT_NE(end, RawConn::End::timeout) << "the server answers or closes; it does not wait";
        if (!c.received().empty()) {
            EXPECT_EQ(c.status(), 431) << c.received().substr(0, 200);
        }
        EXPECT_NE(c.wait_closed(Clock::now() + 3s), RawConn::End::timeout) << "and closes the connection";
    }
    EXPECT_EQ(metric(requests("github", 431)), 2) << "both floods refused and counted, answered or not";
    EXPECT_EQ(metric(rejected("github", "header_too_large")), 2);
    expect_nothing_stored();
    expect_still_serving();
}

// 50 connections that send half a request line and stall: they cost nothing to other clients
// and are closed by the server once ingress.read_timeout (1 s) has passed.
TEST_F(BadInput, SlowlorisConnectionsTimeOutWithoutStarvingOthers) {
    std::vector<std::unique_ptr<RawConn>> slow;
    auto t0 = Clock::now();
    for (int i = 0; i < 50; ++i) {
        slow.push_back(std::make_unique<RawConn>(ingress_));
        ASSERT_TRUE(slow.back()->send("POST /extensions/github/webh"));
    }
    // Meanwhile a normal client is served promptly, several times.
    for (int i = 0; i < 3; ++i) {
        auto t = Clock::now();
        auto res = post("/extensions/github/webhook/", kGoodBody);
        EXPECT_EQ(res.status, 202) << res.body;
        EXPECT_LT(Clock::now() - t, 1s) << "request " << i;
        // The first one was served while all the stalled connections were still open.
        if (i == 0 && Clock::now() - t0 < 900ms) {
            for (auto& c : slow) EXPECT_TRUE(c->silent()) << "a stalled connection was closed early";
        }
    }
    // Every stalled connection is closed by the server within ~2 s, not before the timeout.
    int closed = 0;
    for (auto& c : slow) {
        auto end = c->wait_closed(t0 + 3s);
        EXPECT_TRUE(end == RawConn::End::eof || end == RawConn::End::reset) << "still open after 3 s";
        if (end != RawConn::End::timeout) ++closed;
    }
    auto took = Clock::now() - t0;
    EXPECT_EQ(closed, 50);
    EXPECT_GE(took, 900ms) << "closed by the read timeout, not at once";
    // Each is counted (the count follows the close, hence the wait).
    EXPECT_TRUE(wait_until([&] { return metric(requests("unknown", 408)) == 50; }, 2s))
        << metric(requests("unknown", 408));
    EXPECT_EQ(metric(rejected("unknown", "read_timeout")), 50);
    // Only the three good webhooks were stored; the stalled requests left no trace.
    EXPECT_TRUE(wait_until([&] { return us_.ok().size() == 3; }, 10s));
    EXPECT_EQ(db_->scalar("SELECT last_value FROM control_outbox_id_seq"), "3");
    for (const auto& r : us_.requests()) EXPECT_EQ(r.body, kGoodBody);
    expect_still_serving();
}

// The read deadline covers the whole request, not each read: dribbling a byte every 200 ms does
// not keep a connection open past ingress.read_timeout.
TEST_F(BadInput, DribblingClientIsCutAtReadTimeout) {
    RawConn c(ingress_);
    auto t0 = Clock::now();
    std::string request = raw_request("Content-Length: " + std::to_string(kGoodBody.size()) + "\r\n", kGoodBody);
    bool cut = false;
    for (char ch : request) {
        if (!c.send(std::string_view(&ch, 1))) {
            cut = true;
            break;
        }
        if (c.wait_closed(Clock::now() + 200ms) != RawConn::End::timeout) {
            cut = true;
            break;
        }
        if (Clock::now() - t0 > 4s) break;
    }
    auto took = Clock::now() - t0;
    EXPECT_TRUE(cut) << "the connection was not closed while dribbling";
    EXPECT_GE(took, 900ms);
    EXPECT_LT(took, 2500ms) << "closed at about ingress.read_timeout";
    expect_nothing_stored();
    expect_still_serving();
}

// The ingress writes its answers by hand (no Beast message), so their framing is checked on the
// wire: keep-alive per HTTP version, Connection: close honoured, and no Content-Length or body
// on a 204 (RFC 9110 §8.6), which a strict provider-side client would otherwise misread.
TEST_F(BadInput, AnswersFollowHttpFramingPerVersion) {
    auto request = [](const std::string& version, const std::string& event, const std::string& extra) {
        return "POST /extensions/github/webhook/ " + version + "\r\nHost: x\r\nX-GitHub-Event: " + event +
               "\r\nContent-Type: application/json\r\n" + extra + "Content-Length: " + std::to_string(kGoodBody.size()) +
               "\r\n\r\n" + kGoodBody;
    };
    auto lower = [](std::string s) {
        for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return s;
    };
    {  // HTTP/1.1: two answers on one connection, which stays open; then Connection: close ends it.
        RawConn c(ingress_);
        ASSERT_TRUE(c.send(request("HTTP/1.1", "issues", "")));
        ASSERT_EQ(c.read_response(5s), RawConn::End::done);
        ASSERT_TRUE(c.send(request("HTTP/1.1", "issues", "")));
        ASSERT_EQ(c.read_until([](const std::string& s) { return s.find("HTTP/1.1 202", 10) != std::string::npos &&
                                                              s.rfind("\r\n\r\n") > s.find("HTTP/1.1 202", 10); },
                               Clock::now() + 5s),
                  RawConn::End::done);
        auto got = lower(c.received());
        EXPECT_EQ(got.rfind("http/1.1 202 accepted\r\n", 0), 0u) << got;
        EXPECT_NE(got.find("content-length: 0\r\n"), std::string::npos) << got;
        EXPECT_EQ(got.find("connection:"), std::string::npos) << "1.1 keeps alive without saying so: " << got;
        EXPECT_TRUE(c.silent()) << "the connection stays open";
        ASSERT_TRUE(c.send(request("HTTP/1.1", "issues", "Connection: close\r\n")));
        EXPECT_EQ(c.wait_closed(Clock::now() + 5s), RawConn::End::eof);
        EXPECT_NE(lower(c.received()).find("connection: close\r\n"), std::string::npos) << c.received();
    }
    {  // HTTP/1.0 without keep-alive: answered in 1.0, then closed.
        RawConn c(ingress_);
        ASSERT_TRUE(c.send(request("HTTP/1.0", "issues", "")));
        EXPECT_EQ(c.wait_closed(Clock::now() + 5s), RawConn::End::eof);
        EXPECT_EQ(c.received().rfind("HTTP/1.0 202 Accepted\r\n", 0), 0u) << c.received();
    }
    {  // HTTP/1.0 asking for keep-alive gets it, and says so.
        RawConn c(ingress_);
        ASSERT_TRUE(c.send(request("HTTP/1.0", "issues", "Connection: keep-alive\r\n")));
        ASSERT_EQ(c.read_response(5s), RawConn::End::done);
        EXPECT_NE(lower(c.received()).find("connection: keep-alive\r\n"), std::string::npos) << c.received();
        EXPECT_TRUE(c.silent());
    }
    {  // A 204 (GitHub `installation`, answered by outboxd itself) carries no length and no body.
        RawConn c(ingress_);
        ASSERT_TRUE(c.send(request("HTTP/1.1", "installation", "")));
        ASSERT_EQ(c.read_until([](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; },
                               Clock::now() + 5s),
                  RawConn::End::done);
        auto got = lower(c.received());
        EXPECT_EQ(got.rfind("http/1.1 204 no content\r\n", 0), 0u) << got;
        EXPECT_EQ(got.find("content-length"), std::string::npos) << got;
        EXPECT_EQ(got.size(), got.find("\r\n\r\n") + 4) << "nothing after the head";
    }
    EXPECT_EQ(metric("outboxd_enqueued_total{region=\"us\"}"), 5) << "every issues webhook was stored";
}

// A provider whose connections drop mid-request gets no answer (there is no one to answer), but
// it shows: counted as incomplete_request and logged, and nothing is stored.
TEST_F(BadInput, ARequestCutOffMidwayIsCountedAsIncomplete) {
    {
        RawConn c(ingress_);
        std::string request = raw_request("Content-Length: " + std::to_string(kGoodBody.size()) + "\r\n", kGoodBody);
        ASSERT_TRUE(c.send(request.substr(0, request.size() - 10)));
    }  // closed with 10 bytes of the body missing
    EXPECT_TRUE(wait_until([&] { return metric(rejected("github", "incomplete_request")) == 1; }, 5s))
        << daemon_->log();
    {
        RawConn idle(ingress_);  // connected and closed without a byte: not a refusal
    }
    std::this_thread::sleep_for(200ms);  // the close above reaches the server
    EXPECT_EQ(metric(rejected("github", "incomplete_request")), 1);
    EXPECT_EQ(metric(rejected("unknown", "incomplete_request")), 0);
    EXPECT_NE(daemon_->log().find("reason=incomplete_request"), std::string::npos) << daemon_->log();
    expect_nothing_stored();
    expect_still_serving();
}
