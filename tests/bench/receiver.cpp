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
//
// Why the plain HTTP data path is hand-rolled: the bench runs on a 2-core machine where the receiver
// shares the CPU with the daemon under test, so every microsecond the receiver spends per request is
// taken from the thing being measured. Beast coroutines cost ~27 us of CPU per request; the epoll
// loop below does one epoll_wait, one recv and one send per request and parses only what the
// counters need. It is not a general HTTP server: requests must use Content-Length (the daemon
// always does), chunked bodies get a 400. TLS keeps the Beast path (handshakes and crypto dominate
// there anyway), and the stats listener and the plain-path acceptor stay on Asio: both are cold.
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http_text.hpp"
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

// One delivered request. `retry`: X-Outbox-Attempt present and not "1".
void record(bool retry, std::string_view body) {
    auto now = steady_ns();
    // Plain load first: a locked compare-exchange on every request would bounce the cache line
    // between the I/O threads for nothing once the window has started.
    if (g_stats.first_ns.load(std::memory_order_relaxed) == 0) {
        std::int64_t zero = 0;
        g_stats.first_ns.compare_exchange_strong(zero, now);
    }
    std::int64_t last = g_stats.last_ns.load(std::memory_order_relaxed);
    while (now > last && !g_stats.last_ns.compare_exchange_weak(last, now)) {
    }
    g_stats.count.fetch_add(1, std::memory_order_relaxed);
    if (retry) g_stats.retries.fetch_add(1, std::memory_order_relaxed);
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

// ---- TLS data path (Beast) -------------------------------------------------------------------

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
        auto attempt = req.find("X-Outbox-Attempt");
        record(attempt != req.end() && attempt->value() != "1", req.body());
        ok.version(req.version());
        ok.keep_alive(req.keep_alive());
        auto [wec, wn] = co_await http::async_write(stream, ok, tuple_awaitable);
        (void)wn;
        if (wec || !req.keep_alive()) co_return;
    }
}

awaitable<void> tls_session(tcp::socket sock, ssl::context& ctx) {
    sock.set_option(tcp::no_delay(true));
    beast::ssl_stream<beast::tcp_stream> stream(std::move(sock), ctx);
    auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, tuple_awaitable);
    if (hec) co_return;
    co_await serve(stream);
}

awaitable<void> tls_accept_loop(tcp::acceptor acceptor, ssl::context& tls) {
    while (true) {
        // Each connection gets its own strand-free executor from the pool: sessions spread
        // over all I/O threads.
        auto [ec, sock] = co_await acceptor.async_accept(tuple_awaitable);
        if (ec) {
            if (ec == asio::error::operation_aborted) co_return;
            continue;
        }
        auto ex = asio::make_strand(acceptor.get_executor());
        asio::co_spawn(ex, tls_session(std::move(sock), tls), asio::detached);
    }
}

// ---- Plain HTTP data path (epoll) ------------------------------------------------------------

namespace plain {

constexpr std::size_t kInitialBuffer = 16 * 1024;  // a daemon request (~2-3 KB) fits in one recv
constexpr std::size_t kMaxHead = 64 * 1024;
constexpr std::size_t kMaxBody = 64 * 1024 * 1024;

// Byte for byte what Beast wrote for the same request (version echoed, keep-alive made explicit
// only where the version's default differs), so switching paths changes nothing on the wire.
#define BENCH_OK_FIELDS "Server: bench-receiver\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
constexpr std::string_view kOk11 = "HTTP/1.1 200 OK\r\n" BENCH_OK_FIELDS "\r\nok";
constexpr std::string_view kOk11Close = "HTTP/1.1 200 OK\r\n" BENCH_OK_FIELDS "Connection: close\r\n\r\nok";
constexpr std::string_view kOk10KeepAlive = "HTTP/1.0 200 OK\r\n" BENCH_OK_FIELDS "Connection: keep-alive\r\n\r\nok";
constexpr std::string_view kOk10 = "HTTP/1.0 200 OK\r\n" BENCH_OK_FIELDS "\r\nok";
#undef BENCH_OK_FIELDS
constexpr std::string_view kBadRequest =
    "HTTP/1.1 400 Bad Request\r\nServer: bench-receiver\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

// What the counters and the reply need from a request head.
struct Head {
    std::size_t head_len = 0;  // request line + fields + blank line
    std::size_t body_len = 0;
    bool http11 = true;
    bool keep_alive = true;
    bool retry = false;
};

enum class HeadResult { ok, bad, too_large };

using bench_http::has_token;
using bench_http::iequals;
using bench_http::trim;

// `head` ends with the blank line. Malformed heads and Transfer-Encoding (we only frame by
// Content-Length) are `bad`; a body over the limit is `too_large`, which closes without a reply
// as Beast's body_limit did.
HeadResult parse_head(std::string_view head, Head& h) {
    h = Head{};
    h.head_len = head.size();
    auto eol = head.find("\r\n");
    auto line = head.substr(0, eol);
    auto sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 == 0 || sp1 == std::string_view::npos || sp2 <= sp1 + 1) return HeadResult::bad;
    auto version = line.substr(sp2 + 1);
    if (version == "HTTP/1.0") h.http11 = false;
    else if (version != "HTTP/1.1") return HeadResult::bad;

    bool conn_close = false, conn_keep_alive = false, seen_length = false, seen_attempt = false;
    for (auto pos = eol + 2;;) {
        auto end = head.find("\r\n", pos);
        if (end == pos) break;  // the blank line
        auto field = head.substr(pos, end - pos);
        pos = end + 2;
        auto colon = field.find(':');
        // No name, whitespace before the colon, or an obsolete folded line: not worth supporting.
        if (colon == 0 || colon == std::string_view::npos || field[0] == ' ' || field[0] == '\t' ||
            field[colon - 1] == ' ' || field[colon - 1] == '\t')
            return HeadResult::bad;
        auto name = field.substr(0, colon);
        auto value = trim(field.substr(colon + 1));
        if (iequals(name, "content-length")) {
            std::uint64_t n = 0;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec == std::errc::result_out_of_range) return HeadResult::too_large;
            if (ec != std::errc{} || p != value.data() + value.size() || (seen_length && n != h.body_len))
                return HeadResult::bad;
            if (n > kMaxBody) return HeadResult::too_large;
            h.body_len = static_cast<std::size_t>(n);
            seen_length = true;
        } else if (iequals(name, "transfer-encoding")) {
            return HeadResult::bad;
        } else if (iequals(name, "connection")) {
            conn_close |= has_token(value, "close");
            conn_keep_alive |= has_token(value, "keep-alive");
        } else if (!seen_attempt && iequals(name, "x-outbox-attempt")) {
            // The first occurrence counts, as with Beast's find().
            seen_attempt = true;
            h.retry = value != "1";
        }
    }
    h.keep_alive = h.http11 ? !conn_close : conn_keep_alive;
    return HeadResult::ok;
}

std::string_view reply_for(const Head& h) {
    if (h.http11) return h.keep_alive ? kOk11 : kOk11Close;
    return h.keep_alive ? kOk10KeepAlive : kOk10;
}

// One connection, owned by the worker whose epoll set holds it. Bytes [begin, end) of buf are
// received but not yet consumed; consumed requests are never copied, only skipped over.
struct Conn {
    explicit Conn(int f) : fd(f), buf(new char[kInitialBuffer]) {}
    ~Conn() { ::close(fd); }
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    int fd;
    std::unique_ptr<char[]> buf;
    std::size_t cap = kInitialBuffer, begin = 0, end = 0;
    std::size_t scanned = 0;  // where to resume looking for the blank line, so a slow head is not rescanned
    std::optional<Head> head;  // the current request's head, once complete, until its body is in
    std::string out;           // replies the kernel has not taken yet
    std::size_t out_sent = 0;
    bool close_after_write = false;
    bool want_writable = false;  // epoll interest is EPOLLOUT instead of EPOLLIN
};

// Parse and answer every complete request in the buffer (pipelining). Replies go to c.out.
// Returns false when the connection should be dropped without a reply.
bool consume(Conn& c) {
    while (!c.close_after_write) {
        if (!c.head) {
            std::string_view pending(c.buf.get() + c.begin, c.end - c.begin);
            auto from = c.scanned - c.begin;
            from = from > 3 ? from - 3 : 0;  // the blank line may straddle two reads
            auto blank = pending.find("\r\n\r\n", from);
            if (blank == std::string_view::npos) {
                c.scanned = c.end;
                return pending.size() <= kMaxHead;
            }
            if (blank + 4 > kMaxHead) return false;
            Head h;
            switch (parse_head(pending.substr(0, blank + 4), h)) {
            case HeadResult::ok: break;
            case HeadResult::too_large: return false;
            case HeadResult::bad:
                c.out.append(kBadRequest);
                c.close_after_write = true;
                return true;
            }
            c.head = h;
        }
        std::size_t total = c.head->head_len + c.head->body_len;
        if (c.end - c.begin < total) return true;
        record(c.head->retry, {c.buf.get() + c.begin + c.head->head_len, c.head->body_len});
        c.out.append(reply_for(*c.head));
        c.close_after_write = !c.head->keep_alive;  // anything pipelined after it is dropped
        c.begin += total;
        c.scanned = c.begin;
        c.head.reset();
    }
    return true;
}

// Make free space after c.end for the next recv. The unfinished request moves to the front of the
// buffer only when it would not fit where it is; the buffer grows to hold a whole large body so it
// can be searched in one piece.
void make_room(Conn& c) {
    std::size_t need = c.head ? c.head->head_len + c.head->body_len : 0;
    if (c.end < c.cap && c.begin + need <= c.cap) return;
    std::size_t used = c.end - c.begin;
    std::size_t cap = std::max(c.cap, need);
    if (used == cap) cap *= 2;  // a head still incomplete fills the buffer (bounded by kMaxHead)
    if (cap != c.cap) {
        std::unique_ptr<char[]> bigger(new char[cap]);
        std::memcpy(bigger.get(), c.buf.get() + c.begin, used);
        c.buf = std::move(bigger);
        c.cap = cap;
    } else {
        std::memmove(c.buf.get(), c.buf.get() + c.begin, used);
    }
    c.scanned -= c.begin;
    c.end = used;
    c.begin = 0;
}

// Rewind an empty buffer, and give back what a large body made it grow to.
void rewind_if_empty(Conn& c) {
    if (c.begin != c.end) return;
    c.begin = c.end = c.scanned = 0;
    if (c.cap > kInitialBuffer) {
        c.buf.reset(new char[kInitialBuffer]);
        c.cap = kInitialBuffer;
    }
}

bool watch(int epfd, Conn& c, bool writable) {
    epoll_event ev{};
    ev.events = writable ? EPOLLOUT : EPOLLIN;
    ev.data.ptr = &c;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev) != 0) return false;
    c.want_writable = writable;
    return true;
}

// Send queued replies. While the kernel will not take them, stop reading (EPOLLOUT only): a client
// that pipelines without reading cannot make us buffer without bound. Returns false to drop c.
bool flush(int epfd, Conn& c) {
    while (c.out_sent < c.out.size()) {
        auto n = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return c.want_writable || watch(epfd, c, true);
            return false;
        }
        c.out_sent += static_cast<std::size_t>(n);
    }
    c.out.clear();  // keeps its capacity: no allocation per reply
    c.out_sent = 0;
    if (c.close_after_write) {
        // FIN after the reply, as Beast's session did; the destructor closes the descriptor.
        ::shutdown(c.fd, SHUT_WR);
        return false;
    }
    return !c.want_writable || watch(epfd, c, false);
}

// One recv per readiness: level-triggered epoll reports the rest, which saves the extra recv
// that would only say EAGAIN in the common one-request-per-read case. Returns false to drop c.
bool on_readable(int epfd, Conn& c) {
    make_room(c);
    auto n = ::recv(c.fd, c.buf.get() + c.end, c.cap - c.end, 0);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.end += static_cast<std::size_t>(n);
    if (!consume(c)) return false;
    rewind_if_empty(c);
    return c.out.empty() || flush(epfd, c);
}

// One epoll set and one thread; connections never move between workers, so a connection's state
// is touched by one thread only and needs no lock.
class Worker {
public:
    Worker() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {
        if (epfd_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
    }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Called from the acceptor thread; epoll_ctl is thread-safe and the worker sees the
    // connection only through its epoll set, so this is the hand-off.
    void adopt(int fd) {
        auto* c = new Conn(fd);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) delete c;
    }

    [[noreturn]] void run() {
        epoll_event events[256];
        while (true) {
            int n = epoll_wait(epfd_, events, 256, -1);
            for (int i = 0; i < n; ++i) {
                auto* c = static_cast<Conn*>(events[i].data.ptr);
                // Errors and hang-ups surface as the failing recv/send of whichever way we watch.
                bool keep = c->want_writable ? flush(epfd_, *c) : on_readable(epfd_, *c);
                if (!keep) delete c;  // closing the descriptor also leaves the epoll set
            }
        }
    }

private:
    int epfd_;
};

// Accepted sockets go round-robin to the workers: one listener per address keeps the port
// exclusive (SO_REUSEPORT would let another process join it silently) and connections spread evenly.
struct Workers {
    std::vector<std::unique_ptr<Worker>> all;
    std::size_t next = 0;  // touched by the single acceptor thread only
    void adopt(int fd) { all[next++ % all.size()]->adopt(fd); }
};

awaitable<void> accept_loop(tcp::acceptor acceptor, Workers& workers) {
    while (true) {
        auto [ec, sock] = co_await acceptor.async_accept(tuple_awaitable);
        if (ec) {
            if (ec == asio::error::operation_aborted) co_return;
            continue;
        }
        beast::error_code opt_ec;
        sock.set_option(tcp::no_delay(true), opt_ec);
        sock.native_non_blocking(true, opt_ec);
        if (opt_ec) continue;  // the socket closes with `sock`
        int fd = sock.release(opt_ec);
        if (!opt_ec) workers.adopt(fd);
    }
}

}  // namespace plain

// ---- Stats listener (Asio, cold) -------------------------------------------------------------

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
    threads = std::max(threads, 1u);
    std::signal(SIGPIPE, SIG_IGN);
    bool use_tls = !cert.empty();
    // Plain mode: this context only accepts and serves stats, on the main thread; the data
    // threads are the epoll workers.
    asio::io_context ioc(use_tls ? static_cast<int>(threads) : 1);
    std::optional<ssl::context> tls;
    if (use_tls) {
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

    plain::Workers workers;
    std::vector<std::thread> pool;
    if (use_tls) {
        asio::co_spawn(ioc, tls_accept_loop(std::move(*v4), *tls), asio::detached);
        if (v6) asio::co_spawn(ioc, tls_accept_loop(std::move(*v6), *tls), asio::detached);
        for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&] { ioc.run(); });
    } else {
        for (unsigned i = 0; i < threads; ++i) workers.all.push_back(std::make_unique<plain::Worker>());
        for (auto& w : workers.all) pool.emplace_back([w = w.get()] { w->run(); });
        asio::co_spawn(ioc, plain::accept_loop(std::move(*v4), workers), asio::detached);
        if (v6) asio::co_spawn(ioc, plain::accept_loop(std::move(*v6), workers), asio::detached);
    }
    asio::co_spawn(ioc, stats_loop(std::move(*st)), asio::detached);
    std::cout << "receiver: listening port=" << port << " stats_port=" << sport
              << " tls=" << (use_tls ? "on" : "off") << " threads=" << threads << std::endl;
    ioc.run();
    for (auto& t : pool) t.join();
}
