// Bench load generator: N keep-alive connections POST GitHub-shaped, signed `push` webhooks to the
// outboxd ingress, either as fast as answers come back (closed loop, --rate 0) or at a fixed total
// rate (open loop: each connection follows its own schedule, and a late answer does not delay the
// schedule, so latency is measured from the *intended* send time — no coordinated omission).
//
//   loadgen --port P [--host 127.0.0.1] [--path /extensions/github/webhook/] [--connections 64]
//           [--threads 1] [--duration 10] [--warmup 2] [--rate 0] [--installations 1000]
//           [--installation-base 1000000] [--secret S]
//
// Each body carries "installation":{"id": base + k}, k = 1…--installations in turn (so webhooks
// spread over that many mailboxes) and "bench_sent_us": the intended send time in Unix
// microseconds, which the bench receiver turns into an end-to-end age. Prints one line of
// key=value on stdout for answers completed inside the measured window (after the warm-up).
#include <openssl/hmac.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "latency_histogram.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using Clock = std::chrono::steady_clock;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

struct Options {
    std::string host = "127.0.0.1";
    std::string port;
    std::string path = "/extensions/github/webhook/";
    int connections = 64;
    int threads = 1;
    double duration = 10;
    double warmup = 2;
    double rate = 0;
    long installations = 1000;
    long installation_base = 1000000;
    std::string secret;
};

struct Totals {
    std::atomic<std::uint64_t> ok{0}, non2xx{0}, errors{0}, sent{0};
    bench::Histogram latency;
};

Options g_opt;
Totals g_totals;
Clock::time_point g_measure_start, g_end;

std::string hex(const unsigned char* p, unsigned n) {
    static const char* d = "0123456789abcdef";
    std::string out(n * 2, '0');
    for (unsigned i = 0; i < n; ++i) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    return out;
}

std::string sign(const std::string& body) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC(EVP_sha256(), g_opt.secret.data(), static_cast<int>(g_opt.secret.size()),
         reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
    return "sha256=" + hex(mac, len);
}

// A GitHub `push` event of realistic shape and size (~1.6 KB), as in tests/fixtures/github/push.json.
std::string make_body(long installation, std::int64_t sent_us, std::uint64_t seq) {
    char buf[4096];
    int n = std::snprintf(buf, sizeof buf,
        R"({"bench_sent_us":%lld,"bench_seq":%llu,"ref":"refs/heads/main",)"
        R"("before":"9049f1265b7d61be4a8904a9a27120d2064dab3b","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",)"
        R"("repository":{"id":186853002,"node_id":"MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=","name":"hello-world",)"
        R"("full_name":"octo-org/hello-world","private":false,"owner":{"name":"octo-org","login":"octo-org",)"
        R"("id":6811672,"type":"Organization"},"html_url":"https://github.com/octo-org/hello-world","default_branch":"main"},)"
        R"("pusher":{"name":"octocat","email":"octocat@github.com"},"sender":{"login":"octocat","id":583231,"type":"User"},)"
        R"("installation":{"id":%ld,"node_id":"MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMjMxMTIxMw=="},)"
        R"("created":false,"deleted":false,"forced":false,)"
        R"("compare":"https://github.com/octo-org/hello-world/compare/9049f1265b7d...0d1a26e67d8f",)"
        R"("commits":[{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","tree_id":"f9d2a07e9488b91af2641b26b9407fe22a451433",)"
        R"("distinct":true,"message":"Fix SENTRY-1A2 crash on empty config","timestamp":"2024-03-14T10:07:39+01:00",)"
        R"("url":"https://github.com/octo-org/hello-world/commit/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",)"
        R"("author":{"name":"Mona Octocat","email":"octocat@github.com","username":"octocat"},)"
        R"("committer":{"name":"GitHub","email":"noreply@github.com","username":"web-flow"},)"
        R"("added":[],"removed":[],"modified":["src/config.c"]}],)"
        R"("head_commit":{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","message":"Fix SENTRY-1A2 crash on empty config",)"
        R"("timestamp":"2024-03-14T10:07:39+01:00"}})",
        static_cast<long long>(sent_us), static_cast<unsigned long long>(seq), installation);
    return std::string(buf, static_cast<std::size_t>(n));
}

std::int64_t unix_us(Clock::time_point t) {
    // Map a steady time point to wall-clock microseconds (the receiver compares with its own clock).
    auto wall = std::chrono::system_clock::now() + (t - Clock::now());
    return std::chrono::duration_cast<std::chrono::microseconds>(wall.time_since_epoch()).count();
}

awaitable<void> connection(int idx, tcp::resolver::results_type endpoints) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    std::optional<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
    const auto interval = g_opt.rate > 0 ? std::chrono::nanoseconds(static_cast<std::int64_t>(
                                               1e9 * g_opt.connections / g_opt.rate))
                                         : std::chrono::nanoseconds(0);
    // Stagger the schedules so that the connections do not fire in lock-step.
    auto next = Clock::now() + interval * idx / std::max(1, g_opt.connections);
    std::uint64_t seq = static_cast<std::uint64_t>(idx) << 40;
    long k = idx;
    while (true) {
        auto now = Clock::now();
        if (now >= g_end) break;
        Clock::time_point intended = now;
        if (g_opt.rate > 0) {
            if (next > now) {
                timer.expires_at(next);
                co_await timer.async_wait(tuple_awaitable);
            }
            intended = next;
            next += interval;
            if (intended >= g_end) break;
        }
        if (!stream) {
            stream.emplace(ex);
            auto [cec, ep] = co_await stream->async_connect(endpoints, tuple_awaitable);
            (void)ep;
            if (cec) {
                g_totals.errors.fetch_add(1, std::memory_order_relaxed);
                stream.reset();
                timer.expires_after(std::chrono::milliseconds(10));
                co_await timer.async_wait(tuple_awaitable);
                continue;
            }
            stream->socket().set_option(tcp::no_delay(true));
            buffer.clear();
        }
        long installation = g_opt.installation_base + 1 + (k % g_opt.installations);
        k += g_opt.connections;
        http::request<http::string_body> req{http::verb::post, g_opt.path, 11};
        req.set(http::field::host, g_opt.host + ":" + g_opt.port);
        req.set(http::field::user_agent, "GitHub-Hookshot/bench");
        req.set(http::field::content_type, "application/json");
        req.set("X-GitHub-Event", "push");
        req.set("X-GitHub-Delivery", std::to_string(seq));
        req.set("X-GitHub-Hook-ID", "292430182");
        req.body() = make_body(installation, unix_us(intended), seq++);
        if (!g_opt.secret.empty()) req.set("X-Hub-Signature-256", sign(req.body()));
        req.keep_alive(true);
        req.prepare_payload();
        g_totals.sent.fetch_add(1, std::memory_order_relaxed);
        stream->expires_after(std::chrono::seconds(30));
        auto [wec, wn] = co_await http::async_write(*stream, req, tuple_awaitable);
        (void)wn;
        http::response<http::string_body> res;
        beast::error_code rec;
        if (!wec) {
            auto [e, rn] = co_await http::async_read(*stream, buffer, res, tuple_awaitable);
            (void)rn;
            rec = e;
        }
        auto done = Clock::now();
        bool measured = done >= g_measure_start && done <= g_end;
        if (wec || rec) {
            if (measured) g_totals.errors.fetch_add(1, std::memory_order_relaxed);
            stream.reset();
            continue;
        }
        if (measured) {
            if (res.result_int() / 100 == 2) {
                g_totals.ok.fetch_add(1, std::memory_order_relaxed);
                g_totals.latency.record(static_cast<std::uint64_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(done - intended).count()));
            } else {
                g_totals.non2xx.fetch_add(1, std::memory_order_relaxed);
            }
        }
        if (!res.keep_alive()) stream.reset();
    }
    if (stream) {
        beast::error_code ec;
        stream->socket().shutdown(tcp::socket::shutdown_both, ec);
    }
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "loadgen: " << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--host") g_opt.host = next();
        else if (a == "--port") g_opt.port = next();
        else if (a == "--path") g_opt.path = next();
        else if (a == "--connections") g_opt.connections = std::stoi(next());
        else if (a == "--threads") g_opt.threads = std::stoi(next());
        else if (a == "--duration") g_opt.duration = std::stod(next());
        else if (a == "--warmup") g_opt.warmup = std::stod(next());
        else if (a == "--rate") g_opt.rate = std::stod(next());
        else if (a == "--installations") g_opt.installations = std::stol(next());
        else if (a == "--installation-base") g_opt.installation_base = std::stol(next());
        else if (a == "--secret") g_opt.secret = next();
        else {
            std::cerr << "loadgen: unknown option " << a << "\n";
            return 2;
        }
    }
    if (g_opt.port.empty() || g_opt.connections < 1 || g_opt.installations < 1) {
        std::cerr << "usage: loadgen --port P [--connections N] [--duration S] [--warmup S] [--rate R] ...\n";
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    asio::io_context ioc(g_opt.threads);
    tcp::resolver resolver(ioc);
    auto endpoints = resolver.resolve(g_opt.host, g_opt.port);
    auto start = Clock::now();
    g_measure_start = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(g_opt.warmup));
    g_end = g_measure_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(g_opt.duration));
    for (int c = 0; c < g_opt.connections; ++c)
        asio::co_spawn(asio::make_strand(ioc), connection(c, endpoints), asio::detached);
    std::vector<std::thread> pool;
    for (int t = 1; t < g_opt.threads; ++t) pool.emplace_back([&] { ioc.run(); });
    ioc.run();
    for (auto& t : pool) t.join();
    char head[256];
    std::snprintf(head, sizeof head, "sent=%llu ok=%llu non2xx=%llu errors=%llu duration_s=%.3f rate=%.1f target_rate=%.1f ",
                  static_cast<unsigned long long>(g_totals.sent.load()),
                  static_cast<unsigned long long>(g_totals.ok.load()),
                  static_cast<unsigned long long>(g_totals.non2xx.load()),
                  static_cast<unsigned long long>(g_totals.errors.load()), g_opt.duration,
                  static_cast<double>(g_totals.ok.load()) / g_opt.duration, g_opt.rate);
    std::cout << head << g_totals.latency.summary("") << std::endl;
    return 0;
}
