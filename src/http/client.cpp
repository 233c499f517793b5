// Outbound HTTP for the drainer. One pool of idle keep-alive connections per destination, so a
// steady stream of deliveries costs no connect or handshake; a connection that the peer closed
// while idle is detected on reuse and the request is sent once more on a fresh one.
//
// TLS: the chain is verified against the system store or tls.ca_file and the host name (or IP
// literal) by OpenSSL itself (X509_check_host / X509_check_ip_asc, the checks Asio's
// host_name_verification makes), so a mismatch is reported as such ("hostname mismatch") rather
// than as an unspecified error. Sessions are kept per destination from OpenSSL's new-session
// callback: with TLS 1.3 the resumable session only exists once the server's NewSessionTicket has
// been read, after the handshake, so taking SSL_get1_session() at handshake time would never
// resume; and the copy kept is not the connection's own object, which OpenSSL marks unresumable
// when the connection is dropped without close_notify. A destination's TLS state (ok or failing
// with a reason) is logged on change only.
#include "outboxd/http/client.hpp"

#include "buffered_body.hpp"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url.hpp>
#include <algorithm>
#include <array>
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
    // Only scheme://authority is parsed. The rest is the request target, sent as it is: a region
    // gets the provider's path and query byte for byte, including characters a strict URI parser
    // refuses (`|`, `{`, `^`, raw UTF-8) but the ingress accepted and answered 2xx for.
    auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) return std::nullopt;
    auto target_start = url.find_first_of("/?", scheme_end + 3);
    std::string origin = url.substr(0, target_start);
    std::string rest = target_start == std::string::npos ? "" : url.substr(target_start);
    rest = rest.substr(0, rest.find('#'));  // a fragment is never sent
    auto r = boost::urls::parse_uri(origin);
    if (!r || r->has_query() || r->has_fragment() || !r->encoded_path().empty()) return std::nullopt;
    Destination d;
    // Schemes are case-insensitive (RFC 3986 3.1): an app's HTTPS://… is an https URL.
    auto scheme = r->scheme_id();
    if (scheme == boost::urls::scheme::https) d.tls = true;
    else if (scheme != boost::urls::scheme::http) return std::nullopt;
    d.host = std::string(r->host_address());
    if (d.host.empty()) return std::nullopt;
    if (d.host.size() > 2 && d.host.front() == '[') d.host = d.host.substr(1, d.host.size() - 2);
    d.port = r->has_port() ? std::string(r->port()) : (d.tls ? "443" : "80");
    d.target = rest.empty() ? "/" : rest.front() == '?' ? "/" + rest : rest;
    d.host_header = std::string(r->encoded_host_and_port());
    return d;
}

// "HTTP/1.1 200\r\n", without the space before the (empty) reason, is what some small servers
// send; curl and Python read it, Beast refuses it, and every answer of such a region counted as a
// failure (retried until dead although it said 200). The space is put back before parsing again.
bool add_missing_reason_space(beast::flat_buffer& b) {
    auto text = std::string_view(static_cast<const char*>(b.data().data()), b.size());
    auto digit = [&](std::size_t i) { return text[i] >= '0' && text[i] <= '9'; };
    if (text.size() < 14 || !text.starts_with("HTTP/1.") || text[8] != ' ' || !digit(9) || !digit(10) || !digit(11) ||
        text.substr(12, 2) != "\r\n")
        return false;
    std::string mended = std::string(text.substr(0, 12)) + " " + std::string(text.substr(12));
    if (mended.size() > b.max_size()) return false;
    b.consume(b.size());
    b.commit(asio::buffer_copy(b.prepare(mended.size()), asio::buffer(mended)));
    return true;
}

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
// What Beast's TLS stream writes of a buffer sequence as one piece (beast::flat_stream).
constexpr std::size_t kTlsGatherLimit = 16 * 1024;

// Bytes of an answer not yet parsed: the 64 KiB header limit and one read. Beast keeps a chunk
// header or trailer line here until its end arrives, and neither limit of the parser counts those:
// unbounded, one endless chunk extension from a region or an app URL took a gigabyte.
constexpr std::size_t kAnswerBufferLimit = 128 * 1024;

struct Connection {
    std::variant<std::unique_ptr<PlainStream>, std::unique_ptr<TlsStream>> stream;
    beast::flat_buffer buffer{kAnswerBufferLimit};
    std::string key;  // the destination; TLS sessions that arrive on this connection are kept under it
    std::chrono::steady_clock::time_point idle_since;
    beast::tcp_stream& lowest() {
        if (auto* p = std::get_if<std::unique_ptr<PlainStream>>(&stream)) return **p;
        return beast::get_lowest_layer(*std::get<std::unique_ptr<TlsStream>>(stream));
    }
};

// ex_data slots: the Impl on our SSL_CTX, the Connection::key on each SSL (Asio owns app_data).
int ctx_impl_index() {
    static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return idx;
}
int ssl_key_index() {
    static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return idx;
}

bool has_line_break(std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos; }

// RFC 9110 §5.6.2 tchar.
bool is_tchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

bool is_ip_literal(const std::string& host) {
    boost::system::error_code ec;
    (void)asio::ip::make_address(host, ec);
    return !ec;
}

}  // namespace

std::optional<std::string> request_head(std::string_view method, std::string_view target, std::string_view host,
                                        const ingress::Headers& headers, const ingress::Headers& more_headers,
                                        std::size_t body_size) {
    if (!is_token(method) || has_line_break(target) || target.find(' ') != std::string_view::npos ||
        has_line_break(host))
        return std::nullopt;
    // Framing and routing are this client's: a stored copy of the provider's would contradict it.
    static constexpr std::string_view own[] = {"host", "content-length", "transfer-encoding", "connection",
                                               "keep-alive", "proxy-connection", "te", "trailer", "upgrade"};
    std::string out;
    std::size_t size = method.size() + target.size() + host.size() + 64;
    for (const auto* list : {&headers, &more_headers})
        for (const auto& [k, v] : *list) size += k.size() + v.size() + 4;
    out.reserve(size);
    out.append(method);
    out += ' ';
    out.append(target);
    out += " HTTP/1.1\r\n";
    for (const auto* list : {&headers, &more_headers}) {
        for (const auto& [k, v] : *list) {
            // A name that is not a token or a value with a line break would let a stored header
            // smuggle a second request onto the connection: it is dropped, never sent.
            if (!is_token(k) || has_line_break(v)) continue;
            if (std::any_of(std::begin(own), std::end(own), [&k = k](std::string_view o) { return ingress::same_header_name(k, o); }))
                continue;
            out += k;
            out += ": ";
            out += v;
            out += "\r\n";
        }
    }
    out += "Host: ";
    out.append(host);
    out += "\r\n";
    if (body_size > 0 || !(method == "GET" || method == "HEAD")) {
        out += "Content-Length: ";
        out += std::to_string(body_size);
        out += "\r\n";
    }
    out += "\r\n";
    return out;
}

struct Client::Impl : std::enable_shared_from_this<Client::Impl> {
    asio::io_context& ioc;
    ClientOptions opts;
    metrics::Metrics* metrics;
    ssl::context tls{ssl::context::tls_client};
    std::mutex mu;
    std::map<std::string, std::deque<std::unique_ptr<Connection>>> idle;
    std::map<std::string, SSL_SESSION*> sessions;  // for resumption, per destination
    std::map<std::string, std::string> tls_failing;  // destination -> reason of its last failed handshake

    Impl(asio::io_context& c, ClientOptions o, metrics::Metrics* m) : ioc(c), opts(std::move(o)), metrics(m) {
        tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        SSL_CTX* ctx = tls.native_handle();
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        // Sessions live in `sessions` only, as private copies (see on_new_session).
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_set_ex_data(ctx, ctx_impl_index(), this);
        SSL_CTX_sess_set_new_cb(ctx, &Impl::on_new_session);
        if (opts.ca_file.empty()) {
            tls.set_default_verify_paths();
        } else {
            boost::system::error_code ec;
            tls.load_verify_file(opts.ca_file, ec);
            if (ec) throw std::runtime_error("config: tls.ca_file: cannot load '" + opts.ca_file + "': " + ec.message());
        }
        tls.set_verify_mode(ssl::verify_peer);
    }
    ~Impl() {
        SSL_CTX_set_ex_data(tls.native_handle(), ctx_impl_index(), nullptr);
        for (auto& [k, s] : sessions) SSL_SESSION_free(s);
    }

    // OpenSSL hands over each new resumable session: after a full TLS 1.2 handshake, and for each
    // TLS 1.3 NewSessionTicket (read with the first response). We keep a copy: the object itself
    // stays the connection's, and OpenSSL marks it unresumable when that connection is dropped
    // without close_notify (any Connection: close answer, an idle connection the peer closed).
    static int on_new_session(SSL* ssl, SSL_SESSION* sess) {
        auto* self = static_cast<Impl*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_impl_index()));
        auto* key = static_cast<const std::string*>(SSL_get_ex_data(ssl, ssl_key_index()));
        if (!self || !key || !SSL_SESSION_is_resumable(sess)) return 0;
        SSL_SESSION* copy = SSL_SESSION_dup(sess);
        if (!copy) return 0;
        std::lock_guard lk(self->mu);
        auto& slot = self->sessions[*key];
        if (slot) SSL_SESSION_free(slot);
        slot = copy;
        return 0;  // OpenSSL keeps its own reference to `sess`
    }

    // Offers the destination's last session (a private copy, for the reason above).
    void offer_session(const std::string& key, SSL* ssl) {
        SSL_SESSION* copy = nullptr;
        {
            std::lock_guard lk(mu);
            if (auto it = sessions.find(key); it != sessions.end()) copy = SSL_SESSION_dup(it->second);
        }
        if (!copy) return;
        SSL_set_session(ssl, copy);
        SSL_SESSION_free(copy);
    }

    void forget_session(const std::string& key) {
        std::lock_guard lk(mu);
        if (auto it = sessions.find(key); it != sessions.end()) {
            SSL_SESSION_free(it->second);
            sessions.erase(it);
        }
    }

    // Logs a destination's TLS state on change only: the first failure, a different reason, and
    // the first good handshake after failures. Never once per request.
    void note_tls_failure(const std::string& key, const std::string& reason) {
        {
            std::lock_guard lk(mu);
            auto [it, fresh] = tls_failing.try_emplace(key, reason);
            if (!fresh && it->second == reason) return;
            it->second = reason;
        }
        spdlog::warn("tls: handshake failed destination={} reason=\"{}\" (deliveries are retried; logged again on change)",
                     key, reason);
    }
    void note_tls_ok(const std::string& key) {
        {
            std::lock_guard lk(mu);
            if (tls_failing.erase(key) == 0) return;
        }
        spdlog::info("tls: handshake verified again destination={}", key);
    }

    // Each queue is ordered by idle_since, newest at the back: reuse takes the newest, and the
    // ones idle too long are closed from the front.
    std::unique_ptr<Connection> take_idle(const std::string& key) {
        std::deque<std::unique_ptr<Connection>> expired;  // closed outside the lock
        while (true) {
            std::unique_ptr<Connection> c;
            {
                std::lock_guard lk(mu);
                auto it = idle.find(key);
                if (it == idle.end()) return nullptr;
                drop_expired(it->second, std::chrono::steady_clock::now(), expired);
                if (it->second.empty()) return nullptr;
                c = std::move(it->second.back());
                it->second.pop_back();
            }
            // Every reuse looks at the socket first (one non-blocking peek): a peer may have closed
            // it while it rested, or written bytes after its answer, which the next request would
            // otherwise read as its own answer (a stray 404 dead-lettered rows the region took).
            if (!closed_by_peer(c->lowest().socket())) return c;
            expired.push_back(std::move(c));
        }
    }
    // An idle HTTP connection has nothing to read: end of stream, an error, or any byte at all (a
    // TLS close_notify, a stray answer) means it is not fit for the next request.
    static bool closed_by_peer(tcp::socket& s) {
        char byte;
        auto n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
    void put_idle(const std::string& key, std::unique_ptr<Connection> c) {
        std::deque<std::unique_ptr<Connection>> expired;
        std::lock_guard lk(mu);
        auto& q = idle[key];
        const auto now = std::chrono::steady_clock::now();
        drop_expired(q, now, expired);
        c->idle_since = now;
        if (q.size() < opts.max_idle_per_destination) q.push_back(std::move(c));
    }
    void drop_expired(std::deque<std::unique_ptr<Connection>>& q, std::chrono::steady_clock::time_point now,
                      std::deque<std::unique_ptr<Connection>>& out) {
        const auto limit = now - opts.max_idle_time;
        while (!q.empty() && q.front()->idle_since < limit) {
            out.push_back(std::move(q.front()));
            q.pop_front();
        }
    }

    awaitable<std::unique_ptr<Connection>> connect(const Destination& d, const OutboundRequest& req,
                                                   std::chrono::steady_clock::time_point deadline, OutboundResult& out) {
        auto ex = co_await asio::this_coro::executor;
        auto resolver = std::make_shared<tcp::resolver>(ex);
        // A name server that does not answer must not stretch the attempt past its deadline.
        asio::steady_timer resolve_deadline(ex, deadline);
        resolve_deadline.async_wait([weak = std::weak_ptr<tcp::resolver>(resolver)](boost::system::error_code ec) {
            if (auto r = weak.lock(); r && !ec) r->cancel();
        });
        auto [rec, endpoints] = co_await resolver->async_resolve(d.host, d.port, tuple_awaitable);
        resolve_deadline.cancel();
        if (rec) {
            bool late = rec == asio::error::operation_aborted;
            out.failure = late ? FailureKind::timeout : FailureKind::connect;
            out.error = "resolve " + d.host + ": " + (late ? std::string("no answer before the deadline") : rec.message());
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
        plain->expires_at(deadline);
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
        conn->key = d.key();
        auto s = std::make_unique<TlsStream>(std::move(*plain), tls);
        SSL* native = s->native_handle();
        SSL_set_ex_data(native, ssl_key_index(), &conn->key);
        // Host name (or IP literal) checked by OpenSSL during chain verification, so a mismatch
        // fails with X509_V_ERR_HOSTNAME_MISMATCH / IP_ADDRESS_MISMATCH; SNI for names only.
        if (is_ip_literal(d.host)) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(native), d.host.c_str());
        } else {
            SSL_set1_host(native, d.host.c_str());
            SSL_set_tlsext_host_name(native, d.host.c_str());
        }
        s->set_verify_callback(ssl::host_name_verification(d.host));
        offer_session(d.key(), native);
        auto [hec] = co_await s->async_handshake(ssl::stream_base::client, tuple_awaitable);
        if (hec) {
            if (hec == beast::error::timeout) {
                out.failure = FailureKind::timeout;
                out.error = "tls " + d.key() + ": handshake timed out after " + std::to_string(req.timeout.count()) + "ms";
                if (metrics) metrics->tls_errors.with({d.host}).inc();
                note_tls_failure(d.key(), "handshake timed out");
                co_return nullptr;
            }
            out.failure = FailureKind::tls;
            long vr = SSL_get_verify_result(native);
            std::string reason = vr != X509_V_OK ? X509_verify_cert_error_string(vr) : hec.message();
            out.error = "tls " + d.key() + ": " + hec.message();
            if (vr != X509_V_OK) out.error += " (" + reason + ")";
            if (metrics) metrics->tls_errors.with({d.host}).inc();
            forget_session(d.key());
            note_tls_failure(d.key(), reason);
            co_return nullptr;
        }
        note_tls_ok(d.key());
        spdlog::debug("tls: handshake destination={} resumed={}", d.key(), SSL_session_reused(native) == 1);
        if (metrics) metrics->tls_handshakes.with({SSL_session_reused(native) == 1 ? "true" : "false"}).inc();
        conn->stream = std::move(s);
        co_return conn;
    }

    // Sends the request and reads its final answer. Returns the error (none when a final status
    // was read) and, on success, whether the connection may be reused; on an error, whether any
    // answer byte had arrived (none: the peer may never have seen the request).
    template <class Stream>
    awaitable<std::pair<beast::error_code, bool>> exchange(Stream& s, Connection& c, const std::string& head,
                                                           const std::string& body, OutboundResult& out) {
        // One gather write: the head and the body leave in a single sendmsg. Not over TLS past
        // 16 KiB: Beast's TLS stream copies a gather write into one record only up to that size,
        // and beyond it writes what fits, then (the head consumed) a zero-length piece, which ends
        // Asio's write loop without an error, the body unsent. Two writes there.
        beast::error_code wec;
        std::size_t wn = 0;
        if (std::is_same_v<Stream, TlsStream> && head.size() + body.size() > kTlsGatherLimit) {
            auto [hec, hn] = co_await asio::async_write(s, asio::buffer(head), tuple_awaitable);
            wec = hec;
            wn = hn;
            if (!wec) {
                auto [bec, bn] = co_await asio::async_write(s, asio::buffer(body), tuple_awaitable);
                wec = bec;
                wn += bn;
            }
        } else {
            std::array<asio::const_buffer, 2> wire{asio::buffer(head), asio::buffer(body)};
            auto [gec, gn] = co_await asio::async_write(s, wire, tuple_awaitable);
            wec = gec;
            wn = gn;
        }
        // A write that ends short without an error must not pass for a sent request.
        if (!wec && wn != head.size() + body.size()) wec = asio::error::make_error_code(asio::error::connection_aborted);
        auto [rec, got] = co_await read_answer(s, c, out);
        if (wec) {
            // A peer may answer before it read the whole body (an early 413 or 401) and close,
            // which fails the write; its answer still counts. The connection is done either way.
            if (!rec) co_return std::pair{beast::error_code{}, false};
            out.status = 0;
            co_return std::pair{wec, got};
        }
        co_return std::pair{rec, got};
    }

    template <class Stream>
    awaitable<std::pair<beast::error_code, bool>> read_answer(Stream& s, Connection& c, OutboundResult& out) {
        // Interim answers (100 Continue, 103 Early Hints) may come first, asked for or not: each is
        // read and skipped, or the final answer would be left unread and taken, on this
        // connection's next request, for that request's answer.
        bool mended = false;
        for (int interim = 0;; ++interim) {
            bhttp::response_parser<bhttp::string_body> parser;
            parser.body_limit(boost::none);  // set once the status is known, see below
            parser.header_limit(64 * 1024);
            auto [hec, hn] = co_await bhttp::async_read_header(s, c.buffer, parser, tuple_awaitable);
            (void)hn;
            if (hec == bhttp::error::bad_status && !mended && add_missing_reason_space(c.buffer)) {
                mended = true;
                --interim;
                continue;
            }
            if (hec) co_return std::pair{hec, interim > 0 || parser.got_some()};
            const int status = static_cast<int>(parser.get().result_int());
            if (status >= 100 && status < 200) {
                // 101 would switch protocols, which was not asked for; a stream of interims is a broken peer.
                if (status == 101 || interim >= 16) co_return std::pair{beast::error_code(bhttp::error::bad_status), true};
                continue;
            }
            out.status = status;
            const auto& res = parser.get();
            if (auto it = res.find(bhttp::field::retry_after); it != res.end()) out.retry_after = std::string(it->value());
            // The status decides the outcome; the body is only logged (its first KiB). One larger
            // than max_response_bytes is not read: the connection is closed instead.
            auto length = parser.content_length();
            if (length && *length > opts.max_response_bytes) co_return std::pair{beast::error_code{}, false};
            parser.body_limit(opts.max_response_bytes);
            beast::error_code bec = parse_buffered_body(parser, c.buffer);
            if (!bec && !parser.is_done()) {  // an empty body is complete with the header
                auto [e, bn] = co_await bhttp::async_read(s, c.buffer, parser, tuple_awaitable);
                (void)bn;
                bec = e;
            }
            out.body_head = parser.get().body().substr(0, 1024);
            // A body that cannot be read to its end (over the limit, a malformed chunk, a stall or
            // a close midway) does not change what the status said: a 2xx that was retried for it
            // was delivered twice. The connection is closed, since where the answer ends is unknown.
            if (bec) co_return std::pair{beast::error_code{}, false};
            // Bytes after the answer were never asked for: whatever they are, the next request
            // must not read them as its answer.
            co_return std::pair{beast::error_code{}, parser.get().keep_alive() && c.buffer.size() == 0};
        }
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
        static const ingress::Headers none;
        const auto& body = req.payload();
        auto head = request_head(req.method, dest->target, dest->host_header,
                                 req.stored_headers ? *req.stored_headers : none, req.headers, body.size());
        if (!head) {
            // Retrying cannot make it sendable: permanent, like an unusable URL.
            out.failure = FailureKind::bad_url;
            out.error = "request method or target is not valid HTTP";
            co_return out;
        }

        // One deadline for the whole attempt, connect, handshake and a second round included:
        // the drainer relies on a request ending within request_timeout (see drain.lease).
        const auto deadline = t0 + req.timeout;
        // The private-address guard runs when a connection is opened, so connections opened
        // without it (region deliveries) are never lent to requests that need it (app webhooks).
        const std::string pool = req.allow_private ? dest->key() : dest->key() + " public-only";
        for (int round = 0; round < 2; ++round) {
            // The second round always connects: a peer that restarted closed every pooled
            // connection, and the next idle one would be just as dead.
            auto conn = round == 0 ? take_idle(pool) : nullptr;
            bool reused = conn != nullptr;
            if (!conn) {
                conn = co_await connect(*dest, req, deadline, out);
                if (!conn) break;
            }
            out.reused_connection = reused;
            out.failure = FailureKind::none;
            out.error.clear();
            conn->lowest().expires_at(deadline);
            std::pair<beast::error_code, bool> r;
            if (auto* p = std::get_if<std::unique_ptr<PlainStream>>(&conn->stream)) r = co_await exchange(**p, *conn, *head, body, out);
            else r = co_await exchange(*std::get<std::unique_ptr<TlsStream>>(conn->stream), *conn, *head, body, out);
            auto [ec, keep] = r;
            if (!ec) {
                if (keep) {
                    conn->lowest().expires_never();
                    put_idle(pool, std::move(conn));
                }
                break;
            }
            // A TLS-level failure (fatal alert, bad record) ends resumption of that session.
            if (ec.category() == asio::error::get_ssl_category()) forget_session(dest->key());
            out.status = 0;
            out.failure = ec == beast::error::timeout ? FailureKind::timeout : FailureKind::protocol;
            out.error = (ec == beast::error::timeout ? "timeout after " + std::to_string(req.timeout.count()) + "ms"
                                                     : "exchange with " + dest->key() + ": " + ec.message());
            // A kept-alive connection the peer closed while idle fails before any response byte:
            // send once more on a fresh connection. Timeouts are not retried here.
            bool stale = reused && !keep && ec != beast::error::timeout &&
                         (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                          ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
                          ec == ssl::error::stream_truncated);
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

std::size_t Client::reap_idle() {
    std::deque<std::unique_ptr<Connection>> closing;  // closed outside the lock
    {
        std::lock_guard lk(impl_->mu);
        const auto now = std::chrono::steady_clock::now();
        for (auto it = impl_->idle.begin(); it != impl_->idle.end();) {
            auto& q = it->second;
            impl_->drop_expired(q, now, closing);
            for (auto c = q.begin(); c != q.end();) {
                if (Impl::closed_by_peer((*c)->lowest().socket())) {
                    closing.push_back(std::move(*c));
                    c = q.erase(c);
                } else {
                    ++c;
                }
            }
            it = q.empty() ? impl_->idle.erase(it) : std::next(it);
        }
    }
    return closing.size();
}

std::size_t Client::idle_connections() const {
    std::lock_guard lk(impl_->mu);
    std::size_t n = 0;
    for (const auto& [key, q] : impl_->idle) n += q.size();
    return n;
}

}  // namespace outboxd::http
