// Beast server sessions as C++20 coroutines. A fresh request_parser per message enforces the body
// limit (413 before the body is read) and the header limit; the stream deadline bounds each read so
// a slowloris client only costs its own coroutine.
#include "outboxd/http/server.hpp"

#include "buffered_body.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace outboxd::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

std::pair<std::string, unsigned short> split_host_port(const std::string& listen) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("expected host:port, got '" + listen + "'");
    std::string host = listen.substr(0, colon);
    if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    int port = std::atoi(listen.c_str() + colon + 1);
    if (port <= 0 || port > 65535) throw std::invalid_argument("bad port in '" + listen + "'");
    return {host.empty() ? "0.0.0.0" : host, static_cast<unsigned short>(port)};
}

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
    asio::io_context& ioc;
    asio::thread_pool* pool;
    ServerOptions opts;
    Routes routes;
    tcp::acceptor acceptor;
    std::optional<asio::ssl::context> tls;
    std::atomic<bool> stopping{false};

    Impl(asio::io_context& c, asio::thread_pool* p, ServerOptions o, Routes r)
        : ioc(c), pool(p), opts(std::move(o)), routes(std::move(r)), acceptor(asio::make_strand(c)) {}

    static ingress::Request to_request(bhttp::request<bhttp::string_body>&& m) {
        ingress::Request r;
        r.method = std::string(m.method_string());
        r.target = std::string(m.target());
        // The absolute form (`POST http://host/path`, RFC 9112 §3.2.2), which a server must accept,
        // names the same resource as its path.
        for (std::string_view scheme : {"http://", "https://"}) {
            if (r.target.size() > scheme.size() && beast::iequals(r.target.substr(0, scheme.size()), scheme)) {
                auto slash = r.target.find_first_of("/?", scheme.size());
                r.target = slash == std::string::npos ? "/" : r.target[slash] == '?' ? "/" + r.target.substr(slash)
                                                                                        : r.target.substr(slash);
                break;
            }
        }
        for (const auto& f : m) r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        r.body = std::move(m.body());
        return r;
    }

    // The answer as wire bytes. Written by hand rather than through a Beast message: every
    // webhook gets one, and a fields container allocates per header.
    static std::string to_wire(const ingress::Response& resp, unsigned version, bool keep, bool head = false) {
        auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(resp.status));
        std::string out;
        out.reserve(128 + resp.content_type.size() + resp.body.size());
        out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
        out += std::to_string(resp.status);
        out += ' ';
        out.append(reason.data(), reason.size());
        out += "\r\nServer: outboxd\r\n";
        if (!resp.content_type.empty()) {
            out += "Content-Type: ";
            out += resp.content_type;
            out += "\r\n";
        }
        // HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes it unless told.
        if (version == 10 && keep) out += "Connection: keep-alive\r\n";
        if (version != 10 && !keep) out += "Connection: close\r\n";
        // Every 405 here is a webhook path, where only POST is served (RFC 9110 §15.5.6 wants Allow).
        if (resp.status == 405) out += "Allow: POST\r\n";
        // RFC 9110 §8.6: no Content-Length (and no content) in a 1xx, 204 or 304 answer.
        const bool bodiless = resp.status < 200 || resp.status == 204 || resp.status == 304;
        if (!bodiless) {
            out += "Content-Length: ";
            out += std::to_string(resp.body.size());
            out += "\r\n";
        }
        out += "\r\n";
        // A HEAD answer announces its length but carries no content (RFC 9110 §9.3.2).
        if (!bodiless && !head) out += resp.body;
        return out;
    }

    // Offers the request to routes.async; resumes with its reply, or with nullopt if it declined.
    awaitable<std::optional<ingress::Response>> try_async(const ingress::Request& req) {
        return asio::async_initiate<decltype(use_awaitable), void(std::optional<ingress::Response>)>(
            [this, &req](auto handler) {
                using Handler = decltype(handler);
                // The reply may come from the outbox writer's thread: resume on the session's executor.
                auto h = std::make_shared<Handler>(std::move(handler));
                auto resume = [h](std::optional<ingress::Response> r) {
                    auto ex = asio::get_associated_executor(*h);
                    asio::post(ex, [h, r = std::move(r)]() mutable { std::move(*h)(std::move(r)); });
                };
                if (!routes.async(req, [resume](ingress::Response r) { resume(std::move(r)); })) resume(std::nullopt);
            },
            use_awaitable);
    }

    awaitable<ingress::Response> answer(ingress::Request req) {
        if (routes.fast) {
            if (auto r = routes.fast(req)) co_return *r;
        }
        if (routes.async) {
            if (auto r = co_await try_async(req)) co_return std::move(*r);
        }
        if (!routes.slow) co_return ingress::Response{404, "not found\n", "text/plain"};
        if (!pool) co_return routes.slow(req);
        // Database work blocks: run it on the blocking pool, then resume this session. (A plain
        // coroutine, not a capturing coroutine lambda: GCC 12 miscompiles the latter.)
        co_return co_await asio::co_spawn(*pool, run_slow(shared_from_this(), std::move(req)), use_awaitable);
    }

    static awaitable<ingress::Response> run_slow(std::shared_ptr<Impl> self, ingress::Request req) {
        // A route that throws still answers: a client left without a status line retries blind.
        try {
            co_return self->routes.slow(req);
        } catch (const std::exception& e) {
            spdlog::error("{}: request failed target=\"{}\" error=\"{}\"", self->opts.name, req.target, e.what());
            co_return ingress::Response{503, "internal error, retry later\n", "text/plain"};
        }
    }

    template <class Stream>
    awaitable<void> serve(Stream& stream, beast::tcp_stream& lowest) {
        // Bounded: Beast keeps a chunk header or trailer line here until its end arrives, and
        // neither the header nor the body limit counts those (an endless chunk extension grew one
        // connection's buffer by hundreds of megabytes). Body bytes move on into the body as parsed.
        beast::flat_buffer buffer(opts.max_header_bytes + 64 * 1024);
        while (!stopping) {
            bhttp::request_parser<bhttp::string_body> parser;
            parser.body_limit(opts.max_body_bytes);
            parser.header_limit(static_cast<std::uint32_t>(opts.max_header_bytes));
            lowest.expires_after(opts.read_timeout);
            auto [hec, hn] = co_await bhttp::async_read_header(stream, buffer, parser, tuple_awaitable);
            (void)hn;
            beast::error_code ec = hec;
            // RFC 9112 §6.3: a Transfer-Encoding whose last coding is not chunked leaves the body's
            // length unknown. Beast reads such a request as bodiless, so the body would be read as
            // the next request (smuggling): refuse it and close.
            if (!ec && parser.get().count(bhttp::field::transfer_encoding) > 0 && !parser.chunked())
                ec = bhttp::error::bad_transfer_encoding;
            if (!ec) ec = parse_buffered_body(parser, buffer);
            if (!ec && !parser.is_done()) {
                // A client that sent Expect: 100-continue waits for this before it sends the body
                // (curl does for bodies over 1 KiB). An oversized body was refused on its header.
                if (expects_continue(parser.get())) {
                    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
                    auto [cec, cn] = co_await asio::async_write(stream, asio::buffer(kContinue), tuple_awaitable);
                    (void)cn;
                    if (cec) co_return;
                }
                auto [bec, bn] = co_await bhttp::async_read(stream, buffer, parser, tuple_awaitable);
                (void)bn;
                ec = bec;
            }
            if (ec == bhttp::error::end_of_stream || ec == asio::error::eof) co_return;
            if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit || ec == bhttp::error::bad_method ||
                ec == bhttp::error::bad_target || ec == bhttp::error::bad_version || ec == bhttp::error::bad_field ||
                ec == bhttp::error::bad_value || ec == bhttp::error::bad_content_length ||
                ec == bhttp::error::bad_chunk || ec == bhttp::error::bad_line_ending ||
                ec == bhttp::error::bad_transfer_encoding || ec == bhttp::error::multiple_content_length ||
                ec == bhttp::error::bad_chunk_extension || ec == bhttp::error::bad_obs_fold ||
                ec == bhttp::error::buffer_overflow) {
                int status = ec == bhttp::error::body_limit ? 413 : ec == bhttp::error::header_limit ? 431 : 400;
                ingress::Response r{status, std::string(ec == bhttp::error::body_limit ? "body too large" : "bad request") +
                                                ": " + ec.message() + "\n",
                                    "text/plain"};
                if (routes.refused)
                    routes.refused(status,
                                   status == 413   ? "body_too_large"
                                   : status == 431 ? "header_too_large"
                                                   : "malformed_request",
                                   ec.message(), std::string_view(parser.get().target()));
                auto wire = to_wire(r, 11, false);
                lowest.expires_after(std::chrono::seconds(5));
                co_await asio::async_write(stream, asio::buffer(wire), tuple_awaitable);
                co_return;
            }
            if (ec) {
                // Timeout or reset: nothing can be answered (a timeout has closed the socket). A
                // request begun but not finished in time (slowloris) is counted as a 408; an idle
                // keep-alive connection timing out between requests is not a refusal.
                bool begun = buffer.size() > 0 || parser.got_some();
                if (ec == beast::error::timeout && begun && routes.refused)
                    routes.refused(408, "read_timeout", "request not received within ingress.read_timeout",
                                   std::string_view(parser.get().target()));
                else if (begun && routes.refused)
                    // Closed or reset mid-request: nothing to answer, but a provider whose
                    // connections drop should show.
                    routes.refused(0, "incomplete_request", "connection ended mid-request: " + ec.message(),
                                   std::string_view(parser.get().target()));
                co_return;
            }
            auto msg = parser.release();
            if (msg.version() >= 11 && msg.find(bhttp::field::host) == msg.end()) {
                // RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400.
                if (routes.refused)
                    routes.refused(400, "malformed_request", "HTTP/1.1 request without Host", std::string_view(msg.target()));
                auto wire = to_wire({400, "bad request: no Host header\n", "text/plain"}, 11, false);
                co_await asio::async_write(stream, asio::buffer(wire), tuple_awaitable);
                co_return;
            }
            // An HTTP/1.0 message framed by Transfer-Encoding may not be followed on its
            // connection (RFC 9112 §6.1): its framing cannot be trusted by 1.0 intermediaries.
            bool keep = msg.keep_alive() && !(msg.version() < 11 && msg.count(bhttp::field::transfer_encoding) > 0);
            unsigned version = msg.version();
            bool head = msg.method() == bhttp::verb::head;
            auto resp = co_await answer(to_request(std::move(msg)));
            keep = keep && !stopping;
            auto wire = to_wire(resp, version, keep, head);
            lowest.expires_after(std::chrono::seconds(30));
            auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(wire), tuple_awaitable);
            (void)wn;
            if (wec || !keep) co_return;
        }
    }

    static bool expects_continue(const bhttp::request<bhttp::string_body>& m) {
        if (m.version() < 11) return false;
        auto it = m.find(bhttp::field::expect);
        return it != m.end() && beast::iequals(it->value(), "100-continue");
    }

    awaitable<void> session(tcp::socket sock) {
        beast::tcp_stream stream(std::move(sock));
        if (tls) {
            beast::ssl_stream<beast::tcp_stream&> s(stream, *tls);
            stream.expires_after(opts.read_timeout);
            auto [ec] = co_await s.async_handshake(asio::ssl::stream_base::server, tuple_awaitable);
            if (ec) {
                // A load balancer speaking plain HTTP to this port, an old TLS version, a client
                // giving up: nothing can be answered, but it must show.
                if (routes.refused && ec != asio::error::eof)
                    routes.refused(0, "tls_handshake", "TLS handshake failed: " + ec.message(), {});
                co_return;
            }
            co_await serve(s, stream);
            stream.expires_after(std::chrono::seconds(5));
            co_await s.async_shutdown(tuple_awaitable);
        } else {
            co_await serve(stream, stream);
            beast::error_code ec;
            stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        }
    }

    awaitable<void> accept_loop() {
        auto self = shared_from_this();
        asio::steady_timer pause(acceptor.get_executor());
        auto last_log = std::chrono::steady_clock::time_point{};
        std::uint64_t failures = 0;
        while (!stopping) {
            auto [ec, sock] = co_await acceptor.async_accept(asio::make_strand(ioc), tuple_awaitable);
            if (ec) {
                if (stopping || ec == asio::error::operation_aborted) co_return;
                // Out of descriptors (EMFILE) or kernel memory, the pending connection stays in
                // the backlog and the socket stays readable: accepting again at once spun a core
                // and wrote hundreds of thousands of lines a second. Wait, and say so once a second.
                ++failures;
                auto now = std::chrono::steady_clock::now();
                if (now - last_log >= std::chrono::seconds(1)) {
                    spdlog::warn("{}: accept failed error=\"{}\" failures={}; retrying every 100ms", opts.name,
                                 ec.message(), failures);
                    last_log = now;
                    failures = 0;
                }
                pause.expires_after(std::chrono::milliseconds(100));
                co_await pause.async_wait(tuple_awaitable);
                continue;
            }
            auto ex = sock.get_executor();
            asio::co_spawn(ex, self->session(std::move(sock)), [name = opts.name](std::exception_ptr e) {
                if (!e) return;
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& x) {
                    spdlog::warn("{}: session ended by error=\"{}\"", name, x.what());
                }
            });
        }
    }
};

Server::Server(asio::io_context& ioc, asio::thread_pool* blocking_pool, ServerOptions opts, Routes routes)
    : impl_(std::make_shared<Impl>(ioc, blocking_pool, std::move(opts), std::move(routes))) {}

Server::~Server() { stop(); }

void Server::start() {
    auto& o = impl_->opts;
    if (!o.tls_cert.empty()) {
        impl_->tls.emplace(asio::ssl::context::tls_server);
        impl_->tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                                asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                                asio::ssl::context::no_tlsv1_1);
        try {
            impl_->tls->use_certificate_chain_file(o.tls_cert);
        } catch (const std::exception& e) {
            throw std::runtime_error("ingress.tls_cert: cannot load '" + o.tls_cert + "': " + e.what());
        }
        // No passphrase is ever given: without a callback OpenSSL would prompt on the terminal for
        // an encrypted key. (The config check has refused such a key already and said why.)
        impl_->tls->set_password_callback([](std::size_t, asio::ssl::context::password_purpose) { return std::string(); });
        try {
            impl_->tls->use_private_key_file(o.tls_key, asio::ssl::context::pem);
        } catch (const std::exception& e) {
            throw std::runtime_error("ingress.tls_key: cannot load '" + o.tls_key + "': " + e.what());
        }
    }
    const std::string key = o.name + ".listen";
    std::pair<std::string, unsigned short> hp;
    try {
        hp = split_host_port(o.listen);
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(key + ": " + e.what());
    }
    auto [host, port] = hp;
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (ec) {
        // A name (localhost, the host's own name): listen on the first address it resolves to.
        tcp::resolver resolver(impl_->ioc);
        auto found = resolver.resolve(host, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
        if (ec || found.empty())
            throw std::runtime_error(key + ": cannot resolve '" + host + "'" + (ec ? ": " + ec.message() : std::string()));
        addr = found.begin()->endpoint().address();
    }
    tcp::endpoint ep(addr, port);
    auto& a = impl_->acceptor;
    a.open(ep.protocol());
    a.set_option(asio::socket_base::reuse_address(true));
    a.bind(ep, ec);
    if (ec) throw std::runtime_error(key + ": cannot listen on " + o.listen + ": " + ec.message());
    a.listen(asio::socket_base::max_listen_connections);
    asio::co_spawn(a.get_executor(), impl_->accept_loop(), asio::detached);
}

void Server::stop() {
    if (!impl_ || impl_->stopping.exchange(true)) return;
    asio::post(impl_->acceptor.get_executor(), [impl = impl_] {
        boost::system::error_code ec;
        impl->acceptor.close(ec);
    });
}

unsigned short Server::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace outboxd::http
