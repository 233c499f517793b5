// The delivery client on its own, against a real receiver: how its pool of kept-alive
// connections is reused and retired.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <functional>
#include <thread>

#include "outboxd/http/client.hpp"
#include "support/harness.hpp"

using namespace testsupport;
using namespace std::chrono_literals;
namespace http = outboxd::http;

namespace {
// Runs one request on `ioc` to completion.
http::OutboundResult run(boost::asio::io_context& ioc, http::Client& client, http::OutboundRequest req) {
    std::optional<http::OutboundResult> out;
    boost::asio::co_spawn(ioc, client.send(std::move(req)), [&](std::exception_ptr e, http::OutboundResult r) {
        if (!e) out = std::move(r);
    });
    ioc.restart();
    ioc.run();
    return out.value_or(http::OutboundResult{});
}

http::OutboundResult send_one(boost::asio::io_context& ioc, http::Client& client, const std::string& url,
                              std::string body = "{}") {
    http::OutboundRequest req;
    req.url = url + "/hook";
    req.body = std::move(body);
    req.timeout = 3s;
    return run(ioc, client, std::move(req));
}
}  // namespace

// Reuse within max_idle_time; a connection idle for longer is closed and a new one opened, so a
// flow a NAT gateway dropped silently is never written to.
TEST(HttpClient, IdleConnectionsAreReusedOnlyWithinMaxIdleTime) {
    Receiver r;
    boost::asio::io_context ioc;
    http::ClientOptions opts;
    opts.max_idle_time = 400ms;
    http::Client client(ioc, opts);
    ASSERT_EQ(send_one(ioc, client, r.url()).status, 200);
    auto second = send_one(ioc, client, r.url());
    ASSERT_EQ(second.status, 200);
    EXPECT_TRUE(second.reused_connection);
    EXPECT_EQ(r.connections(), 1u) << "reused while fresh";
    std::this_thread::sleep_for(600ms);  // the idle time under test
    auto third = send_one(ioc, client, r.url());
    ASSERT_EQ(third.status, 200);
    EXPECT_FALSE(third.reused_connection);
    EXPECT_EQ(r.connections(), 2u) << "an expired idle connection is not reused";
    ASSERT_EQ(send_one(ioc, client, r.url()).status, 200);
    EXPECT_EQ(r.connections(), 2u) << "the new one is pooled in its turn";
}

// ---------------------------------------------------------------------------------------------
// Receivers that answer with exact bytes, for what a well-behaved server never sends.
namespace {

class ScriptedServer {
public:
    // `serve` gets each accepted connection's fd and the connection's index; it owns the fd.
    explicit ScriptedServer(std::function<void(int fd, int index)> serve) : serve_(std::move(serve)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        ::listen(fd_, 16);
        accept_ = std::thread([this] {
            for (int i = 0;; ++i) {
                int c = ::accept(fd_, nullptr, nullptr);
                if (c < 0) return;
                ++connections_;
                workers_.emplace_back([this, c, i] { serve_(c, i); });
            }
        });
    }
    ~ScriptedServer() {
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        accept_.join();
        for (auto& w : workers_) w.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    int connections() const { return connections_.load(); }

private:
    std::function<void(int, int)> serve_;
    int fd_ = -1;
    unsigned short port_ = 0;
    std::atomic<int> connections_{0};
    std::thread accept_;
    std::vector<std::thread> workers_;
};

// Reads one request's head, then `body_to_read` bytes of its body (-1: all of Content-Length).
bool read_request(int fd, long body_to_read = -1) {
    std::string got;
    char buf[65536];
    while (got.find("\r\n\r\n") == std::string::npos) {
        auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return false;
        got.append(buf, static_cast<std::size_t>(n));
    }
    auto head_end = got.find("\r\n\r\n") + 4;
    auto cl = got.find("Content-Length: ");
    long length = cl == std::string::npos ? 0 : std::stol(got.substr(cl + 16));
    long want = body_to_read < 0 ? length : std::min(length, body_to_read);
    long have = static_cast<long>(got.size() - head_end);
    while (have < want) {
        auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return false;
        have += n;
    }
    return true;
}

void write_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        auto n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return;
        off += static_cast<std::size_t>(n);
    }
}


}  // namespace

// An interim answer before the final one (100 Continue, 103 Early Hints) is skipped. Taken as
// the answer, it left the final one unread on a pooled connection, where the next request read
// it: a 503 became a 200, and the row was deleted undelivered.
TEST(HttpClient, InterimAnswersAreSkippedAndNeverPairedWithTheNextRequest) {
    ScriptedServer server([](int fd, int) {
        if (read_request(fd))
            write_all(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        if (read_request(fd)) write_all(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        ::close(fd);
    });
    boost::asio::io_context ioc;
    http::Client client(ioc, {});
    auto first = send_one(ioc, client, server.url(), "{}");
    EXPECT_EQ(first.status, 200) << first.error;
    EXPECT_EQ(first.body_head, "ok");
    auto second = send_one(ioc, client, server.url(), "{}");
    EXPECT_EQ(second.status, 503) << second.error;
    EXPECT_TRUE(second.reused_connection);
    EXPECT_EQ(server.connections(), 1);
}

// Answers whose body came with the header are parsed from what is buffered; every framing must
// still end where the answer ends: chunked, split over two writes, delimited by the close, and
// followed by bytes nobody asked for (that connection is not reused).
TEST(HttpClient, EveryBodyFramingEndsWhereTheAnswerEnds) {
    ScriptedServer server([](int fd, int index) {
        if (index == 0) {
            if (read_request(fd)) write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n");
            if (read_request(fd)) {
                write_all(fd, "HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nhello");
                std::this_thread::sleep_for(50ms);  // the rest of the body in a second segment
                write_all(fd, "world");
            }
            if (read_request(fd)) write_all(fd, "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n");
            if (read_request(fd)) write_all(fd, "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
        } else if (index == 1) {
            if (read_request(fd)) write_all(fd, "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
            if (read_request(fd)) write_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
        } else {
            if (read_request(fd)) write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        }
        ::close(fd);
    });
    boost::asio::io_context ioc;
    http::Client client(ioc, {});
    auto chunked = send_one(ioc, client, server.url());
    EXPECT_EQ(chunked.status, 200) << chunked.error;
    EXPECT_EQ(chunked.body_head, "ok!!!");
    auto split = send_one(ioc, client, server.url());
    EXPECT_EQ(split.status, 201) << split.error;
    EXPECT_EQ(split.body_head, "helloworld");
    EXPECT_TRUE(split.reused_connection);
    auto trailing = send_one(ioc, client, server.url());
    EXPECT_EQ(trailing.status, 202) << trailing.error;
    EXPECT_EQ(trailing.body_head, "ok");
    auto fresh = send_one(ioc, client, server.url());
    EXPECT_EQ(fresh.status, 204) << "the bytes after the 202 were not read as this answer";
    EXPECT_FALSE(fresh.reused_connection);
    auto to_close = send_one(ioc, client, server.url());
    EXPECT_EQ(to_close.status, 200) << to_close.error;
    EXPECT_EQ(to_close.body_head, "until the end");
    auto bad = send_one(ioc, client, server.url());
    EXPECT_EQ(bad.status, 200) << "the status decides, even when the body that follows is malformed";
    EXPECT_EQ(bad.failure, http::FailureKind::none) << bad.error;
    EXPECT_EQ(server.connections(), 3);
}

// Bytes a region writes after its answer, a moment later (a stray second answer): the next
// request on that connection must not take them for its own answer. A stray 404 dead-lettered
// rows the region had accepted.
TEST(HttpClient, BytesAfterAnAnswerAreNeverTheNextAnswer) {
    ScriptedServer server([](int fd, int index) {
        if (index == 0) {
            if (read_request(fd)) {
                write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                std::this_thread::sleep_for(20ms);
                write_all(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            }
            std::this_thread::sleep_for(500ms);  // a reused connection would read the 404
        } else if (read_request(fd)) {
            write_all(fd, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
        }
        ::close(fd);
    });
    boost::asio::io_context ioc;
    http::Client client(ioc, {});
    EXPECT_EQ(send_one(ioc, client, server.url()).status, 200);
    std::this_thread::sleep_for(100ms);  // the stray answer has arrived; well within the 1 s of a hot connection
    auto next = send_one(ioc, client, server.url());
    EXPECT_EQ(next.status, 201) << next.error;
    EXPECT_FALSE(next.reused_connection);
}

// A chunk-extension line that never ends stops the read once past the answer buffer's bound,
// instead of growing the buffer until the timeout (a gigabyte in the audit). The status line
// came before it, and the status decides.
TEST(HttpClient, AnEndlessChunkLineEndsTheReadEarly) {
    ScriptedServer server([](int fd, int) {
        if (read_request(fd)) {
            write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=");
            const std::string filler(64 * 1024, 'a');
            bool sent = true;
            for (int i = 0; i < 64 && sent; ++i) sent = ::send(fd, filler.data(), filler.size(), MSG_NOSIGNAL) >= 0;
            if (sent) std::this_thread::sleep_for(3500ms);  // still "sending": only the client's bound ends it
        }
        ::close(fd);
    });
    boost::asio::io_context ioc;
    http::Client client(ioc, {});
    auto t0 = std::chrono::steady_clock::now();
    auto res = send_one(ioc, client, server.url());
    EXPECT_EQ(res.status, 200) << res.error;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "read to the timeout";
}

// A status line without the space before an empty reason, as some small servers write it, is
// read as its status, not as a broken answer (every row of such a region died retrying).
TEST(HttpClient, AStatusLineWithoutAReasonIsRead) {
    ScriptedServer server([](int fd, int) {
        if (read_request(fd)) write_all(fd, "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok");
        if (read_request(fd)) write_all(fd, "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n");
        if (read_request(fd)) write_all(fd, "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n");
        ::close(fd);
    });
    boost::asio::io_context ioc;
    http::Client client(ioc, {});
    auto ok = send_one(ioc, client, server.url());
    EXPECT_EQ(ok.status, 200) << ok.error;
    EXPECT_EQ(ok.body_head, "ok");
    auto missing = send_one(ioc, client, server.url());
    EXPECT_EQ(missing.status, 404) << missing.error;
    EXPECT_TRUE(missing.reused_connection);
    auto bad = send_one(ioc, client, server.url());
    EXPECT_EQ(bad.status, 0) << "a four-digit status is still refused";
    EXPECT_EQ(bad.failure, http::FailureKind::protocol);
}

// The status decides; the body is only logged. A 2xx whose body is over max_response_bytes is
// delivered (not retried, which delivered it again), and its connection is not reused.
TEST(HttpClient, AnAnswerWithAHugeBodyCountsByItsStatus) {
    ScriptedServer server([](int fd, int index) {
        if (!read_request(fd)) return (void)::close(fd);
        if (index == 0) {  // announced: 100 MB
            write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n" + std::string(65536, 'x'));
        } else if (index == 1) {  // chunked, without end
            write_all(fd, "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n");
            std::string chunk = "10000\r\n" + std::string(65536, 'y') + "\r\n";
            for (int i = 0; i < 64; ++i) write_all(fd, chunk);
        } else {
            write_all(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
        ::close(fd);
    });
    boost::asio::io_context ioc;
    http::Client client(ioc, {});
    auto announced = send_one(ioc, client, server.url(), "{}");
    EXPECT_EQ(announced.status, 200) << announced.error;
    auto endless = send_one(ioc, client, server.url(), "{}");
    EXPECT_EQ(endless.status, 202) << endless.error;
    EXPECT_EQ(endless.body_head.size(), 1024u);
    auto next = send_one(ioc, client, server.url(), "{}");
    EXPECT_EQ(next.status, 404);
    EXPECT_EQ(server.connections(), 3) << "neither connection was pooled with a body half read";
}

// A region that refuses a large body early (413, 401) answers and closes before it read the
// body; the failed write must not hide that answer.
TEST(HttpClient, AnEarlyAnswerToALargeBodyIsRead) {
    ScriptedServer server([](int fd, int) {
        if (read_request(fd, 0)) {
            write_all(fd, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n");
            std::this_thread::sleep_for(50ms);
        }
        ::close(fd);  // with the body unread: the peer gets a reset
    });
    boost::asio::io_context ioc;
    http::Client client(ioc, {});
    auto r = send_one(ioc, client, server.url(), std::string(16 << 20, 'b'));
    EXPECT_EQ(r.status, 413) << r.error;
    EXPECT_EQ(r.body_head, "too big\n");
}

// A pooled connection the peer closed while it rested is found before the request is written to
// it: the peer here half-closes (FIN) and keeps reading, and must never see a second request.
TEST(HttpClient, ARestedConnectionThePeerClosedIsNotWrittenTo) {
    std::atomic<bool> second_request_on_closed{false};
    ScriptedServer server([&](int fd, int index) {
        if (read_request(fd)) write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        if (index == 0) {
            std::this_thread::sleep_for(1200ms);
            ::shutdown(fd, SHUT_WR);  // FIN, as an idle timeout closes; reading goes on
            timeval tv{2, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            if (read_request(fd)) second_request_on_closed = true;
        }
        ::close(fd);
    });
    boost::asio::io_context ioc;
    http::Client client(ioc, {});
    ASSERT_EQ(send_one(ioc, client, server.url(), "{}").status, 200);
    std::this_thread::sleep_for(1500ms);  // the rest under test
    auto r = send_one(ioc, client, server.url(), "{}");
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_FALSE(r.reused_connection);
    EXPECT_EQ(server.connections(), 2);
    EXPECT_FALSE(second_request_on_closed.load()) << "the request went out on the closed connection first";
}

// request_timeout bounds the whole attempt: a pooled connection that fails late, then a second
// round on a fresh one, share one deadline (the drainer's lease arithmetic relies on it).
TEST(HttpClient, OneDeadlineCoversTheWholeAttempt) {
    ScriptedServer server([](int fd, int index) {
        if (index == 0) {
            if (read_request(fd)) write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            if (read_request(fd)) std::this_thread::sleep_for(1200ms);  // then closes, no answer
        } else {
            if (read_request(fd)) std::this_thread::sleep_for(4s);  // never answers in time
        }
        ::close(fd);
    });
    boost::asio::io_context ioc;
    http::Client client(ioc, {});
    ASSERT_EQ(send_one(ioc, client, server.url(), "{}").status, 200);
    http::OutboundRequest req;
    req.url = server.url() + "/hook";
    req.body = "{}";
    req.timeout = 2s;
    auto t0 = std::chrono::steady_clock::now();
    auto out = run(ioc, client, req);
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(out.status, 0);
    EXPECT_EQ(out.failure, http::FailureKind::timeout) << out.error;
    EXPECT_LT(took, 2500ms) << "1.2 s on the first connection and 2 s more on the second before";
}

// The private-address guard (app webhooks with apps.allow_private_urls = false) holds for pooled
// connections too: one a region delivery left open to a loopback address is not lent to an app
// webhook for the same host and port.
TEST(HttpClient, PooledConnectionsNeverBypassThePrivateAddressGuard) {
    Receiver r;
    boost::asio::io_context ioc;
    http::Client client(ioc, {});
    ASSERT_EQ(send_one(ioc, client, r.url()).status, 200);  // allow_private: a region delivery
    http::OutboundRequest app;
    app.url = r.url() + "/app-hook";
    app.body = "{}";
    app.allow_private = false;
    auto out = run(ioc, client, app);
    EXPECT_EQ(out.status, 0);
    EXPECT_EQ(out.failure, http::FailureKind::refused_address) << out.error;
    EXPECT_EQ(r.requests().size(), 1u) << "the app request reached the loopback receiver";
    EXPECT_EQ(send_one(ioc, client, r.url()).status, 200) << "region deliveries still reuse their connection";
    EXPECT_EQ(r.connections(), 1u);
}

// Schemes are case-insensitive (RFC 3986 3.1): an app whose webhook_url reads HTTP://… was
// dead-lettered as a bad destination URL.
TEST(HttpClient, TheSchemeIsReadWhateverItsCase) {
    Receiver r;
    boost::asio::io_context ioc;
    http::Client client(ioc, http::ClientOptions{});
    auto url = r.url();
    ASSERT_EQ(url.rfind("http://", 0), 0u);
    EXPECT_EQ(send_one(ioc, client, "HTTP://" + url.substr(7)).status, 200);
    EXPECT_EQ(send_one(ioc, client, "Http://" + url.substr(7)).status, 200);
    EXPECT_EQ(r.ok().size(), 2u);
}

// Idle connections of a destination that went quiet are closed by the periodic reap, not only
// when that destination is used again (which may be never: one app host after another kept its
// sockets, in CLOSE-WAIT once the peer gave up, toward the descriptor limit).
TEST(HttpClient, IdleConnectionsOfQuietDestinationsAreReaped) {
    Receiver a, b;
    boost::asio::io_context ioc;
    http::ClientOptions opts;
    opts.max_idle_time = 300ms;
    http::Client client(ioc, opts);
    ASSERT_EQ(send_one(ioc, client, a.url()).status, 200);
    ASSERT_EQ(send_one(ioc, client, b.url()).status, 200);
    EXPECT_EQ(client.idle_connections(), 2u);
    EXPECT_EQ(client.reap_idle(), 0u) << "fresh and open: kept";
    EXPECT_EQ(client.idle_connections(), 2u);
    std::this_thread::sleep_for(400ms);  // past max_idle_time
    EXPECT_EQ(client.reap_idle(), 2u);
    EXPECT_EQ(client.idle_connections(), 0u);
}
