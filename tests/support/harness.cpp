// Implementation of the test harness: databases on the pg_virtualenv cluster, receivers over raw
// sockets + Beast parsing, and daemon processes.
#include "harness.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>

#include "outboxd/db/migrations.hpp"

namespace testsupport {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return pred();
}

static std::string env(const char* k, const char* dflt) {
    const char* v = std::getenv(k);
    return v && *v ? v : dflt;
}

std::string conninfo(const std::string& db) {
    return "postgresql://" + env("PGUSER", "postgres") + ":" + env("PGPASSWORD", "") + "@" + env("PGHOST", "localhost") +
           ":" + env("PGPORT", "5432") + "/" + db;
}

std::string binary_dir() { return OUTBOXD_BINARY_DIR; }

DaemonConfig daemon_config(const std::string& db_url, const std::vector<std::pair<std::string, std::string>>& regions,
                           const std::string& extra) {
    DaemonConfig c;
    c.ingress = free_port();
    c.metrics = free_port();
    c.toml = "[database]\nurl = \"" + db_url + "\"\n\n[ingress]\nlisten = \"127.0.0.1:" + std::to_string(c.ingress) +
             "\"\n\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(c.metrics) + "\"\n\n" + extra + "\n";
    for (const auto& [name, url] : regions)
        c.toml += "[[region]]\nname = \"" + name + "\"\nurl = \"" + url + "\"\nsecret = \"" + name + "-secret\"\n\n";
    return c;
}

double metric_series(unsigned short metrics_port, const std::string& series) {
    auto res = http_request("GET", "127.0.0.1", metrics_port, "/metrics");
    std::istringstream in(res.body);
    std::string line;
    while (std::getline(in, line))
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
            return std::stod(line.substr(series.size() + 1));
    return 0;
}

double metric_value(unsigned short metrics_port, const std::string& name, const std::string& labels) {
    auto res = http_request("GET", "127.0.0.1", metrics_port, "/metrics");
    if (res.status != 200) return -1;
    std::istringstream in(res.body);
    std::string line;
    double total = 0;
    bool seen = false;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto sp = line.rfind(' ');
        std::string head = line.substr(0, sp);
        std::string fam = head.substr(0, head.find('{'));
        if (fam != name) continue;
        if (!labels.empty() && head.find(labels) == std::string::npos) continue;
        total += std::stod(line.substr(sp + 1));
        seen = true;
    }
    return seen ? total : -1;
}

TestDatabase::TestDatabase(std::string name, Schema schema) : name_("t_" + std::move(name)), url_(conninfo(name_)) {
    {
        outboxd::db::Connection admin(conninfo(env("PGDATABASE", "postgres")));
        admin.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
        admin.exec("CREATE DATABASE " + name_);
    }
    conn_ = std::make_unique<outboxd::db::Connection>(url_, "test");
    if (schema == Schema::migrated) outboxd::db::migrate(*conn_);
}

TestDatabase::~TestDatabase() = default;

void TestDatabase::seed_integration(std::int64_t id, const std::string& provider, const std::string& external_id,
                                    const std::vector<std::string>& org_regions, const std::string& metadata) {
    using outboxd::db::Params;
    sql("INSERT INTO integration(id, provider, external_id, name, status, metadata) VALUES ($1, $2, $3, 'test', 'active', $4::jsonb)",
        Params(id, provider, external_id, metadata));
    int n = 0;
    for (const auto& region : org_regions) {
        std::int64_t org = id * 100 + n++;
        sql("INSERT INTO organization_mapping(organization_id, slug, region_name) VALUES ($1, $2, $3)",
            Params(org, "org" + std::to_string(org), region));
        sql("INSERT INTO organization_integration(organization_id, integration_id, status) VALUES ($1, $2, 'active')",
            Params(org, id));
    }
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + needle.size())) ++n;
    return n;
}

// A port for a daemon to listen on later. Not from the kernel's ephemeral range (32768-60999 here):
// any outgoing connection made before the daemon binds could take such a port as its local one,
// and the daemon then fails with "address already in use".
unsigned short free_port() {
    static std::mt19937 rng{std::random_device{}()};
    static std::mutex mu;
    std::lock_guard lk(mu);
    asio::io_context ioc;
    for (int tries = 0; tries < 1000; ++tries) {
        auto port = static_cast<unsigned short>(20000 + rng() % 12000);
        boost::system::error_code ec;
        tcp::acceptor a(ioc);
        a.open(tcp::v4(), ec);
        if (!ec) a.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
        if (!ec) return port;
    }
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

struct Receiver::Impl {
    asio::io_context ioc;
    tcp::acceptor acceptor{ioc};
    std::mutex mu;
    std::vector<ReceivedRequest> log;
    Responder respond;
    std::vector<std::pair<std::string, std::string>> extra_headers;
    bool keep_alive = true;
    std::shared_ptr<asio::ssl::context> tls;  // null: plain HTTP
    std::atomic<std::size_t> handshakes{0}, resumed{0};
    std::atomic<bool> stopping{false};
    std::thread accept_thread;
    std::vector<std::thread> workers;
    std::vector<std::shared_ptr<tcp::socket>> sockets;

    bool tls12_only = false;

    std::shared_ptr<asio::ssl::context> make_tls(const std::string& cert, const std::string& key) const {
        auto c = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
        c->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3);
        if (tls12_only) SSL_CTX_set_max_proto_version(c->native_handle(), TLS1_2_VERSION);
        c->use_certificate_chain_file(cert);
        c->use_private_key_file(key, asio::ssl::context::pem);
        return c;
    }

    // Answers requests on one connection until the peer closes, an error, or a non-keep-alive exchange.
    template <class Stream>
    void serve(Stream& s) {
        beast::flat_buffer buf;
        while (!stopping) {
            bhttp::request<bhttp::string_body> req;
            boost::system::error_code rec;
            bhttp::read(s, buf, req, rec);
            if (rec) return;
            ReceivedRequest r;
            r.at = std::chrono::steady_clock::now();
            r.method = std::string(req.method_string());
            r.target = std::string(req.target());
            r.body = req.body();
            for (const auto& f : req) {
                std::string k(f.name_string());
                for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                r.headers[k] = std::string(f.value());
            }
            Responder fn;
            std::vector<std::pair<std::string, std::string>> extra;
            bool keep = true;
            {
                std::lock_guard lk2(mu);
                fn = respond;
                extra = extra_headers;
                keep = keep_alive;
            }
            r.status = fn ? fn(r) : 200;
            {
                std::lock_guard lk2(mu);
                log.push_back(r);
            }
            keep = keep && req.keep_alive();
            bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), 11};
            for (const auto& [k, v] : extra) res.set(k, v);
            res.body() = "ok";
            res.keep_alive(keep);
            res.prepare_payload();
            bhttp::write(s, res, rec);
            if (rec || !keep) return;
        }
    }
};

Receiver::Receiver(Responder respond) : impl_(std::make_unique<Impl>()) {
    impl_->respond = std::move(respond);
    start();
}

Receiver::Receiver(Responder respond, const ReceiverTls& tls) : impl_(std::make_unique<Impl>()), tls_host_(tls.host) {
    impl_->respond = std::move(respond);
    impl_->tls12_only = tls.tls12_only;
    impl_->tls = impl_->make_tls(tls.cert_file, tls.key_file);
    start();
}

void Receiver::start() {
    auto& a = impl_->acceptor;
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    a.open(ep.protocol());
    a.set_option(asio::socket_base::reuse_address(true));
    a.bind(ep);
    a.listen();
    port_ = a.local_endpoint().port();
    impl_->accept_thread = std::thread([this] {
        while (!impl_->stopping) {
            auto sock = std::make_shared<tcp::socket>(impl_->ioc);
            boost::system::error_code ec;
            impl_->acceptor.accept(*sock, ec);
            if (ec || impl_->stopping) return;
            ++connections_;
            std::lock_guard lk(impl_->mu);
            impl_->sockets.push_back(sock);
            auto tls = impl_->tls;
            impl_->workers.emplace_back([this, sock, tls] {
                boost::system::error_code sec;
                if (!tls) {
                    impl_->serve(*sock);
                    sock->shutdown(tcp::socket::shutdown_send, sec);
                    return;
                }
                asio::ssl::stream<tcp::socket&> s(*sock, *tls);
                boost::system::error_code hec;
                s.handshake(asio::ssl::stream_base::server, hec);
                if (hec) return;  // the client refused us (or we it): nothing was exchanged
                ++impl_->handshakes;
                if (SSL_session_reused(s.native_handle())) ++impl_->resumed;
                impl_->serve(s);
                sock->shutdown(tcp::socket::shutdown_send, sec);
            });
        }
    });
}

Receiver::~Receiver() {
    impl_->stopping = true;
    boost::system::error_code ec;
    {
        // Wake the blocking accept() with a connection; the acceptor is closed only after its
        // thread has returned (an Asio object must not be closed under a blocked call).
        asio::io_context c;
        tcp::socket s(c);
        s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    }
    if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
    impl_->acceptor.close(ec);
    std::vector<std::shared_ptr<tcp::socket>> sockets;
    {
        std::lock_guard lk(impl_->mu);
        sockets = impl_->sockets;
    }
    // Unblock the workers' reads at the file-descriptor level, then close once they are gone.
    for (auto& s : sockets) ::shutdown(s->native_handle(), SHUT_RDWR);
    for (auto& t : impl_->workers)
        if (t.joinable()) t.join();
    for (auto& s : sockets) s->close(ec);
}

std::vector<ReceivedRequest> Receiver::requests() {
    std::lock_guard lk(impl_->mu);
    return impl_->log;
}

std::vector<ReceivedRequest> Receiver::ok() {
    std::vector<ReceivedRequest> out;
    for (auto& r : requests())
        if (r.status >= 200 && r.status < 300) out.push_back(r);
    return out;
}

void Receiver::set_responder(Responder r) {
    std::lock_guard lk(impl_->mu);
    impl_->respond = std::move(r);
}

void Receiver::set_header(const std::string& name, const std::string& value) {
    std::lock_guard lk(impl_->mu);
    impl_->extra_headers.emplace_back(name, value);
}

void Receiver::set_keep_alive(bool on) {
    std::lock_guard lk(impl_->mu);
    impl_->keep_alive = on;
}

void Receiver::set_certificate(const std::string& cert_file, const std::string& key_file) {
    auto c = impl_->make_tls(cert_file, key_file);
    std::lock_guard lk(impl_->mu);
    impl_->tls = std::move(c);
}

void Receiver::drop_connections() {
    std::lock_guard lk(impl_->mu);
    boost::system::error_code ec;
    for (auto& s : impl_->sockets) s->shutdown(tcp::socket::shutdown_both, ec);
}

std::size_t Receiver::handshakes() const { return impl_->handshakes.load(); }
std::size_t Receiver::resumed_handshakes() const { return impl_->resumed.load(); }

HttpResult http_request(const std::string& method, const std::string& host, unsigned short port,
                        const std::string& target, const std::string& body,
                        const std::vector<std::pair<std::string, std::string>>& headers) {
    HttpResult out;
    try {
        asio::io_context ioc;
        beast::tcp_stream s(ioc);
        s.expires_after(30s);
        s.connect(tcp::endpoint(asio::ip::make_address(host), port));
        bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
        req.set(bhttp::field::host, host);
        for (const auto& [k, v] : headers) req.set(k, v);
        req.body() = body;
        req.prepare_payload();
        bhttp::write(s, req);
        beast::flat_buffer buf;
        bhttp::response<bhttp::string_body> res;
        bhttp::read(s, buf, res);
        out.status = res.result_int();
        out.body = res.body();
    } catch (const std::exception& e) {
        out.status = 0;
        out.body = e.what();
    }
    return out;
}

std::pair<int, std::string> run_command(const std::string& cmd) {
    std::string out;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return {-1, ""};
    char buf[4096];
    std::size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int rc = pclose(p);
    return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

Daemon::Daemon(const std::string& config_toml, const std::string& name) {
    char dir[] = "/tmp/outboxd-test-XXXXXX";
    std::string d = mkdtemp(dir);
    config_path_ = d + "/" + name + ".toml";
    log_path_ = d + "/" + name + ".log";
    std::ofstream(config_path_) << config_toml;
}

Daemon::~Daemon() {
    if (pid_ > 0) kill9();
}

bool Daemon::running() {
    if (pid_ <= 0) return false;
    int status;
    return waitpid(pid_, &status, WNOHANG) == 0;
}

bool Daemon::start(std::chrono::milliseconds timeout) {
    pid_ = fork();
    if (pid_ == 0) {
        setsid();
        if (open_files_ > 0) {
            rlimit lim{open_files_, open_files_};
            setrlimit(RLIMIT_NOFILE, &lim);
        }
        FILE* f = fopen(log_path_.c_str(), "a");
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        std::string bin = binary_dir() + "/outboxd";
        execl(bin.c_str(), bin.c_str(), "--config", config_path_.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    // The metrics listener answers /readyz once the database answers and the drainer connected.
    std::ifstream in(config_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    auto pos = text.find("[metrics]");
    unsigned short port = 0;
    if (pos != std::string::npos) {
        auto l = text.find("listen", pos);
        auto colon = text.find(':', text.find('"', l) + 1);
        port = static_cast<unsigned short>(std::atoi(text.c_str() + colon + 1));
    }
    return wait_until([&] { return running() && http_request("GET", "127.0.0.1", port, "/readyz").status == 200; },
                      timeout);
}

void Daemon::signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
}

void Daemon::rewrite_config(const std::string& toml) { std::ofstream(config_path_, std::ios::trunc) << toml; }

void Daemon::kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
}

int Daemon::terminate(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    return wait_exit(timeout);
}

int Daemon::wait_exit(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return -1;
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        int status;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        std::this_thread::sleep_for(20ms);
    }
    kill9();
    return -1;
}

std::string Daemon::log() {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace testsupport
