// The delivery client on its own, against a real receiver: how its pool of kept-alive
// connections is reused and retired.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <thread>

#include "outboxd/http/client.hpp"
#include "support/harness.hpp"

using namespace testsupport;
using namespace std::chrono_literals;
namespace http = outboxd::http;

namespace {
http::OutboundResult send_one(boost::asio::io_context& ioc, http::Client& client, const std::string& url) {
    http::OutboundRequest req;
    req.url = url + "/hook";
    req.body = "{}";
    req.timeout = 5s;
    std::optional<http::OutboundResult> out;
    boost::asio::co_spawn(ioc, client.send(req), [&](std::exception_ptr e, http::OutboundResult r) {
        if (!e) out = std::move(r);
    });
    ioc.restart();
    ioc.run();
    return out.value_or(http::OutboundResult{});
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
