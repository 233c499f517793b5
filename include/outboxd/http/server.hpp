// An HTTP/1.1 server on Asio + Beast: one coroutine per connection, limits at the edge (body,
// header, read deadline), optional TLS. It knows sockets only; routes are functions it is given.
#pragma once
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "outboxd/ingress/request.hpp"

namespace outboxd::http {

struct ServerOptions {
    std::string name = "http";     // for logs
    std::string listen;            // host:port
    std::size_t max_body_bytes = 1 << 20;
    std::size_t max_header_bytes = 16 * 1024;
    std::chrono::milliseconds read_timeout{30000};
    std::string tls_cert;          // PEM files; both empty: plain HTTP
    std::string tls_key;
};

// `fast` runs on the I/O thread and may answer at once (health, metrics); when it returns
// nullopt, `slow` runs on `blocking_pool` (database work) and the session resumes with its answer.
struct Routes {
    std::function<std::optional<ingress::Response>(const ingress::Request&)> fast;
    std::function<ingress::Response(const ingress::Request&)> slow;
    // Tried on the I/O thread before `slow`, must not block: returns false to decline (the request
    // goes to `slow` on the blocking pool), or true and then calls `reply` exactly once, from any
    // thread, possibly before returning.
    std::function<bool(const ingress::Request&, std::function<void(ingress::Response)> reply)> async;
    // Told about requests refused before routing, for metrics and the log: 413 body_too_large,
    // 431 header_too_large, 400 malformed_request, 408 read_timeout (a request not completed in
    // time; the connection is closed, nothing is sent), and with status 0, for connections that
    // end with nothing to answer, incomplete_request (closed or reset mid-request) and
    // tls_handshake (a failed TLS handshake, plain HTTP sent to the TLS port among them).
    // `target` is the request target when the request line was read, else empty.
    std::function<void(int status, std::string_view reason, const std::string& why, std::string_view target)> refused;
};

class Server {
public:
    Server(boost::asio::io_context& ioc, boost::asio::thread_pool* blocking_pool, ServerOptions opts, Routes routes);
    ~Server();
    // Binds and starts accepting; throws std::runtime_error naming the address on failure.
    void start();
    // Stops accepting; open connections finish their current request.
    void stop();
    unsigned short port() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

// "127.0.0.1:8080" → (host, port); throws std::invalid_argument.
std::pair<std::string, unsigned short> split_host_port(const std::string& listen);

}  // namespace outboxd::http
