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
    // A claimed row's stored headers and body, sent without copying them (the caller awaits the
    // send, so they outlive it). When set, they go first and `headers` holds only the additions,
    // and `body` is unused.
    const ingress::Headers* stored_headers = nullptr;
    const std::string* stored_body = nullptr;

    const std::string& payload() const { return stored_body ? *stored_body : body; }
};

// bad_url: the request can never be sent as it is (unusable URL or address, invalid method).
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
    // A connection idle for longer is closed, not reused. NAT gateways and firewalls drop idle
    // flows without a word (AWS's NAT gateway after 350 s), and a request sent on such a flow
    // fails only at its timeout, costing an attempt; a peer that closes idle connections itself
    // is noticed on reuse and costs nothing. Below the usual load-balancer limit (60 s).
    std::chrono::milliseconds max_idle_time{std::chrono::seconds(55)};
    std::size_t max_response_bytes = 1 << 20;
};

class Client {
public:
    Client(boost::asio::io_context& ioc, ClientOptions opts, metrics::Metrics* m = nullptr);
    ~Client();
    boost::asio::awaitable<OutboundResult> send(OutboundRequest req);
    // Drops idle connections (on shutdown).
    void close_idle();
    // Closes idle connections that rested past max_idle_time or that their peer closed, and
    // forgets destinations with none left; returns how many it closed. Reuse does this only for
    // the destination it reuses, so without a periodic call a destination that went quiet kept
    // its sockets (in CLOSE-WAIT once the peer gave up) for the daemon's lifetime: one app host
    // after another, toward the descriptor limit.
    std::size_t reap_idle();
    std::size_t idle_connections() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

// True for loopback, RFC 1918 private, link-local, CGNAT, unspecified and ULA addresses.
bool is_private_address(const std::string& ip);

// The request line and headers as sent: `headers` then `more_headers` in order, minus the ones that frame
// or route the request (Host, Content-Length, Transfer-Encoding, Connection and other hop-by-hop
// names, which the client writes itself) and minus any whose name is not a token or whose value
// holds CR, LF or NUL (they could smuggle a second request). nullopt when the method is not a
// token or the target holds a space or line break.
std::optional<std::string> request_head(std::string_view method, std::string_view target, std::string_view host,
                                        const ingress::Headers& headers, const ingress::Headers& more_headers,
                                        std::size_t body_size);

}  // namespace outboxd::http
