// Bench load generator: N keep-alive connections POST GitHub-shaped, signed `push` webhooks to the
// outboxd ingress, either as fast as answers come back (closed loop, --rate 0) or at a fixed total
// rate (open loop: each connection follows its own schedule, and a late answer does not delay the
// schedule, so latency is measured from the *intended* send time — no coordinated omission).
//
//   loadgen --port P [--host 127.0.0.1] [--path /extensions/github/webhook/] [--connections 64]
//           [--threads 1] [--duration 10] [--warmup 2] [--rate 0] [--installations 1000]
//           [--installation-base 1000000] [--secret S] [--schedule per-connection|shared]
//
// Open loop, two schedules. per-connection (wrk2's): each connection sends every
// connections/rate seconds, so one slow answer makes the following requests of that connection
// late, even while others sit idle. shared: each thread releases its share of the rate on one
// schedule and any idle connection of the thread takes the next due request; requests queue only
// when every connection is busy. That is a provider with a pool of senders, which does not hold a
// webhook back behind an unrelated slow one. Both measure from the intended send time.
//
// Each body carries "installation":{"id": base + k}, k = 1…--installations in turn (so webhooks
// spread over that many mailboxes) and "bench_sent_us": the intended send time in Unix
// microseconds, which the bench receiver turns into an end-to-end age. Prints one line of
// key=value on stdout for answers completed inside the measured window (after the warm-up).
//
// Why it is hand-rolled on epoll rather than Beast coroutines: the bench runs on a 2-core machine
// where the load generator shares the CPU with the daemon and PostgreSQL, so every microsecond it
// spends per request is taken from the thing being measured. Beast coroutines cost ~26 us of CPU
// per request at the bench's closed-loop rate (0.35 of a core at 14k req/s); this loop ~11 us, most
// of it the kernel's loopback TCP and the HMAC of the body, which differs per request.
// The design is the bench receiver's plain path: each thread owns a fixed subset of the connections
// in its own epoll set, so no state is shared or locked; a request is one send of bytes assembled
// from constant pieces (no allocation, no header map) and its answer one recv per readiness, parsed
// only as far as the counters need (status, framing, keep-alive). Timers are the epoll_wait timeout
// of the earliest due connection, with microsecond resolution and no timer slack: open-loop latency
// is measured from the schedule, so a late wake-up would show up in it. Counters are per thread and
// added up at the end; latencies go straight into the shared lock-free histogram.
// As before, no request starts after the end time, but answers in flight are awaited (uncounted,
// within the 30 s request timeout) before the connections close, so the server is not cut off
// mid-request.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <ctime>
#include <iostream>
#include <memory>
#include <queue>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http_text.hpp"
#include "latency_histogram.hpp"

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

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
    bool shared_schedule = false;
};

struct Totals {
    std::atomic<std::uint64_t> ok{0}, non2xx{0}, errors{0}, sent{0};
    bench::Histogram latency;
};

Options g_opt;
Totals g_totals;
Clock::time_point g_start, g_measure_start, g_end;

struct Address {
    sockaddr_storage addr{};
    socklen_t len = 0;
    int family = AF_INET;
};
std::vector<Address> g_addrs;  // tried in order by each connect, as Asio's range connect did

constexpr auto kRequestTimeout = 30s;  // the Beast stream's expiry, write and read together
constexpr auto kConnectRetry = 10ms;
constexpr auto kSweepEvery = 1s;
constexpr std::size_t kRecvBuffer = 64 * 1024;
constexpr std::size_t kMaxHead = 64 * 1024;
constexpr std::size_t kMaxLine = 4096;  // a chunk-size or trailer line

std::int64_t unix_us(Clock::time_point t) {
    // Map a steady time point to wall-clock microseconds (the receiver compares with its own clock).
    auto wall = std::chrono::system_clock::now() + (t - Clock::now());
    return std::chrono::duration_cast<std::chrono::microseconds>(wall.time_since_epoch()).count();
}

// ---- Request bytes ---------------------------------------------------------------------------

// A GitHub `push` event of realistic shape and size (~1.5 KB), as in tests/fixtures/github/push.json:
// kBody0 sent_us kBody1 seq kBody2 installation kBody3. Byte for byte what the snprintf format of
// the Beast version produced; copying constant pieces is several times cheaper than formatting.
constexpr std::string_view kBody0 = R"({"bench_sent_us":)";
constexpr std::string_view kBody1 = R"(,"bench_seq":)";
constexpr std::string_view kBody2 =
    R"(,"ref":"refs/heads/main",)"
    R"("before":"9049f1265b7d61be4a8904a9a27120d2064dab3b","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",)"
    R"("repository":{"id":186853002,"node_id":"MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=","name":"hello-world",)"
    R"("full_name":"octo-org/hello-world","private":false,"owner":{"name":"octo-org","login":"octo-org",)"
    R"("id":6811672,"type":"Organization"},"html_url":"https://github.com/octo-org/hello-world","default_branch":"main"},)"
    R"("pusher":{"name":"octocat","email":"octocat@github.com"},"sender":{"login":"octocat","id":583231,"type":"User"},)"
    R"("installation":{"id":)";
constexpr std::string_view kBody3 =
    R"(,"node_id":"MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMjMxMTIxMw=="},)"
    R"("created":false,"deleted":false,"forced":false,)"
    R"("compare":"https://github.com/octo-org/hello-world/compare/9049f1265b7d...0d1a26e67d8f",)"
    R"("commits":[{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","tree_id":"f9d2a07e9488b91af2641b26b9407fe22a451433",)"
    R"("distinct":true,"message":"Fix SENTRY-1A2 crash on empty config","timestamp":"2024-03-14T10:07:39+01:00",)"
    R"("url":"https://github.com/octo-org/hello-world/commit/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",)"
    R"("author":{"name":"Mona Octocat","email":"octocat@github.com","username":"octocat"},)"
    R"("committer":{"name":"GitHub","email":"noreply@github.com","username":"web-flow"},)"
    R"("added":[],"removed":[],"modified":["src/config.c"]}],)"
    R"("head_commit":{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","message":"Fix SENTRY-1A2 crash on empty config",)"
    R"("timestamp":"2024-03-14T10:07:39+01:00"}})";
constexpr std::size_t kMaxInt = 24;  // digits and sign of any 64-bit integer, with room to spare
constexpr std::size_t kMaxBody = kBody0.size() + kBody1.size() + kBody2.size() + kBody3.size() + 3 * kMaxInt;

// The fields in the order, spelling and case Beast wrote them (it adds no Connection field for a
// keep-alive HTTP/1.1 request); the first part is fixed for the run. Signature and Content-Length
// follow the Delivery ID.
constexpr std::string_view kHookId = "\r\nX-GitHub-Hook-ID: 292430182\r\n";
constexpr std::string_view kSignature = "X-Hub-Signature-256: sha256=";
constexpr std::string_view kLength = "Content-Length: ";
constexpr std::size_t kHexMac = 64;
constexpr std::size_t kMaxHeadTail =
    kMaxInt + kHookId.size() + kSignature.size() + kHexMac + 2 + kLength.size() + kMaxInt + 4;

std::string head_prefix() {
    return "POST " + g_opt.path + " HTTP/1.1\r\nHost: " + g_opt.host + ":" + g_opt.port +
           "\r\nUser-Agent: GitHub-Hookshot/bench\r\nContent-Type: application/json\r\n"
           "X-GitHub-Event: push\r\nX-GitHub-Delivery: ";
}

char* put(char* p, std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
}

template <class Int>
char* put_int(char* p, Int v) {
    return std::to_chars(p, p + kMaxInt, v).ptr;
}

// HMAC-SHA256 with the key set up once per thread: re-initialising a keyed EVP_MAC context only
// restores the precomputed inner and outer digests, where one-shot HMAC() fetches the digest,
// allocates a context and hashes the key padding on every call.
class Signer {
public:
    explicit Signer(const std::string& key) {
        if (key.empty()) return;
        mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
        ctx_ = mac_ ? EVP_MAC_CTX_new(mac_) : nullptr;
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
        if (!ctx_ || !EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params))
            throw std::runtime_error("loadgen: cannot set up HMAC-SHA256");
    }
    ~Signer() {
        EVP_MAC_CTX_free(ctx_);
        EVP_MAC_free(mac_);
    }
    Signer(const Signer&) = delete;
    Signer& operator=(const Signer&) = delete;

    bool enabled() const { return ctx_ != nullptr; }

    // Writes the kHexMac lowercase hex digits of the MAC of [data, data + n) to out.
    void sign(const char* data, std::size_t n, char* out) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        std::size_t len = 0;
        if (!EVP_MAC_init(ctx_, nullptr, 0, nullptr) ||
            !EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(data), n) ||
            !EVP_MAC_final(ctx_, mac, &len, sizeof mac) || len * 2 != kHexMac)
            throw std::runtime_error("loadgen: HMAC-SHA256 failed");
        static constexpr char d[] = "0123456789abcdef";
        for (std::size_t i = 0; i < len; ++i) {
            out[2 * i] = d[mac[i] >> 4];
            out[2 * i + 1] = d[mac[i] & 15];
        }
    }

private:
    EVP_MAC* mac_ = nullptr;
    EVP_MAC_CTX* ctx_ = nullptr;
};

// ---- Answer parsing --------------------------------------------------------------------------

using bench_http::has_token;
using bench_http::iequals;
using bench_http::last_token;
using bench_http::trim;

// Where the reading of one answer stands. Consumed bytes are forgotten: a body is skipped, never kept.
struct Response {
    enum class Phase : std::uint8_t { head, length, chunk_size, chunk_data, trailer, until_eof, done };
    Phase phase = Phase::head;
    std::uint64_t remaining = 0;  // length / chunk_data: bytes still to skip (chunk data with its CRLF)
    std::size_t scanned = 0;      // head: bytes already searched for the blank line
    int status = 0;
    bool keep_alive = true;
};

enum class Parse { more, done, error };

// `head`: status line and fields, each ending with CRLF. Sets status, keep-alive and the framing
// of the body the way Beast's parser reads it: none for 1xx, 204 and 304; chunked wins over a
// Content-Length; neither means the body runs to the close.
bool parse_head(std::string_view head, Response& r) {
    auto eol = head.find("\r\n");
    auto line = head.substr(0, eol);
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || (line[7] != '0' && line[7] != '1') ||
        line[8] != ' ' || (line.size() > 12 && line[12] != ' '))
        return false;
    bool http11 = line[7] == '1';
    int status = 0;
    for (std::size_t i = 9; i < 12; ++i) {
        if (line[i] < '0' || line[i] > '9') return false;
        status = status * 10 + (line[i] - '0');
    }
    bool conn_close = false, conn_keep_alive = false, chunked = false, seen_length = false;
    std::uint64_t length = 0;
    for (auto pos = eol + 2; pos < head.size();) {
        auto end = head.find("\r\n", pos);
        auto field = head.substr(pos, end - pos);
        pos = end + 2;
        auto colon = field.find(':');
        if (colon == 0 || colon == std::string_view::npos || field[0] == ' ' || field[0] == '\t' ||
            field[colon - 1] == ' ' || field[colon - 1] == '\t')
            return false;
        auto name = field.substr(0, colon);
        auto value = trim(field.substr(colon + 1));
        if (iequals(name, "content-length")) {
            std::uint64_t n = 0;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec != std::errc{} || p != value.data() + value.size() || (seen_length && n != length)) return false;
            length = n;
            seen_length = true;
        } else if (iequals(name, "transfer-encoding")) {
            chunked = iequals(last_token(value), "chunked");
        } else if (iequals(name, "connection")) {
            conn_close |= has_token(value, "close");
            conn_keep_alive |= has_token(value, "keep-alive");
        }
    }
    r.status = status;
    if (status / 100 == 1 || status == 204 || status == 304) r.phase = Response::Phase::done;
    else if (chunked) r.phase = Response::Phase::chunk_size;
    else if (seen_length) {
        r.remaining = length;
        r.phase = length ? Response::Phase::length : Response::Phase::done;
    } else r.phase = Response::Phase::until_eof;
    r.keep_alive = (http11 ? !conn_close : conn_keep_alive) && r.phase != Response::Phase::until_eof;
    return true;
}

// Reads what it can of one answer from `in` (which starts where the previous call stopped
// consuming); `used` is how much of `in` it consumed. An unfinished head or chunk line is left
// unconsumed, for the caller to keep and present again with the next bytes.
Parse parse(Response& r, std::string_view in, std::size_t& used) {
    using P = Response::Phase;
    std::size_t pos = 0;
    Parse result = Parse::more;
    while (true) {
        switch (r.phase) {
        case P::head: {
            std::size_t from = r.scanned > 3 ? r.scanned - 3 : 0;  // the blank line may straddle reads
            auto blank = in.find("\r\n\r\n", from);
            if (blank == std::string_view::npos) {
                r.scanned = in.size();
                result = in.size() > kMaxHead ? Parse::error : Parse::more;
                break;
            }
            if (blank + 4 > kMaxHead || !parse_head(in.substr(0, blank + 2), r)) {
                result = Parse::error;
                break;
            }
            pos = blank + 4;
            continue;
        }
        case P::length:
        case P::chunk_data: {
            auto take = std::min<std::uint64_t>(r.remaining, in.size() - pos);
            pos += static_cast<std::size_t>(take);
            r.remaining -= take;
            if (r.remaining > 0) break;
            r.phase = r.phase == P::length ? P::done : P::chunk_size;
            continue;
        }
        case P::chunk_size: {
            auto eol = in.find("\r\n", pos);
            if (eol == std::string_view::npos) {
                if (in.size() - pos > kMaxLine) result = Parse::error;
                break;
            }
            auto line = in.substr(pos, eol - pos);
            std::uint64_t size = 0;
            auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
            auto rest = trim(line.substr(static_cast<std::size_t>(p - line.data())));
            if (ec != std::errc{} || (!rest.empty() && rest.front() != ';') || size > (1ull << 48)) {
                result = Parse::error;
                break;
            }
            pos = eol + 2;
            if (size == 0) {
                r.phase = P::trailer;
            } else {
                r.remaining = size + 2;
                r.phase = P::chunk_data;
            }
            continue;
        }
        case P::trailer: {
            auto eol = in.find("\r\n", pos);
            if (eol == std::string_view::npos) {
                if (in.size() - pos > kMaxLine) result = Parse::error;
                break;
            }
            bool blank = eol == pos;
            pos = eol + 2;
            if (blank) r.phase = P::done;
            continue;
        }
        case P::until_eof:
            pos = in.size();
            break;
        case P::done:
            result = Parse::done;
            break;
        }
        break;
    }
    used = pos;
    return result;
}

// ---- Connections and workers -----------------------------------------------------------------

enum class State : std::uint8_t {
    waiting,     // for `due` (the schedule, or the pause after a failed connect); fd may be open, idle
    connecting,  // non-blocking connect under way, epoll interest EPOLLOUT
    sending,     // the kernel did not take the whole request; the rest is in `pending`, EPOLLOUT
    receiving,   // request sent, reading the answer, EPOLLIN
    stopped,     // past the end time; fd closed
};

struct Conn {
    int idx = 0;                 // 0 … --connections - 1
    int fd = -1;
    std::uint32_t events = 0;    // current epoll interest; 0 while not in the epoll set
    State state = State::waiting;
    std::size_t addr = 0;        // index in g_addrs of the address the current connect tries
    Clock::time_point next;      // open loop: this connection's next slot
    Clock::time_point due;       // waiting: when to go on
    Clock::time_point intended;  // the current request's intended send time
    Clock::time_point deadline;  // connecting / sending / receiving: give up then
    std::uint64_t seq = 0;
    long k = 0;
    std::string pending;         // request bytes not yet taken by the kernel (rare)
    std::string carry;           // received bytes not yet consumed: an unfinished head or chunk line
    Response res;
};

struct Counts {
    std::uint64_t ok = 0, non2xx = 0, errors = 0, sent = 0;
};

int wait_events(int epfd, epoll_event* events, int max, Clock::duration timeout) {
    static std::atomic<bool> no_pwait2{false};
    if (timeout < Clock::duration::zero()) timeout = Clock::duration::zero();
    if (!no_pwait2.load(std::memory_order_relaxed)) {
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
        timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
        int n = epoll_pwait2(epfd, events, max, &ts, nullptr);
        if (n >= 0 || errno != ENOSYS) return n;
        no_pwait2.store(true, std::memory_order_relaxed);  // a kernel before 5.11: millisecond wake-ups
    }
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
    return epoll_wait(epfd, events, max, static_cast<int>(std::min<std::int64_t>(ms, INT_MAX)));
}

// One thread, one epoll set, a fixed subset of the connections: a connection's state is only ever
// touched by its worker, so nothing is locked. Each connection runs the loop of the Beast version
// (wait for the slot, connect if need be, send, read the answer, count it) as a state machine.
class Worker {
public:
    Worker(int first, int step) : epfd_(epoll_create1(EPOLL_CLOEXEC)), signer_(g_opt.secret) {
        if (epfd_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
        for (int i = first; i < g_opt.connections; i += step) {
            Conn c;
            c.idx = i;
            c.seq = static_cast<std::uint64_t>(i) << 40;
            c.k = i;
            // Stagger the schedules so that the connections do not fire in lock-step.
            c.next = g_start + interval_ * i / std::max(1, g_opt.connections);
            conns_.push_back(std::move(c));
        }
        if (shared_) {
            slot_interval_ = interval_ / static_cast<std::int64_t>(std::max<std::size_t>(1, conns_.size()));
            next_slot_ = g_start + slot_interval_ * first / std::max(1, step);  // threads out of step
        }
        prefix_ = head_prefix();
        head_room_ = prefix_.size() + kMaxHeadTail;
        request_.reset(new char[head_room_ + kMaxBody]);
        recv_.reset(new char[kRecvBuffer]);
    }
    ~Worker() {
        for (auto& c : conns_) close_fd(c);
        ::close(epfd_);
    }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    const Counts& counts() const { return counts_; }

    void run() {
        // Timed sleeps fire at the late edge of the thread's timer slack (50 us by default), and an
        // open-loop request sent late shows the delay in its latency; Asio's timerfd had no slack.
        ::prctl(PR_SET_TIMERSLACK, 1UL);
        live_ = conns_.size();
        auto now = Clock::now();
        for (auto& c : conns_) loop_top(c, now);
        auto next_sweep = now + kSweepEvery;
        epoll_event events[256];
        while (live_ > 0) {
            auto wake = next_sweep;
            while (!timers_.empty() && !current(timers_.top())) timers_.pop();
            if (!timers_.empty()) wake = std::min(wake, timers_.top().due);
            if (shared_ && !ended_) wake = std::min(wake, std::min(next_slot_, g_end));
            int n = wait_events(epfd_, events, 256, wake - Clock::now());
            for (int i = 0; i < n; ++i) on_event(conns_[events[i].data.u32]);
            now = Clock::now();
            while (!timers_.empty() && timers_.top().due <= now) {
                auto t = timers_.top();
                timers_.pop();
                if (current(t)) loop_top(conns_[t.conn], now);
            }
            if (shared_) release_slots(now);
            if (now >= next_sweep) {
                sweep(now);
                next_sweep = now + kSweepEvery;
            }
        }
    }

private:
    struct Timer {
        Clock::time_point due;
        std::uint32_t conn;
        bool operator>(const Timer& o) const { return due > o.due; }
    };

    // A timer is stale once its connection went on (it only ever waits for one at a time).
    bool current(const Timer& t) const {
        const auto& c = conns_[t.conn];
        return c.state == State::waiting && c.due == t.due;
    }
    std::uint32_t slot(const Conn& c) const { return static_cast<std::uint32_t>(&c - conns_.data()); }

    // The top of the Beast version's loop: stop at the end time, otherwise wait for the next slot
    // (open loop) or go at once (closed loop).
    void loop_top(Conn& c, Clock::time_point now) {
        if (now >= g_end) return stop(c);
        if (shared_) {
            if (due_.empty()) {
                c.state = State::waiting;
                c.due = Clock::time_point::max();  // no timer: release_slots wakes it
                idle_.push_back(slot(c));
                return;
            }
            c.intended = due_.front();
            due_.pop_front();
        } else if (g_opt.rate > 0) {
            if (c.next > now) return wait_until(c, c.next);
            c.intended = c.next;
            c.next += interval_;  // a late answer does not shift the schedule
            if (c.intended >= g_end) return stop(c);
        } else {
            c.intended = now;
        }
        if (c.fd >= 0) return send_request(c, now);
        c.addr = 0;
        connect(c, now);
    }

    // Shared schedule: queue the requests that fell due, hand them to idle connections, and stop
    // the idle ones at the end.
    void release_slots(Clock::time_point now) {
        if (ended_) return;
        for (; next_slot_ <= now && next_slot_ < g_end; next_slot_ += slot_interval_) due_.push_back(next_slot_);
        while (!due_.empty() && !idle_.empty()) {
            auto& c = conns_[idle_.back()];
            idle_.pop_back();
            if (c.state == State::waiting) loop_top(c, now);
        }
        if (now >= g_end) {
            ended_ = true;
            for (auto i : idle_)
                if (conns_[i].state == State::waiting) stop(conns_[i]);
            idle_.clear();
        }
    }

    void wait_until(Conn& c, Clock::time_point due) {
        if (due >= g_end) return stop(c);  // it would find the end time passed when it wakes
        c.state = State::waiting;
        c.due = due;
        timers_.push({due, slot(c)});
    }

    void stop(Conn& c) {
        close_fd(c);
        c.state = State::stopped;
        --live_;
    }

    void close_fd(Conn& c) {
        if (c.fd < 0) return;
        ::close(c.fd);  // also leaves the epoll set
        c.fd = -1;
        c.events = 0;
        c.pending.clear();
        c.carry.clear();
    }

    bool watch(Conn& c, std::uint32_t events) {
        if (c.events == events) return true;
        epoll_event ev{};
        ev.events = events;
        ev.data.u32 = slot(c);
        if (epoll_ctl(epfd_, c.events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd, &ev) != 0) return false;
        c.events = events;
        return true;
    }

    // Tries g_addrs from c.addr on; the request goes out as soon as one connects.
    void connect(Conn& c, Clock::time_point now) {
        for (; c.addr < g_addrs.size(); ++c.addr) {
            const auto& a = g_addrs[c.addr];
            c.fd = ::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c.fd < 0) continue;
            int one = 1;
            ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) == 0) return send_request(c, now);
            if (errno == EINPROGRESS && watch(c, EPOLLOUT)) {
                c.state = State::connecting;
                c.deadline = now + kRequestTimeout;
                return;
            }
            close_fd(c);
        }
        connect_failed(c, now);
    }

    void on_connected(Conn& c) {
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        auto now = Clock::now();
        if (err == 0) return send_request(c, now);
        close_fd(c);
        ++c.addr;
        connect(c, now);
    }

    // Counted whether or not inside the measured window, as before.
    void connect_failed(Conn& c, Clock::time_point now) {
        ++counts_.errors;
        close_fd(c);
        wait_until(c, now + kConnectRetry);
    }

    void send_request(Conn& c, Clock::time_point now) {
        long installation = g_opt.installation_base + 1 + (c.k % g_opt.installations);
        c.k += g_opt.connections;
        std::uint64_t seq = c.seq++;
        // The body goes after room for the longest head, then the head is written just before it,
        // so that head and body leave in one send without being copied together.
        char* body = request_.get() + head_room_;
        char* p = put(body, kBody0);
        p = put_int(p, static_cast<long long>(unix_us(c.intended)));
        p = put(p, kBody1);
        p = put_int(p, seq);
        p = put(p, kBody2);
        p = put_int(p, installation);
        p = put(p, kBody3);
        auto body_len = static_cast<std::size_t>(p - body);
        char tail[kMaxHeadTail];
        char* t = put_int(tail, seq);
        t = put(t, kHookId);
        if (signer_.enabled()) {
            t = put(t, kSignature);
            signer_.sign(body, body_len, t);
            t = put(t + kHexMac, "\r\n");
        }
        t = put(t, kLength);
        t = put_int(t, body_len);
        t = put(t, "\r\n\r\n");
        auto tail_len = static_cast<std::size_t>(t - tail);
        char* start = body - tail_len - prefix_.size();
        std::memcpy(start, prefix_.data(), prefix_.size());
        std::memcpy(body - tail_len, tail, tail_len);
        std::size_t len = static_cast<std::size_t>(p - start);

        ++counts_.sent;
        c.deadline = now + kRequestTimeout;
        c.res = Response{};
        c.carry.clear();
        auto n = ::send(c.fd, start, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return fail(c, Clock::now());
            n = 0;
        }
        if (static_cast<std::size_t>(n) < len) {
            c.pending.assign(start + n, len - static_cast<std::size_t>(n));
            c.state = State::sending;
            if (!watch(c, EPOLLOUT)) fail(c, Clock::now());
            return;
        }
        c.state = State::receiving;
        if (!watch(c, EPOLLIN)) fail(c, Clock::now());
    }

    void flush(Conn& c) {
        auto n = ::send(c.fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            return fail(c, Clock::now());
        }
        c.pending.erase(0, static_cast<std::size_t>(n));
        if (!c.pending.empty()) return;
        c.state = State::receiving;
        if (!watch(c, EPOLLIN)) fail(c, Clock::now());
    }

    // One recv per readiness: level-triggered epoll reports the rest, and the common answer arrives
    // whole, so a second recv would only say EAGAIN.
    void on_readable(Conn& c) {
        auto n = ::recv(c.fd, recv_.get(), kRecvBuffer, 0);
        auto now = Clock::now();
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            return fail(c, now);
        }
        if (n == 0) {
            if (c.res.phase == Response::Phase::until_eof) return complete(c, now, false);
            return fail(c, now);
        }
        std::string_view in(recv_.get(), static_cast<std::size_t>(n));
        if (!c.carry.empty()) {
            c.carry.append(in);
            in = c.carry;
        }
        std::size_t used = 0;
        switch (parse(c.res, in, used)) {
        case Parse::error:
            return fail(c, now);
        case Parse::more:
            if (c.carry.empty()) c.carry.assign(in.substr(used));
            else c.carry.erase(0, used);
            return;
        case Parse::done: {
            bool extra = used < in.size();
            c.carry.clear();
            return complete(c, now, extra);
        }
        }
    }

    // The server closed an idle keep-alive connection (or sent something unasked): drop it, and
    // the next request connects again.
    void on_idle(Conn& c) {
        auto n = ::recv(c.fd, recv_.get(), kRecvBuffer, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        close_fd(c);
    }

    // `extra`: bytes after the answer, which no request asked for; the connection is not reused.
    void complete(Conn& c, Clock::time_point done, bool extra) {
        if (done >= g_measure_start && done <= g_end) {
            if (c.res.status / 100 == 2) {
                ++counts_.ok;
                g_totals.latency.record(static_cast<std::uint64_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(done - c.intended).count()));
            } else {
                ++counts_.non2xx;
            }
        }
        if (!c.res.keep_alive || extra) close_fd(c);
        loop_top(c, done);
    }

    // A failed write or read: counted only inside the measured window, as before.
    void fail(Conn& c, Clock::time_point done) {
        if (done >= g_measure_start && done <= g_end) ++counts_.errors;
        close_fd(c);
        loop_top(c, done);
    }

    void on_event(Conn& c) {
        switch (c.state) {
        case State::connecting: return on_connected(c);
        case State::sending: return flush(c);
        case State::receiving: return on_readable(c);
        case State::waiting:
            if (c.fd >= 0) on_idle(c);
            return;
        case State::stopped: return;
        }
    }

    void sweep(Clock::time_point now) {
        for (auto& c : conns_) {
            if (c.deadline > now) continue;
            if (c.state == State::connecting) connect_failed(c, now);
            else if (c.state == State::sending || c.state == State::receiving) fail(c, now);
        }
    }

    int epfd_;
    Signer signer_;
    std::vector<Conn> conns_;
    std::size_t live_ = 0;  // connections not yet stopped
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
    const std::chrono::nanoseconds interval_ =
        g_opt.rate > 0 ? std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 * g_opt.connections / g_opt.rate))
                       : std::chrono::nanoseconds(0);
    // Shared schedule: this thread's share of the rate (its connections' worth), the requests due
    // and not yet sent, and the connections waiting for one.
    const bool shared_ = g_opt.shared_schedule && g_opt.rate > 0;
    std::chrono::nanoseconds slot_interval_{0};
    Clock::time_point next_slot_;
    std::deque<Clock::time_point> due_;
    std::vector<std::uint32_t> idle_;
    bool ended_ = false;
    std::string prefix_;      // the request head up to the Delivery ID
    std::size_t head_room_ = 0;
    std::unique_ptr<char[]> request_;  // head room, then the body
    std::unique_ptr<char[]> recv_;
    Counts counts_;
};

bool resolve() {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;  // as Asio's resolver does by default
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(g_opt.host.c_str(), g_opt.port.c_str(), &hints, &res);
    if (rc != 0) {
        std::cerr << "loadgen: cannot resolve " << g_opt.host << ":" << g_opt.port << ": " << gai_strerror(rc) << "\n";
        return false;
    }
    for (auto* ai = res; ai; ai = ai->ai_next) {
        Address a;
        std::memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
        a.len = ai->ai_addrlen;
        a.family = ai->ai_family;
        g_addrs.push_back(a);
    }
    ::freeaddrinfo(res);
    return !g_addrs.empty();
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
        else if (a == "--schedule") {
            auto v = next();
            if (v != "shared" && v != "per-connection") {
                std::cerr << "loadgen: --schedule is shared or per-connection\n";
                return 2;
            }
            g_opt.shared_schedule = v == "shared";
        }
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
    if (!resolve()) return 1;
    // Connections are dealt round-robin; a thread without one would have nothing to do.
    int threads = std::clamp(g_opt.threads, 1, g_opt.connections);
    std::vector<std::unique_ptr<Worker>> workers;
    try {
        g_start = Clock::now();
        g_measure_start = g_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(g_opt.warmup));
        g_end = g_measure_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(g_opt.duration));
        for (int t = 0; t < threads; ++t) workers.push_back(std::make_unique<Worker>(t, threads));
        std::vector<std::thread> pool;
        for (int t = 1; t < threads; ++t) pool.emplace_back([w = workers[static_cast<std::size_t>(t)].get()] { w->run(); });
        workers[0]->run();
        for (auto& t : pool) t.join();
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
    for (auto& w : workers) {
        const auto& c = w->counts();
        g_totals.ok += c.ok;
        g_totals.non2xx += c.non2xx;
        g_totals.errors += c.errors;
        g_totals.sent += c.sent;
    }
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
