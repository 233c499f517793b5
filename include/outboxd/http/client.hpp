// The delivery client: HTTP/1.1 over plain TCP or verified TLS, with idle keep-alive connections
// pooled per destination (scheme, host, port) and TLS sessions resumed. Errors come back as
// values (status 0 + error text), never as exceptions across the async boundary.
#pragma once
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "outboxd/ingress/request.hpp"
#include "outboxd/metrics/metrics.hpp"

namespace outboxd::http {

struct OutboundRequest {
    std::string url;  // absolute: http(s)://host[:port]/path?query
    std::string method = "POST";
    ingress::Headers headers;
    std::string body;
    std::chrono::milliseconds timeout{10000};
    bool allow_private = true;  // false: refuse loopback/private/link-local destinations (SSRF guard)
};

enum class FailureKind { none, timeout, connect, tls, refused_address, bad_url, protocol };

struct OutboundResult {
    int status = 0;  // 0: no HTTP response
    FailureKind failure = FailureKind::none;
    std::string error;                       // empty on a response
    std::optional<std::string> retry_after;  // raw Retry-After header
    std::string body_head;                   // first 1 KiB of the response body
    std::chrono::steady_clock::duration elapsed{};
    bool reused_connection = false;
};

struct ClientOptions {
    std::string ca_file;             // empty: system trust store
    std::size_t max_idle_per_destination = 256;
    std::size_t max_response_bytes = 1 << 20;
};

class Client {
public:
    Client(boost::asio::io_context& ioc, ClientOptions opts, metrics::Metrics* m = nullptr);
    ~Client();
    boost::asio::awaitable<OutboundResult> send(OutboundRequest req);
    // Drops idle connections (on shutdown).
    void close_idle();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

// True for loopback, RFC 1918 private, link-local, CGNAT, unspecified and ULA addresses.
bool is_private_address(const std::string& ip);

}  // namespace outboxd::http
