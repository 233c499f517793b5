// Outbound HTTP for the drainer. One pool of idle keep-alive connections per destination, so a
// steady stream of deliveries costs no connect or handshake; a connection that the peer closed
// while idle is detected on reuse and the request is sent once more on a fresh one.
#include "outboxd/http/client.hpp"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url.hpp>
#include <deque>
#include <map>
#include <mutex>
#include <variant>

namespace outboxd::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

bool is_private_address(const std::string& ip) {
    boost::system::error_code ec;
    auto a = asio::ip::make_address(ip, ec);
    if (ec) return true;
    if (a.is_v6()) {
        auto v6 = a.to_v6();
        if (v6.is_v4_mapped()) return is_private_address(asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string());
        auto b = v6.to_bytes();
        return v6.is_loopback() || v6.is_unspecified() || v6.is_link_local() || v6.is_site_local() ||
               (b[0] & 0xfe) == 0xfc || v6.is_multicast();
    }
    auto b = a.to_v4().to_bytes();
    return b[0] == 127 || b[0] == 10 || b[0] == 0 || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
           (b[0] == 192 && b[1] == 168) || (b[0] == 169 && b[1] == 254) || (b[0] == 100 && (b[1] & 0xc0) == 64) ||
           b[0] >= 224;
}

namespace {

struct Destination {
    bool tls = false;
    std::string host;
    std::string port;
    std::string target;
    std::string host_header;
    std::string key() const { return (tls ? "https://" : "http://") + host + ":" + port; }
};

std::optional<Destination> parse_url(const std::string& url) {
    auto r = boost::urls::parse_uri(url);
    if (!r) return std::nullopt;
    Destination d;
    auto scheme = r->scheme();
    if (scheme == "https") d.tls = true;
    else if (scheme != "http") return std::nullopt;
    d.host = std::string(r->host_address());
    if (d.host.empty()) return std::nullopt;
    if (d.host.size() > 2 && d.host.front() == '[') d.host = d.host.substr(1, d.host.size() - 2);
    d.port = r->has_port() ? std::string(r->port()) : (d.tls ? "443" : "80");
    d.target = std::string(r->encoded_target());
    if (d.target.empty()) d.target = "/";
    d.host_header = std::string(r->encoded_host_and_port());
    return d;
}

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

struct Connection {
    std::variant<std::unique_ptr<PlainStream>, std::unique_ptr<TlsStream>> stream;
    beast::flat_buffer buffer;
    beast::tcp_stream& lowest() {
        if (auto* p = std::get_if<std::unique_ptr<PlainStream>>(&stream)) return **p;
        return beast::get_lowest_layer(*std::get<std::unique_ptr<TlsStream>>(stream));
    }
};

}  // namespace

struct Client::Impl : std::enable_shared_from_this<Client::Impl> {
    asio::io_context& ioc;
    ClientOptions opts;
    metrics::Metrics* metrics;
    ssl::context tls{ssl::context::tls_client};
    std::mutex mu;
    std::map<std::string, std::deque<std::unique_ptr<Connection>>> idle;
    std::map<std::string, SSL_SESSION*> sessions;  // for resumption, per destination

    Impl(asio::io_context& c, ClientOptions o, metrics::Metrics* m) : ioc(c), opts(std::move(o)), metrics(m) {
        tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
        SSL_CTX_set_session_cache_mode(tls.native_handle(), SSL_SESS_CACHE_CLIENT);
        if (opts.ca_file.empty()) tls.set_default_verify_paths();
        else tls.load_verify_file(opts.ca_file);
        tls.set_verify_mode(ssl::verify_peer);
    }
    ~Impl() {
        for (auto& [k, s] : sessions) SSL_SESSION_free(s);
    }

    std::unique_ptr<Connection> take_idle(const std::string& key) {
        std::lock_guard lk(mu);
        auto it = idle.find(key);
        if (it == idle.end() || it->second.empty()) return nullptr;
        auto c = std::move(it->second.back());
        it->second.pop_back();
        return c;
    }
    void put_idle(const std::string& key, std::unique_ptr<Connection> c) {
        std::lock_guard lk(mu);
        auto& q = idle[key];
        if (q.size() < opts.max_idle_per_destination) q.push_back(std::move(c));
    }

    awaitable<std::unique_ptr<Connection>> connect(const Destination& d, const OutboundRequest& req,
                                                   OutboundResult& out) {
        auto ex = co_await asio::this_coro::executor;
        tcp::resolver resolver(ex);
        auto [rec, endpoints] = co_await resolver.async_resolve(d.host, d.port, tuple_awaitable);
        if (rec) {
            out.failure = FailureKind::connect;
            out.error = "resolve " + d.host + ": " + rec.message();
            co_return nullptr;
        }
        std::vector<tcp::endpoint> allowed;
        for (const auto& e : endpoints) {
            if (!req.allow_private && is_private_address(e.endpoint().address().to_string())) continue;
            allowed.push_back(e.endpoint());
        }
        if (allowed.empty()) {
            out.failure = FailureKind::refused_address;
            out.error = "destination " + d.host + " resolves to a private or loopback address";
            co_return nullptr;
        }
        auto conn = std::make_unique<Connection>();
        auto plain = std::make_unique<PlainStream>(ex);
        plain->expires_after(req.timeout);
        auto [cec, ep] = co_await plain->async_connect(allowed, tuple_awaitable);
        (void)ep;
        if (cec) {
            out.failure = cec == beast::error::timeout ? FailureKind::timeout : FailureKind::connect;
            out.error = "connect " + d.key() + ": " + cec.message();
            co_return nullptr;
        }
        plain->socket().set_option(tcp::no_delay(true));
        if (metrics) metrics->connections_opened.with({d.tls ? "https" : "http"}).inc();
        if (!d.tls) {
            conn->stream = std::move(plain);
            co_return conn;
        }
        auto s = std::make_unique<TlsStream>(std::move(*plain), tls);
        SSL* native = s->native_handle();
        SSL_set_tlsext_host_name(native, d.host.c_str());
        s->set_verify_callback(ssl::host_name_verification(d.host));
        {
            std::lock_guard lk(mu);
            if (auto it = sessions.find(d.key()); it != sessions.end()) SSL_set_session(native, it->second);
        }
        auto [hec] = co_await s->async_handshake(ssl::stream_base::client, tuple_awaitable);
        if (hec) {
            out.failure = hec == beast::error::timeout ? FailureKind::timeout : FailureKind::tls;
            long vr = SSL_get_verify_result(native);
            out.error = "tls " + d.key() + ": " + hec.message();
            if (vr != X509_V_OK) out.error += std::string(" (") + X509_verify_cert_error_string(vr) + ")";
            if (metrics) metrics->tls_errors.with({d.host}).inc();
            co_return nullptr;
        }
        if (SSL_SESSION* sess = SSL_get1_session(native)) {
            std::lock_guard lk(mu);
            auto& slot = sessions[d.key()];
            if (slot) SSL_SESSION_free(slot);
            slot = sess;
        }
        conn->stream = std::move(s);
        co_return conn;
    }

    template <class Stream>
    awaitable<std::pair<beast::error_code, bool>> exchange(Stream& s, Connection& c, bhttp::request<bhttp::string_body>& msg,
                                                           OutboundResult& out) {
        auto [wec, wn] = co_await bhttp::async_write(s, msg, tuple_awaitable);
        (void)wn;
        if (wec) co_return std::pair{wec, false};
        bhttp::response_parser<bhttp::string_body> parser;
        parser.body_limit(opts.max_response_bytes);
        parser.header_limit(64 * 1024);
        auto [rec, rn] = co_await bhttp::async_read(s, c.buffer, parser, tuple_awaitable);
        (void)rn;
        if (rec) co_return std::pair{rec, parser.got_some()};
        auto& res = parser.get();
        out.status = static_cast<int>(res.result_int());
        if (auto it = res.find(bhttp::field::retry_after); it != res.end()) out.retry_after = std::string(it->value());
        out.body_head = res.body().substr(0, 1024);
        co_return std::pair{beast::error_code{}, res.keep_alive()};
    }

    awaitable<OutboundResult> send(OutboundRequest req) {
        OutboundResult out;
        auto t0 = std::chrono::steady_clock::now();
        auto dest = parse_url(req.url);
        if (!dest) {
            out.failure = FailureKind::bad_url;
            out.error = "bad destination URL";
            co_return out;
        }
        bhttp::request<bhttp::string_body> msg{bhttp::string_to_verb(req.method), dest->target, 11};
        if (msg.method() == bhttp::verb::unknown) msg.method_string(req.method);
        for (const auto& [k, v] : req.headers) msg.insert(k, v);
        msg.set(bhttp::field::host, dest->host_header);
        msg.body() = std::move(req.body);
        msg.keep_alive(true);
        msg.prepare_payload();

        for (int round = 0; round < 2; ++round) {
            auto conn = take_idle(dest->key());
            bool reused = conn != nullptr;
            if (!conn) {
                conn = co_await connect(*dest, req, out);
                if (!conn) break;
            }
            out.reused_connection = reused;
            out.failure = FailureKind::none;
            out.error.clear();
            conn->lowest().expires_after(req.timeout);
            std::pair<beast::error_code, bool> r;
            if (auto* p = std::get_if<std::unique_ptr<PlainStream>>(&conn->stream)) r = co_await exchange(**p, *conn, msg, out);
            else r = co_await exchange(*std::get<std::unique_ptr<TlsStream>>(conn->stream), *conn, msg, out);
            auto [ec, keep] = r;
            if (!ec) {
                if (keep) {
                    conn->lowest().expires_never();
                    put_idle(dest->key(), std::move(conn));
                }
                break;
            }
            out.status = 0;
            out.failure = ec == beast::error::timeout ? FailureKind::timeout : FailureKind::protocol;
            out.error = (ec == beast::error::timeout ? "timeout after " + std::to_string(req.timeout.count()) + "ms"
                                                     : "exchange with " + dest->key() + ": " + ec.message());
            // A kept-alive connection the peer closed while idle fails before any response byte:
            // send once more on a fresh connection. Timeouts are not retried here.
            bool stale = reused && !keep && ec != beast::error::timeout &&
                         (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                          ec == asio::error::connection_reset || ec == asio::error::broken_pipe);
            if (!stale) break;
        }
        out.elapsed = std::chrono::steady_clock::now() - t0;
        co_return out;
    }
};

Client::Client(asio::io_context& ioc, ClientOptions opts, metrics::Metrics* m)
    : impl_(std::make_shared<Impl>(ioc, std::move(opts), m)) {}

Client::~Client() = default;

awaitable<OutboundResult> Client::send(OutboundRequest req) {
    auto impl = impl_;  // keeps the pool alive while this request runs
    co_return co_await impl->send(std::move(req));
}

void Client::close_idle() {
    std::lock_guard lk(impl_->mu);
    impl_->idle.clear();
}

}  // namespace outboxd::http
