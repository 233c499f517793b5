// Bench region receiver: a keep-alive HTTP(S) server that answers every POST with 200 at once,
// counts requests, and, when a body carries "bench_sent_us":<unix microseconds> (set by loadgen),
// records the age of the webhook at arrival (sent by the provider → delivered to the region).
//
//   receiver --port P [--threads N] [--tls-cert F --tls-key F] --stats-port S
//
// Statistics are served in plain HTTP on 127.0.0.1:S:
//   GET /stats  → one line of key=value: count, retries (X-Outbox-Attempt > 1), window_s (first to
//                 last delivery), rate (count / window), age_* quantiles in ms
//   POST /reset → zero everything
// The data listener binds 127.0.0.1 (and ::1 when available) so "localhost" URLs work either way.
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "latency_histogram.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

struct Stats {
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> retries{0};
    std::atomic<std::int64_t> first_ns{0};
    std::atomic<std::int64_t> last_ns{0};
    bench::Histogram ages;

    void reset() {
        count = 0;
        retries = 0;
        first_ns = 0;
        last_ns = 0;
        ages.reset();
    }
    std::string line() const {
        auto n = count.load();
        double window = static_cast<double>(last_ns.load() - first_ns.load()) / 1e9;
        char buf[256];
        std::snprintf(buf, sizeof buf, "count=%llu retries=%llu window_s=%.3f rate=%.1f ",
                      static_cast<unsigned long long>(n), static_cast<unsigned long long>(retries.load()),
                      n > 1 ? window : 0.0, n > 1 && window > 0 ? static_cast<double>(n - 1) / window : 0.0);
        return buf + ages.summary("age_") + "\n";
    }
};

Stats g_stats;

std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void record(const http::request<http::string_body>& req) {
    auto now = steady_ns();
    std::int64_t zero = 0;
    g_stats.first_ns.compare_exchange_strong(zero, now);
    std::int64_t last = g_stats.last_ns.load(std::memory_order_relaxed);
    while (now > last && !g_stats.last_ns.compare_exchange_weak(last, now)) {
    }
    g_stats.count.fetch_add(1, std::memory_order_relaxed);
    if (auto it = req.find("X-Outbox-Attempt"); it != req.end() && it->value() != "1")
        g_stats.retries.fetch_add(1, std::memory_order_relaxed);
    std::string_view body = req.body();
    constexpr std::string_view key = "\"bench_sent_us\":";
    if (auto pos = body.find(key); pos != std::string_view::npos) {
        std::int64_t sent = 0;
        const char* b = body.data() + pos + key.size();
        auto [p, ec] = std::from_chars(b, body.data() + body.size(), sent);
        if (ec == std::errc{}) {
            auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
            g_stats.ages.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now_us - sent)));
        }
    }
}

template <class Stream>
awaitable<void> serve(Stream& stream) {
    beast::flat_buffer buffer;
    http::response<http::string_body> ok{http::status::ok, 11};
    ok.set(http::field::server, "bench-receiver");
    ok.set(http::field::content_type, "text/plain");
    ok.body() = "ok";
    ok.prepare_payload();
    while (true) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(64 * 1024 * 1024);
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, tuple_awaitable);
        (void)n;
        if (ec) co_return;
        auto& req = parser.get();
        record(req);
        ok.version(req.version());
        ok.keep_alive(req.keep_alive());
        auto [wec, wn] = co_await http::async_write(stream, ok, tuple_awaitable);
        (void)wn;
        if (wec || !req.keep_alive()) co_return;
    }
}

awaitable<void> plain_session(tcp::socket sock) {
    sock.set_option(tcp::no_delay(true));
    beast::tcp_stream stream(std::move(sock));
    co_await serve(stream);
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
}

awaitable<void> tls_session(tcp::socket sock, ssl::context& ctx) {
    sock.set_option(tcp::no_delay(true));
    beast::ssl_stream<beast::tcp_stream> stream(std::move(sock), ctx);
    auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, tuple_awaitable);
    if (hec) co_return;
    co_await serve(stream);
}

awaitable<void> accept_loop(tcp::acceptor acceptor, ssl::context* tls) {
    while (true) {
        // Each connection gets its own strand-free executor from the pool: sessions spread
        // over all I/O threads.
        auto [ec, sock] = co_await acceptor.async_accept(tuple_awaitable);
        if (ec) {
            if (ec == asio::error::operation_aborted) co_return;
            continue;
        }
        auto ex = asio::make_strand(acceptor.get_executor());
        if (tls) asio::co_spawn(ex, tls_session(std::move(sock), *tls), asio::detached);
        else asio::co_spawn(ex, plain_session(std::move(sock)), asio::detached);
    }
}

awaitable<void> stats_session(tcp::socket sock) {
    beast::tcp_stream stream(std::move(sock));
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    auto [ec, n] = co_await http::async_read(stream, buffer, req, tuple_awaitable);
    (void)n;
    if (ec) co_return;
    http::response<http::string_body> res{http::status::ok, req.version()};
    if (req.target() == "/reset") {
        g_stats.reset();
        res.body() = "reset\n";
    } else if (req.target() == "/stats") {
        res.body() = g_stats.line();
    } else {
        res.result(http::status::not_found);
    }
    res.keep_alive(false);
    res.prepare_payload();
    co_await http::async_write(stream, res, tuple_awaitable);
}

awaitable<void> stats_loop(tcp::acceptor acceptor) {
    while (true) {
        auto [ec, sock] = co_await acceptor.async_accept(tuple_awaitable);
        if (ec) co_return;
        asio::co_spawn(acceptor.get_executor(), stats_session(std::move(sock)), asio::detached);
    }
}

std::optional<tcp::acceptor> listen_on(asio::io_context& ioc, const char* addr, unsigned short port) {
    try {
        tcp::endpoint ep(asio::ip::make_address(addr), port);
        tcp::acceptor a(ioc);
        a.open(ep.protocol());
        a.set_option(asio::socket_base::reuse_address(true));
        if (ep.protocol() == tcp::v6()) a.set_option(asio::ip::v6_only(true));
        a.bind(ep);
        a.listen(4096);
        return a;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace

int main(int argc, char** argv) {
    unsigned short port = 0, stats_port = 0;
    unsigned threads = 2;
    std::string cert, key;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "receiver: " << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--port") port = static_cast<unsigned short>(std::stoi(next()));
        else if (a == "--stats-port") stats_port = static_cast<unsigned short>(std::stoi(next()));
        else if (a == "--threads") threads = static_cast<unsigned>(std::stoi(next()));
        else if (a == "--tls-cert") cert = next();
        else if (a == "--tls-key") key = next();
        else {
            std::cerr << "usage: receiver --port P --stats-port S [--threads N] [--tls-cert F --tls-key F]\n";
            return 2;
        }
    }
    std::signal(SIGPIPE, SIG_IGN);
    asio::io_context ioc(static_cast<int>(threads));
    std::optional<ssl::context> tls;
    if (!cert.empty()) {
        tls.emplace(ssl::context::tls_server);
        tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3);
        tls->use_certificate_chain_file(cert);
        tls->use_private_key_file(key, ssl::context::pem);
    }
    auto v4 = listen_on(ioc, "127.0.0.1", port);
    if (!v4) {
        std::cerr << "receiver: cannot listen on 127.0.0.1:" << port << "\n";
        return 1;
    }
    port = v4->local_endpoint().port();
    auto v6 = listen_on(ioc, "::1", port);
    auto st = listen_on(ioc, "127.0.0.1", stats_port);
    if (!st) {
        std::cerr << "receiver: cannot listen on stats port " << stats_port << "\n";
        return 1;
    }
    unsigned short sport = st->local_endpoint().port();
    asio::co_spawn(ioc, accept_loop(std::move(*v4), tls ? &*tls : nullptr), asio::detached);
    if (v6) asio::co_spawn(ioc, accept_loop(std::move(*v6), tls ? &*tls : nullptr), asio::detached);
    asio::co_spawn(ioc, stats_loop(std::move(*st)), asio::detached);
    std::cout << "receiver: listening port=" << port << " stats_port=" << sport
              << " tls=" << (tls ? "on" : "off") << " threads=" << threads << std::endl;
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&] { ioc.run(); });
    ioc.run();
    for (auto& t : pool) t.join();
}
